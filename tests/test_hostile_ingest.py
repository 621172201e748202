"""ads_ingest under hostile input: every row ends in exactly one place, with its own class, and the run succeeds.

One ingest (the Spark filter, the crawl, finalize) per family group, against a loopback server with
misbehaving paths and a folder of hostile local files; then a rerun of the same manifest, which must
commit no table version and fetch nothing again.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from adlake.ingest.crawl import crawl_shard, finalize_crawl
from adlake.ingest.filter import run_filter
from adlake.lake import Lake, Quarantine
from adlake.media.store import MediaStore
from adlake.provenance import RunContext
from schemas.registry import ADS, CRAWL_MANIFEST, QUARANTINE, VIDEOS
from tests.conftest import fifo_canary
from tests.httpserver import Route, ScriptedServer

pytestmark = [pytest.mark.slow, pytest.mark.spark, pytest.mark.media]
DAY = dt.date(2026, 11, 5)
TABLES = (CRAWL_MANIFEST, ADS, VIDEOS, QUARANTINE)


def base_row(ad_id: str, url: str, **kw) -> dict:
    return {"ad_id": ad_id, "url": url, "product_id": f"p_{ad_id}", "product_name": "Lamp",
            "selling_points": ["fast", "cheap"], "play_count": 5000, **kw}


def ingest(run: str) -> dict:
    """The three steps of ads_ingest on one crawl date, in process; returns where every row ended."""
    lake = Lake(RunContext.create("filter", run_id=run))
    manifest = next((lake.settings.home / "landing" / DAY.isoformat()).iterdir())
    run_filter(lake, str(manifest), DAY)
    crawl_shard(Lake(RunContext.create("crawl", run_id=run)), DAY, 0, 1)
    summary = finalize_crawl(Lake(RunContext.create("finalize", run_id=run)), DAY)
    assert summary["reconciliation"]["balanced"], summary
    return outcomes(lake)


def outcomes(lake: Lake) -> dict[str, str]:
    """ad_id → 'selected', 'filtered:<reason>' or 'quarantined:<class>' (one place each, or the test fails)."""
    ended: dict[str, list[str]] = {}
    for r in lake.read(ADS).to_pylist():
        ended.setdefault(r["ad_id"], []).append(r["status"] if r["status"] != "filtered" else f"filtered:{r['reason']}")
    for q in Quarantine(lake).entries().to_pylist():
        key = q["entity_key"].split("/", 1)[1].split("@row", 1)[0]
        ended.setdefault(key, []).append(f"quarantined:{q['error_class']}")
    twice = {k: v for k, v in ended.items() if len(v) != 1}
    assert not twice, f"rows in more than one place: {twice}"
    return {k: v[0] for k, v in ended.items()}


def versions(lake: Lake) -> dict[str, int | None]:
    return {t.name: lake.version(t) if lake.exists(t) else None for t in TABLES}


def store_is_referenced(lake: Lake) -> None:
    """The media store holds only videos that bronze.videos references."""
    blobs = {Path(p).name for p in MediaStore(lake.settings).files()}
    listed = set(lake.read(VIDEOS)["video_id"].to_pylist()) if lake.exists(VIDEOS) else set()
    assert blobs <= listed, f"orphan blobs: {sorted(blobs - listed)}"


def land(home: Path, name: str, write) -> Path:
    folder = home / "landing" / DAY.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    write(path)
    return path


def jsonl(rows: list) -> callable:
    def write(path: Path) -> None:
        path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return write


@pytest.fixture
def tuned(home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from adlake.config import get_settings

    for key, value in {"DEADLINE_S": "4", "READ_TIMEOUT_S": "1.5", "RETRIES": "1", "BACKOFF_MAX_S": "0.1",
                       "MAX_REDIRECTS": "5"}.items():
        monkeypatch.setenv(f"ADLAKE__INGEST__CRAWL__{key}", value)
    get_settings.cache_clear()
    return home


def _hang(handler) -> None:
    time.sleep(30)


def _lying_length(handler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Length", str(10**12))
    handler.end_headers()
    handler.wfile.write(b"x" * 100)


def _reset_mid_body(handler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Length", "100000")
    handler.end_headers()
    handler.wfile.write(b"\x00" * 1000)
    handler.wfile.flush()
    handler.connection.shutdown(2)


def test_hostile_urls_servers_and_redirects(tuned: Path, corpus: Path) -> None:
    video = next(p for p in sorted((corpus / "videos").glob("*.mp4"))
                 if json.loads((corpus / "ground_truth.json").read_text())["ads"].get(p.stem, {}).get("kind") != "bad")
    body = video.read_bytes()
    bomb = gzip.compress(b"\x00" * (64 << 20))
    with ScriptedServer() as srv, ScriptedServer() as other:
        u = srv.url
        routes = {
            "/ok.mp4": Route(body),
            "/hop.mp4": Route(status=302, headers={"Location": "/ok.mp4"}),
            "/loop-a": Route(status=302, headers={"Location": "/loop-b"}),
            "/loop-b": Route(status=301, headers={"Location": f"{u}/loop-a"}),
            "/self": Route(status=307, headers={"Location": "/self"}),
            **{f"/chain/{i}": Route(status=302, headers={"Location": f"/chain/{i + 1}"}) for i in range(25)},
            "/to-js": Route(status=302, headers={"Location": "javascript:alert(1)"}),
            "/to-data": Route(status=302, headers={"Location": "data:video/mp4;base64,AAAA"}),
            "/to-file": Route(status=302, headers={"Location": "file:///etc/passwd"}),
            "/to-ftp": Route(status=302, headers={"Location": "ftp://127.0.0.1/x.mp4"}),
            "/to-bad-port": Route(status=302, headers={"Location": "http://127.0.0.1:99999/x.mp4"}),
            "/to-nowhere": Route(status=302),
            "/to-other": Route(status=302, headers={"Location": f"{other.url}/ok.mp4"}),
            "/gone": Route(status=410), "/boom": Route(status=500), "/busy": Route(status=429),
            "/page.mp4": Route(b"<!doctype html><html><body>Not here</body></html>" * 20),
            "/list.mp4": Route(b"#EXTM3U\n#EXTINF:10,\nhttp://127.0.0.1:9/a.ts\n#EXT-X-ENDLIST\n"),
            "/bomb.mp4": Route(bomb, headers={"Content-Encoding": "gzip"}),
            "/empty.mp4": Route(b""),
            "/hang.mp4": Route(handler=_hang),
            "/drip.mp4": Route(body, chunk=2000, chunk_delay_s=0.5),
            "/huge.mp4": Route(handler=_lying_length),
            "/reset.mp4": Route(handler=_reset_mid_body),
        }
        srv.routes.update(routes)
        other.routes["/ok.mp4"] = Route(body)
        cred = u.replace("http://", "http://ann:s3cret@")
        expected = {
            "ok": (f"{u}/ok.mp4", "selected"), "hop": (f"{u}/hop.mp4", "selected"),
            "loop": (f"{u}/loop-a", "quarantined:redirect_loop"), "self": (f"{u}/self", "quarantined:redirect_loop"),
            "chain": (f"{u}/chain/0", "quarantined:too_many_redirects"),
            "to_js": (f"{u}/to-js", "quarantined:bad_url"), "to_data": (f"{u}/to-data", "quarantined:bad_url"),
            "to_file": (f"{u}/to-file", "quarantined:bad_url"), "to_ftp": (f"{u}/to-ftp", "quarantined:bad_url"),
            "to_bad_port": (f"{u}/to-bad-port", "quarantined:bad_url"),
            "to_nowhere": (f"{u}/to-nowhere", "quarantined:http_error"),
            "cross_origin": (f"{cred}/to-other", "selected"),
            "gone": (f"{u}/gone", "quarantined:http_error"), "boom": (f"{u}/boom", "quarantined:server_error"),
            "busy": (f"{u}/busy", "quarantined:rate_limited"), "missing": (f"{u}/nothing.mp4", "quarantined:http_error"),
            "page": (f"{u}/page.mp4", "quarantined:not_a_video"), "list": (f"{u}/list.mp4", "quarantined:unsafe_playlist"),
            "bomb": (f"{u}/bomb.mp4", "quarantined:not_a_video"), "empty": (f"{u}/empty.mp4", "quarantined:empty"),
            "hang": (f"{u}/hang.mp4", "quarantined:timeout"), "drip": (f"{u}/drip.mp4", "quarantined:timeout"),
            "huge": (f"{u}/huge.mp4", "quarantined:too_large"), "reset": (f"{u}/reset.mp4", "quarantined:connection_error"),
            "refused": ("http://127.0.0.1:9/x.mp4", "quarantined:connection_error"),
            # refused by the manifest check, before any request
            "ctl_char": (f"{u}/a\tb.mp4", "quarantined:bad_url"), "long": (f"{u}/{'a' * 3000}.mp4", "quarantined:bad_url"),
            "bad_port": ("http://127.0.0.1:99999/x.mp4", "quarantined:bad_url"),
            "js": ("javascript:alert(1)", "quarantined:bad_url"), "no_host": ("http:///x.mp4", "quarantined:bad_url"),
            "space_host": ("http://exa mple.com/x.mp4", "quarantined:bad_url"),
        }
        land(tuned, "m.jsonl", jsonl([base_row(ad, url) for ad, (url, _) in expected.items()]))
        t0 = time.monotonic()
        ended = ingest("hostile-1")
        seconds = time.monotonic() - t0
        assert ended == {ad: want for ad, (_, want) in expected.items()}
        # redirects to a refused scheme are not retried; transient failures are, once (RETRIES=1)
        for path in ("/to-file", "/to-ftp", "/to-js", "/gone", "/page.mp4"):
            assert srv.hits[path] == 1, path
        assert srv.hits["/boom"] == srv.hits["/busy"] == 2
        assert srv.hits["/chain/5"] == 1 and "/chain/6" not in srv.hits  # the hop limit from conf
        # credentials went to their own origin only
        assert any("Authorization" in h for p, h in srv.requests if p == "/to-other")
        assert other.requests and not any("Authorization" in h for _, h in other.requests)
        lake = Lake(RunContext.create("test", run_id="check"))
        store_is_referenced(lake)
        assert len(MediaStore(lake.settings).files()) == 1  # one video, reached three ways
        assert seconds < 120, seconds

        before, hits = versions(lake), dict(srv.hits)
        assert ingest("hostile-2") == {ad: want for ad, (_, want) in expected.items()}
        assert versions(lake) == before, "a rerun of an unchanged manifest commits nothing"
        assert srv.hits == hits, "nothing is fetched again inside the rerun back-off"


def test_file_urls_are_confined_to_their_roots(tuned: Path, corpus: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from adlake.config import get_settings

    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    monkeypatch.setenv("ADLAKE__INGEST__FILE_ROOTS", json.dumps([str(root)]))
    get_settings.cache_clear()
    video = next(p for p in sorted((corpus / "videos").glob("*.mp4")) if p.stat().st_size > 10_000)
    (root / "ad.mp4").write_bytes(video.read_bytes())
    (root / "sub").mkdir()
    (root / "sub" / "ad2.mp4").symlink_to(root / "ad.mp4")  # a link inside the root is fine
    secret = outside / "secret.mp4"
    secret.write_bytes(video.read_bytes())
    stop, opened = fifo_canary(outside / "canary.mp4")
    (root / "out.mp4").symlink_to(outside / "canary.mp4")
    (root / "zero.mp4").symlink_to("/dev/zero")
    (root / "secret.mp4").symlink_to(secret)
    os.mkfifo(root / "pipe.mp4")
    (root / "dir.mp4").mkdir()
    expected = {
        "file_ok": ((root / "ad.mp4").as_uri(), "selected"),
        "file_link_in": ((root / "sub" / "ad2.mp4").as_uri(), "selected"),
        "file_link_out": ((root / "out.mp4").as_uri(), "quarantined:bad_url"),
        "file_link_secret": ((root / "secret.mp4").as_uri(), "quarantined:bad_url"),
        "file_dev_zero": ((root / "zero.mp4").as_uri(), "quarantined:bad_url"),
        "file_fifo": ((root / "pipe.mp4").as_uri(), "quarantined:bad_url"),
        "file_dir": ((root / "dir.mp4").as_uri(), "quarantined:bad_url"),
        "file_missing": ((root / "none.mp4").as_uri(), "quarantined:not_found"),
        "file_passwd": ("file:///etc/passwd", "quarantined:bad_url"),
        "file_dotdot": (f"file://{root}/../outside/secret.mp4", "quarantined:bad_url"),
        "file_host": (f"file://elsewhere{root}/ad.mp4", "quarantined:bad_url"),
    }
    land(tuned, "m.jsonl", jsonl([base_row(ad, url) for ad, (url, _) in expected.items()]))
    try:
        ended = ingest("files-1")
    finally:
        stop.set()
    assert ended == {ad: want for ad, (_, want) in expected.items()}
    assert not opened, "a file outside the roots was opened"
    lake = Lake(RunContext.create("test", run_id="check"))
    store_is_referenced(lake)
    before = versions(lake)
    ingest("files-2")
    assert versions(lake) == before


def test_manifest_values_are_typed_row_by_row_in_every_format(tuned: Path) -> None:
    url = "https://cdn.example.com/{}.mp4"  # never fetched: every valid row here is filtered or unreachable
    rows = [
        base_row("lists_ok", url.format(1)),
        base_row("points_scalar", url.format(2), selling_points=5),
        base_row("plays_1e30", url.format(3), play_count=1e30),
        base_row("plays_2_63", url.format(4), play_count=2**63),
        base_row("plays_text", url.format(5), play_count="12", duration_s=500),
        base_row("plays_bool", url.format(6), play_count=True),
        '{"ad_id": "dur_inf", "url": "https://cdn.example.com/7.mp4", "product_id": "p", "product_name": "n", '
        '"duration_s": Infinity}',
        base_row("surrogate\ud800", url.format(8)),
        base_row(12345, url.format(9), duration_s=500),
        base_row("name_list", url.format(10), product_name=["a"]),
        base_row("time_number", url.format(11), published_at=1_700_000_000),
        base_row("time_far", url.format(12), published_at="9999-12-31T00:00:00Z"),
        base_row("nested", url.format(13), title={"a": [1, 2]}),
        "{not json",
        "[1, 2, 3]",
        "5",
        "[" * 100_000 + "]" * 100_000,
    ]
    land(tuned, "m.jsonl", lambda p: p.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8",
        errors="surrogatepass"))
    lake = Lake(RunContext.create("filter", run_id="m-1"))
    manifest = next((tuned / "landing" / DAY.isoformat()).iterdir())
    result = run_filter(lake, str(manifest), DAY)
    q = {r["entity_key"].split("/", 1)[1]: r["error_class"] for r in Quarantine(lake).entries().to_pylist()}
    assert q == {
        "points_scalar@row1": "bad_value", "plays_1e30@row2": "bad_value", "plays_2_63@row3": "bad_value",
        "plays_bool@row5": "bad_value", "dur_inf@row6": "bad_value", "-@row7": "bad_value",
        "name_list@row9": "bad_value", "time_number@row10": "bad_value",
        "nested@row12": "bad_value", "-@row13": "unparseable_row", "-@row14": "unparseable_row",
        "-@row15": "unparseable_row", "-@row16": "unparseable_row"}, q
    landed = {r["ad_id"]: r for r in lake.read(CRAWL_MANIFEST).to_pylist()}
    assert sorted(landed) == ["12345", "lists_ok", "plays_text", "time_far"]  # year 9999 fits Spark and Delta
    assert landed["lists_ok"]["selling_points"] == ["fast", "cheap"]  # not stringified by an odd row
    assert landed["plays_text"]["play_count"] == 12
    assert result.rows == len(rows)

    # CSV: RFC 4180 quoting, quoted newlines, '|' lists; a row with the wrong number of fields is unparseable
    def csv_file(path: Path) -> None:
        path.write_text(
            "ad_id,url,product_id,product_name,selling_points,title,play_count\n"
            'c1,https://cdn.example.com/c1.mp4,p1,"Lamp, large","fast|cheap","say ""hi""",\n'
            'c2,https://cdn.example.com/c2.mp4,p2,Lamp,,"two\nlines",7000\n'
            "c3,https://cdn.example.com/c3.mp4,p3,Lamp,a,b,1,extra\n"
            "c4,https://cdn.example.com/c4.mp4\n"
            'c5,https://cdn.example.com/c5.mp4,p5,Lamp,x,t,"1e30"\n')
    for old in (tuned / "landing" / DAY.isoformat()).iterdir():
        old.unlink()
    land(tuned, "m.csv", csv_file)
    run_filter(Lake(RunContext.create("filter", run_id="m-2")), str(tuned / "landing" / DAY.isoformat() / "m.csv"), DAY)
    landed = {r["ad_id"]: r for r in lake.read(CRAWL_MANIFEST).to_pylist()}
    assert sorted(landed) == ["c1", "c2"]
    assert landed["c1"]["title"] == 'say "hi"' and landed["c1"]["product_name"] == "Lamp, large"
    assert landed["c1"]["selling_points"] == ["fast", "cheap"] and landed["c2"]["title"] == "two\nlines"
    q = {r["entity_key"].split("/", 1)[1]: r["error_class"] for r in Quarantine(lake).entries().to_pylist()}
    assert q == {"-@row2": "unparseable_row", "-@row3": "unparseable_row", "c5@row4": "bad_value"}, q

    # Parquet with the wrong types: typed row by row; without a required column: refused whole
    for old in (tuned / "landing" / DAY.isoformat()).iterdir():
        old.unlink()
    table = pa.table({"ad_id": pa.array([1, 2]), "url": ["https://cdn.example.com/q1.mp4", "https://cdn.example.com/q2.mp4"],
                      "product_id": ["p1", "p2"], "product_name": ["n", "n"], "play_count": ["12", "lots"],
                      "selling_points": pa.array([3, 4])})
    path = land(tuned, "m.parquet", lambda p: pq.write_table(table, p))
    run_filter(Lake(RunContext.create("filter", run_id="m-3")), str(path), DAY)
    q = {r["entity_key"].split("/", 1)[1]: r["error_class"] for r in Quarantine(lake).entries().to_pylist()}
    assert q == {"1@row0": "bad_value", "2@row1": "bad_value"}, q
    pq.write_table(table.drop(["url"]), path)
    from adlake.ingest.manifest import ManifestError
    with pytest.raises(ManifestError, match="url"):
        run_filter(Lake(RunContext.create("filter", run_id="m-4")), str(path), DAY)
    whole = [r for r in Quarantine(lake).entries(stage="ingest.manifest").to_pylist()
             if r["error_class"] == "bad_manifest"]
    assert [r["entity_key"].rsplit("/", 1)[1] for r in whole] == ["m.parquet"]
