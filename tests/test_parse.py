"""ads_parse below Airflow: frame views, one decode for shots and frames, a broken video in a batch, reruns."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from adlake.media.frames import clip_samples, fit_long_side, spatial_view, temporal_views


def samples(*times: float) -> list:
    return [SimpleNamespace(t_s=t) for t in times]


def test_views_keep_the_aspect_ratio_and_orientation() -> None:
    assert fit_long_side(1920, 1080, 996) == (996, 560)
    assert fit_long_side(1280, 720, 560) == (560, 315)
    assert fit_long_side(720, 1280, 996) == (560, 996)  # portrait stays portrait
    assert fit_long_side(320, 180, 996) == (996, 560)  # small sources are scaled up to the stated size


def test_a_change_spread_over_frames_is_a_dissolve() -> None:
    import numpy as np

    from adlake.clips.shots import _transition

    cut = np.ones(30)
    cut[15] = 80.0
    spread = np.ones(30)
    spread[13:16] = (20.0, 30.0, 25.0)
    assert _transition(cut, 15) == "cut"
    assert _transition(spread, 15) == "dissolve"


def test_temporal_views_spread_uniformly_and_spatial_is_the_middle() -> None:
    s = samples(*(t + 0.5 for t in range(11)))
    assert [x.t_s for x in temporal_views(s)] == [0.5, 3.0 - 0.5, 5.5, 8.0 + 0.5, 10.5]
    assert [x.t_s for x in temporal_views(s[:3])] == [0.5, 1.5, 2.5]  # fewer than five: all of them
    assert spatial_view(s, 2.0, 7.0).t_s == 4.5
    assert [x.t_s for x in clip_samples(s, 2.0, 4.5, last=False)] == [2.5, 3.5]
    assert [x.t_s for x in clip_samples(samples(9.5, 10.0), 9.0, 10.0, last=True)] == [9.5, 10.0]


@pytest.mark.media
def test_one_decode_gives_shots_and_1fps_frames_in_display_orientation(tmp_path: Path) -> None:
    from adlake.clips.shots import boundaries, detect_shots, small_frames
    from adlake.config import ShotsConf
    from adlake.media.frames import decode_once

    plain, rotated = tmp_path / "plain.mp4", tmp_path / "rotated.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "color=c=red:s=320x180:r=25:d=3", "-f", "lavfi",
                    "-i", "color=c=blue:s=320x180:r=25:d=3", "-filter_complex", "[0:v][1:v]concat=n=2:v=1[v]",
                    "-map", "[v]", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(plain)], check=True)
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(plain), "-c", "copy", "-metadata:s:v:0", "rotate=90",
                    str(rotated)], check=True)
    conf = ShotsConf(detector="adaptive")
    for path, portrait in ((plain, False), (rotated, True)):
        decoded = decode_once(path, small_frames(conf))
        shots = detect_shots(decoded, conf)
        assert boundaries(shots) == [pytest.approx(3.0, abs=0.05)]
        assert [s.transition for s in shots] == ["start", "cut"]
        assert [s.t_s for s in decoded.samples] == pytest.approx([0.5, 1.5, 2.5, 3.5, 4.5, 5.5], abs=0.03)
        assert decoded.frames == 150  # every frame decoded once, for both jobs
        assert decoded.small.shape[1:3] == ((80, 45) if portrait else (45, 80))  # the detector's 1/4 size
        spatial = decoded.samples[0].view(996)  # encoded on demand, scaled up to the stated size
        assert (spatial.width, spatial.height) == ((560, 996) if portrait else (996, 560))
        assert decoded.samples[0].views[560].width == (315 if portrait else 560)
        import cv2
        import numpy as np

        first = cv2.imdecode(np.frombuffer(spatial.data, np.uint8), cv2.IMREAD_COLOR)
        assert first[..., 2].mean() > 200 and first[..., 0].mean() < 50  # red, as decoded (BGR)
    from adlake.media.frames import DecodeError

    with pytest.raises(DecodeError, match="runs past 4 s"):  # what a decode holds is bounded
        decode_once(plain, small_frames(conf), max_seconds=4)


@pytest.mark.media
def test_the_scores_computed_at_once_cut_where_pyscenedetect_cuts_frame_by_frame(corpus: Path) -> None:
    """The vectorised content scores feed PySceneDetect's own decision logic: the same cuts as its
    unmodified detectors reading the same frames one by one, on every video of the test corpus."""
    from scenedetect import AdaptiveDetector, ContentDetector, FrameTimecode

    from adlake.clips.shots import _scenedetect, small_frames
    from adlake.config import ShotsConf
    from adlake.media.frames import decode_once

    truth = json.loads((corpus / "ground_truth.json").read_text())["ads"]
    files = sorted({corpus / t["file"] for t in truth.values() if t["kind"] != "bad"})
    found = 0
    for detector in ("adaptive", "content"):
        conf = ShotsConf(detector=detector, blend_check=False)  # the detectors alone
        for path in files:
            decoded = decode_once(path, small_frames(conf), samples=False)
            reference = (ContentDetector(threshold=conf.threshold, min_scene_len=conf.min_scene_len_frames)
                         if detector == "content" else
                         AdaptiveDetector(adaptive_threshold=conf.adaptive_threshold,
                                          min_scene_len=conf.min_scene_len_frames))
            cuts = []
            for i, frame in enumerate(decoded.small):
                cuts += reference.process_frame(FrameTimecode(i, decoded.fps), frame)
            cuts += reference.post_process(FrameTimecode(decoded.frames - 1, decoded.fps))
            expected = sorted({c.frame_num for c in cuts if 0 < c.frame_num < decoded.frames})
            assert [f for f, _ in _scenedetect(conf, decoded)] == expected, (detector, path.name)
            found += len(expected)
    assert found > 0


@pytest.fixture(scope="module")
def parsed_lake(corpus: Path, tmp_path_factory: pytest.TempPathFactory):
    """The corpus's good videos plus one whose blob is broken, parsed in two batches and committed."""
    from adlake.lake import Lake
    from adlake.media.store import MediaStore
    from adlake.parse.batch import commit_parse, parse_batch, plan_batches
    from adlake.provenance import RunContext
    from tests.conftest import adlake_home, register_videos

    home = tmp_path_factory.mktemp("parse") / "home"
    with adlake_home(home):
        truth = json.loads((corpus / "ground_truth.json").read_text())["ads"]
        files = sorted({corpus / t["file"] for t in truth.values() if t["kind"] != "bad"})
        broken_copy = home.parent / "broken.mp4"
        broken_copy.write_bytes((files[0]).read_bytes()[:-1] + b"\x01")  # a distinct video id …
        lake = Lake(RunContext.create("test", run_id="parse-1"))
        ids = register_videos(lake, [*files, broken_copy])
        store = MediaStore(lake.settings)
        blob = store.path(store.blob_key(ids[-1]))
        blob.write_bytes(blob.read_bytes()[:4096])  # … whose bytes then break in the store
        plan = plan_batches(lake)
        results = [parse_batch(lake, b["batch"], b["batches"]) for b in plan]
        summary = commit_parse(lake)
        yield SimpleNamespace(lake=lake, ids=ids, broken=ids[-1], plan=plan, results=results, summary=summary,
                              files=files, home=home)


