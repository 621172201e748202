"""The crawl end to end without Spark: resumable after a kill, safe against disguised playlists."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from adlake.ingest.crawl import crawl_shard, finalize_crawl, reconcile
from adlake.lake import Lake, Quarantine
from adlake.media.probe import ProbeError, probe_video
from adlake.media.store import MediaStore
from adlake.provenance import RunContext
from schemas.registry import ADS, VIDEOS
from tests.conftest import fifo_canary, queue_ads
from tests.httpserver import Route, ScriptedServer

DAY = dt.date(2026, 11, 3)
ROOT = Path(__file__).resolve().parents[1]


def good_videos(corpus: Path) -> dict[str, bytes]:
    truth = json.loads((corpus / "ground_truth.json").read_text())["ads"]
    return {ad: (corpus / t["file"]).read_bytes() for ad, t in sorted(truth.items()) if t["kind"] != "bad"}


def blobs_are_whole(store: MediaStore) -> list[str]:
    names = []
    for path in store.files():
        data = Path(path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == Path(path).name, f"partial or foreign blob {path}"
        names.append(Path(path).name)
    return names


@pytest.mark.slow
@pytest.mark.media
def test_a_killed_crawl_resumes_without_partials_or_duplicates(corpus: Path, home: Path) -> None:
    videos = good_videos(corpus)
    lake = Lake(RunContext.create("test", run_id="queue"))
    store = MediaStore(lake.settings)
    env = {**os.environ, "ADLAKE_HOME": str(home), "ADLAKE_ENV": "test", "ADLAKE__INGEST__CRAWL__PER_HOST": "2",
           "PYTHONPATH": str(ROOT)}
    with ScriptedServer() as srv:
        for ad, body in videos.items():  # ~2 s per video: slow enough to kill mid-way
            srv.routes[f"/{ad}.mp4"] = Route(body, chunk=max(1, len(body) // 25), chunk_delay_s=0.08)
        queue_ads(lake, DAY, {ad: f"{srv.url}/{ad}.mp4" for ad in videos})
        cmd = [sys.executable, "-m", "jobs.crawl", "--partition", DAY.isoformat(), "--run-id", "crawl-1"]
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while not store.files() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        finished = blobs_are_whole(store)
        assert 1 <= len(finished) < len(videos), "the kill must land mid-crawl"
        partials = list(store.tmp_dir().glob("*.part"))
        assert partials, "a download was in flight when the crawl was killed"

        rerun = Lake(RunContext.create("test", run_id="crawl-2"))
        result = crawl_shard(rerun, DAY, 0, 1)
        assert result.failed == 0 and result.cached == len(finished)
        summary = finalize_crawl(rerun, DAY)
        hits = dict(srv.hits)

    assert sorted(blobs_are_whole(store)) == sorted(hashlib.sha256(b).hexdigest() for b in set(videos.values()))
    assert not list(store.tmp_dir().glob("*.part"))
    for name in finished:  # a finished download is never fetched again
        ad = next(a for a, b in videos.items() if hashlib.sha256(b).hexdigest() == name)
        assert hits[f"/{ad}.mp4"] == 1
    rows = lake.read(VIDEOS).to_pylist()
    assert len(rows) == len({r["video_id"] for r in rows}) == len(set(videos.values()))
    ads = lake.read(ADS).to_pylist()
    assert {r["status"] for r in ads} == {"selected"} and len(ads) == len(videos)
    assert summary["reconciliation"]["balanced"]


def _listener() -> tuple[socket.socket, list]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.settimeout(0.1)
    seen: list = []

    def accept() -> None:
        while True:
            try:
                conn, _ = sock.accept()
                seen.append(conn.recv(200))
                conn.close()
            except TimeoutError:
                continue
            except OSError:
                return
    threading.Thread(target=accept, daemon=True).start()
    return sock, seen


@pytest.mark.media
def test_a_playlist_disguised_as_mp4_is_quarantined_and_touches_nothing(home: Path, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    sock, connections = _listener()
    port = sock.getsockname()[1]
    canary = tmp_path / "canary.ts"
    stop, opened = fifo_canary(canary)
    playlist = (f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10.0,\nfile://{canary}\n#EXTINF:10.0,\n"
                f"http://127.0.0.1:{port}/leak.ts\n#EXT-X-ENDLIST\n").encode()
    lake = Lake(RunContext.create("test", run_id="safe-1"))
    try:
        with ScriptedServer() as srv:
            srv.routes["/ad.mp4"] = Route(playlist)
            queue_ads(lake, DAY, {"sneaky": f"{srv.url}/ad.mp4"})
            crawl_shard(lake, DAY, 0, 1)
            finalize_crawl(lake, DAY)
        (entry,) = Quarantine(lake).entries(stage="ingest.crawl").to_pylist()
        assert entry["error_class"] == "unsafe_playlist" and entry["entity_key"].endswith("/sneaky")
        assert lake.read(ADS).num_rows == 0 and reconcile(lake, DAY).balanced

        assert not MediaStore(lake.settings).files()  # a file that fails the probe never enters the store

        # Even if the sniffing missed it, ffprobe's whitelists refuse the playlist without following it.
        blob = tmp_path / "ad.mp4"
        blob.write_bytes(playlist)
        monkeypatch.setattr("adlake.media.probe.sniff_playlist", lambda path: False)
        with pytest.raises(ProbeError) as err:
            probe_video(Path(blob), lake.settings.ingest.probe.formats, timeout_s=10)
        assert err.value.error_class == "unsafe_playlist"
        concat = tmp_path / "concat.bin"
        concat.write_text(f"ffconcat version 1.0\nfile '{canary}'\n")
        with pytest.raises(ProbeError) as err:
            probe_video(concat, lake.settings.ingest.probe.formats, timeout_s=10)
        assert err.value.error_class == "unsafe_playlist"
        time.sleep(0.3)
    finally:
        stop.set()
        sock.close()
    assert connections == [] and opened == []


@pytest.mark.media
def test_probe_classes_on_the_corpus(corpus: Path, home: Path) -> None:
    from adlake.config import load_settings

    formats = load_settings().ingest.probe.formats
    truth = json.loads((corpus / "ground_truth.json").read_text())["ads"]
    for ad, t in truth.items():
        cls = t["expected"].get("error_class")
        if t["file"] and cls in ("truncated", "empty", "not_a_video", "unsafe_playlist", "no_video_stream"):
            with pytest.raises(ProbeError) as err:
                probe_video(corpus / t["file"], formats)
            assert err.value.error_class == cls, ad
        elif t["kind"] != "bad":
            got = probe_video(corpus / t["file"], formats)
            assert (got.width, got.height) == (t["width"], t["height"])
            assert got.has_audio == t["has_audio"] and abs(got.duration_s - t["duration_s"]) <= 0.1


@pytest.mark.media
def test_rotation_is_applied_to_the_display_size(tmp_path: Path, home: Path) -> None:
    from adlake.config import load_settings

    plain, path = tmp_path / "plain.mp4", tmp_path / "rot.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=320x180:d=1", "-c:v", "libx264",
                    "-preset", "ultrafast", str(plain)], check=True)
    # a phone video: stored landscape, displayed portrait through its display matrix
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(plain), "-c", "copy", "-metadata:s:v:0", "rotate=90",
                    str(path)], check=True)
    got = probe_video(path, load_settings().ingest.probe.formats)
    assert (got.width, got.height) == (180, 320)
