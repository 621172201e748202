"""Encoders (bundled and from checkpoints the tests write) and the Ray embedding job on a parsed lake."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

pytestmark = [pytest.mark.media]


def jpeg(seed: int, size: tuple[int, int] = (315, 560)) -> bytes:
    pixels = (np.random.default_rng(seed).random((*size, 3)) * 255).astype(np.uint8)
    return cv2.imencode(".jpg", pixels)[1].tobytes()


def test_bundled_frame_encoder_gives_unit_vectors_and_a_stable_id() -> None:
    from adlake.config import load_settings
    from adlake.embed.encoders import EfficientNetLite0, encoder_id_for

    enc = EfficientNetLite0.load()
    vectors = enc.embed([jpeg(0), jpeg(1), jpeg(0)])
    assert vectors.shape == (3, 1280) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.allclose(vectors[0], vectors[2]) and not np.allclose(vectors[0], vectors[1])
    assert enc.info.encoder_id == encoder_id_for(load_settings(), "video")
    assert enc.info.encoder_id.startswith("efficientnet-lite0:") and len(enc.info.encoder_id.split(":")[1]) == 12


def test_resnet50_loads_from_a_checkpoint_the_test_writes(tmp_path: Path) -> None:
    import torch
    import torchvision

    from adlake.embed.encoders import ResNet50

    torch.manual_seed(0)
    path = tmp_path / "resnet50.pt"
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), path)
    enc = ResNet50.load(str(path))
    vectors = enc.embed([jpeg(0), jpeg(1)])
    assert vectors.shape == (2, 2048) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a torchvision ResNet-50"):
        ResNet50.load(str(tmp_path / "other.pt"))
    with pytest.raises(FileNotFoundError):
        ResNet50.load(str(tmp_path / "missing.pt"))


def test_bundled_audio_encoder_pools_whisper_states_per_clip() -> None:
    from adlake.embed.encoders import WhisperAudioEncoder

    enc = WhisperAudioEncoder.load()
    rng = np.random.default_rng(0)
    tone = np.sin(2 * np.pi * 440 * np.arange(16_000 * 3) / 16_000).astype(np.float32) * 0.3
    long = rng.normal(0, 0.1, 16_000 * 40).astype(np.float32)  # two encoder windows
    vectors = enc.embed([tone, long, tone])
    assert vectors.shape == (3, 384) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.allclose(vectors[0], vectors[2], atol=1e-4) and float(vectors[0] @ vectors[1]) < 0.999


def test_music_windows_are_whole_windows_clear_of_speech() -> None:
    from adlake.embed.job import music_windows

    assert music_windows(10.0, [], 3.0, 0.25) == [(0.0, 3.0), (3.0, 6.0), (6.0, 9.0)]
    # speech 2-4 s (kept clear by 0.25 s): 0-1.75 is too short, the next window starts at 4.25
    assert music_windows(12.0, [(2.0, 4.0)], 3.0, 0.25) == [(4.25, 7.25), (7.25, 10.25)]
    assert music_windows(12.0, [(8.0, 9.0), (0.5, 4.0)], 3.0, 0.25) == [(4.25, 7.25)]
    assert music_windows(5.0, [(0.0, 5.0)], 3.0, 0.25) == []


@pytest.fixture(scope="module")
def parsed_home(corpus: Path, tmp_path_factory: pytest.TempPathFactory):
    """Two corpus videos parsed into a fresh lake (frames and clip soundtracks to embed)."""
    from adlake.lake import Lake
    from adlake.parse.batch import commit_parse, parse_batch
    from adlake.provenance import RunContext
    from tests.conftest import adlake_home, register_videos

    home = tmp_path_factory.mktemp("embed") / "home"
    with adlake_home(home):
        truth = json.loads((corpus / "ground_truth.json").read_text())["ads"]
        files = sorted({corpus / t["file"] for t in truth.values() if t["kind"] == "voiceover"})[:2]
        lake = Lake(RunContext.create("test", run_id="parse-1"))
        register_videos(lake, files)
        parse_batch(lake, 0, 1)
        commit_parse(lake)
        yield SimpleNamespace(lake=lake, home=home)
        import ray

        ray.shutdown()


@pytest.mark.slow
def test_ray_job_embeds_every_frame_and_clip_once_and_resumes(parsed_home) -> None:
    from adlake.embed.encoders import encoder_id_for
    from adlake.embed.job import embed_pending, pending_bgm, pending_clip_audio, pending_frames
    from adlake.lake import Quarantine
    from adlake.media.store import MediaStore
    from adlake.provenance import RunContext
    from schemas.registry import CLIPS, EMBEDDINGS, FRAMES

    lake = parsed_home.lake
    settings = lake.settings
    frames = lake.read(FRAMES, where="role = 'fps1'").to_pylist()
    # one frame's blob is broken: it is quarantined, the rest are embedded
    store = MediaStore(settings)
    broken = frames[0]
    store.path(store.key_of(broken["media_uri"])).write_bytes(b"not a jpeg")
    shared = [f for f in frames if f["media_uri"] == broken["media_uri"]]

    result = embed_pending(lake, "frame")
    assert result.pending == len(frames)
    assert result.quarantined == len(shared) and result.embedded == len(frames) - len(shared)
    audio = embed_pending(lake, "audio")
    assert audio.pending == lake.count(CLIPS) == audio.embedded
    bgm = embed_pending(lake, "bgm")
    windows = pending_bgm(lake, bgm.encoder_id)
    assert windows == [] and bgm.embedded == bgm.pending  # every window where nobody speaks, embedded

    table = lake.read(EMBEDDINGS).to_pylist()
    by_type = {t: [r for r in table if r["entity_type"] == t] for t in ("frame", "audio", "bgm")}
    assert len(by_type["bgm"]) == bgm.embedded and all(":bgm:" in r["entity_id"] for r in by_type["bgm"])
    assert {r["encoder_id"] for r in by_type["frame"]} == {encoder_id_for(settings, "video")}
    assert {len(r["vector"]) for r in by_type["frame"]} == {1280}
    assert {len(r["vector"]) for r in by_type["audio"]} == {384}
    v = np.array(by_type["frame"][0]["vector"])
    assert abs(np.linalg.norm(v) - 1) < 1e-4
    entries = Quarantine(lake).entries(stage="embed").to_pylist()
    assert {e["entity_key"] for e in entries} == {f"frame/{f['frame_id']}" for f in shared}

    version = lake.version(EMBEDDINGS)
    lake.ctx = RunContext.create("test", run_id="embed-2")
    assert [p["entity_id"] for p in pending_frames(lake, result.encoder_id)] == sorted(f["frame_id"] for f in shared)
    assert pending_clip_audio(lake, audio.encoder_id) == []
    again = embed_pending(lake, "audio")
    assert again.pending == again.embedded == 0 and lake.version(EMBEDDINGS) == version

    # the job: nothing pending is nothing to do, decided before any MLflow run
    from adlake.errors import NothingToDo
    from jobs.embed import main

    with pytest.raises(NothingToDo, match="every clip soundtrack of silver.clips@v.* is already embedded"):
        main(["--entity", "audio", "--run-id", "embed-3"])
    assert not (parsed_home.home / "mlflow").exists() and lake.version(EMBEDDINGS) == version


def test_embedding_an_empty_lake_is_nothing_to_do(home) -> None:
    from adlake.errors import NothingToDo
    from jobs.embed import main

    with pytest.raises(NothingToDo, match="silver.frames does not exist yet"):
        main(["--entity", "frame"])
    with pytest.raises(NothingToDo, match="silver.clips and silver.parsed_videos do not exist yet"):
        main(["--entity", "audio"])
    assert not (home / "mlflow").exists()