@pytest.mark.media
@pytest.mark.slow
def test_a_broken_video_is_quarantined_and_its_batch_goes_on(parsed_lake) -> None:
    from adlake.lake import Quarantine

    rec = parsed_lake.summary["reconciliation"]
    assert rec["balanced"] and rec["videos"] == len(parsed_lake.ids)
    assert rec["quarantined"] == 1 and rec["parsed"] + rec["filtered"] == len(parsed_lake.files)
    assert sum(r.failed for r in parsed_lake.results) == 1  # the batch task itself returned normally
    entry = Quarantine(parsed_lake.lake).entries(stage="parse").to_pylist()
    assert [e["entity_key"] for e in entry] == [parsed_lake.broken]
    assert entry[0]["error_class"] in {"audio_decode", "video_decode"} and entry[0]["message"]


@pytest.mark.media
@pytest.mark.slow
def test_parse_outputs_meet_the_frame_bar_and_keep_every_row_keyed(parsed_lake, corpus: Path) -> None:
    from adlake.evaluate.parse import score_lake
    from adlake.media.store import MediaStore
    from schemas.registry import CLIPS, FRAMES, PARSED_VIDEOS

    lake = parsed_lake.lake
    score = score_lake(lake, corpus)
    assert score["videos_scored"] == len(parsed_lake.files)
    assert score["frames"]["pass"], score["frames"]
    assert score["shots"]["pass"], score["shots"]
    labels = score["shots"]["transition_labels"]
    assert labels["found"] > 0 and labels["right"] >= 0.8 * labels["found"], labels  # cut vs dissolve
    outcomes = lake.read(PARSED_VIDEOS).to_pylist()
    clips = lake.read(CLIPS).to_pylist()
    for o in outcomes:  # clips of parsed videos cover them end to end, within 2-60 s
        mine = sorted((c for c in clips if c["video_id"] == o["video_id"]), key=lambda c: c["idx"])
        assert len(mine) == (o["clips"] if o["status"] == "parsed" else 0)
        if mine:
            assert mine[0]["start_s"] == 0 and mine[-1]["end_s"] == pytest.approx(o["duration_s"], abs=0.01)
            assert all(2.0 <= c["end_s"] - c["start_s"] <= 60.0 for c in mine)
        if o["has_audio"]:
            assert o["speech_audio_uri"] and o["original_audio_uri"]
    store = MediaStore(lake.settings)
    frame = lake.read(FRAMES, where="role = 'spatial'", limit=1).to_pylist()[0]
    assert store.path(store.key_of(frame["media_uri"])).read_bytes()[:2] == b"\xff\xd8"  # a JPEG


@pytest.mark.media
@pytest.mark.slow
def test_a_rerun_skips_finished_videos_and_changes_nothing(parsed_lake) -> None:
    from adlake.parse.batch import OUTPUTS, commit_parse, parse_batch, pending_videos
    from adlake.provenance import RunContext

    lake = parsed_lake.lake
    lake.ctx = RunContext.create("test", run_id="parse-2")
    versions = {s.name: lake.version(s) for s in OUTPUTS}
    assert [v["video_id"] for v in pending_videos(lake)] == [parsed_lake.broken]  # only the quarantined one
    result = parse_batch(lake, 0, 1)
    assert result.videos == 1 and result.failed == 1
    summary = commit_parse(lake)
    assert summary["reconciliation"]["balanced"]
    assert {s.name: lake.version(s) for s in OUTPUTS} == versions
    from adlake.lake import Quarantine

    assert Quarantine(lake).entries(stage="parse").to_pylist()[0]["attempts"] == 2

    # the job with nothing staged: nothing to commit, once the tables reconcile; no MLflow run
    from adlake.errors import NothingToDo
    from jobs.commit_parse import main

    with pytest.raises(NothingToDo, match=rf"nothing staged to commit; ads_parse reconciles: {len(parsed_lake.ids)} "
                                          rf"videos = \d+ parsed \+ \d+ filtered \+ 1 quarantined"):
        main(["--run-id", "parse-3"])
    assert {s.name: lake.version(s) for s in OUTPUTS} == versions and not (parsed_lake.home / "mlflow").exists()


def test_commit_parse_with_nothing_staged_still_checks_the_reconciliation(home) -> None:
    import datetime as dt

    import pyarrow as pa

    from adlake.errors import NothingToDo
    from adlake.lake import Lake
    from adlake.parse.batch import ParseReconciliationError
    from adlake.provenance import RunContext
    from jobs.commit_parse import main
    from schemas.registry import VIDEOS

    with pytest.raises(NothingToDo, match="0 videos = 0 parsed"):
        main([])
    Lake(RunContext.create("test")).merge(VIDEOS, pa.Table.from_pylist([{
        "video_id": "v1", "source_uri": "file:///v1.mp4", "media_uri": "media/v1", "bytes": 1, "has_audio": False,
        "probed_at": dt.datetime.now(dt.UTC), "run_id": "register"}], schema=VIDEOS.schema))
    with pytest.raises(ParseReconciliationError, match='"pending": 1'):  # a video in no place is an error
        main([])

