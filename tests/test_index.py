"""FAISS indexes: sizing and recall logic, gated registration, refresh into a trained quantizer, rollback."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from adlake.config import IndexConf
from adlake.index.faiss_index import build_index, drop_self, measure, nlist_for, recall, refill
from adlake.vectors import mean_by_group


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_nlist_is_a_power_of_two_near_the_square_root_and_leaves_39_vectors_per_cell() -> None:
    assert nlist_for(1_000_000, 4) == 4096
    assert nlist_for(1_000_000, 2) == 2048
    assert nlist_for(800, 4) == 16  # 128 cells would get 6 training vectors each
    assert all(nlist_for(n, 4) * 39 <= n for n in (624, 5_000, 50_000))


def test_recall_counts_shared_neighbours_and_self_hits_are_dropped() -> None:
    exact = np.array([[1, 2, 3], [4, 5, 6]])
    assert recall(np.array([[1, 2, 3], [4, 5, 6]]), exact, 3) == 1.0
    assert recall(np.array([[3, 9, 1], [7, 8, 9]]), exact, 3) == pytest.approx(1 / 3)
    assert recall(np.array([[2, 1, 3], [4, 5, 6]]), exact, 1) == 0.5  # the first neighbour differs once
    found = drop_self(np.array([[7, 1, 2], [3, 4, 5]]), rows=np.array([7, 9]), k=2)
    assert found.tolist() == [[1, 2], [3, 4]]


def test_mean_by_group_averages_and_normalises_per_group_in_sorted_order() -> None:
    ids, x = mean_by_group(["b", "a", "b"], np.array([[1, 0], [0, 2], [0, 1]], np.float32))
    assert ids == ["a", "b"]
    assert np.allclose(x, [[0, 1], [np.sqrt(0.5), np.sqrt(0.5)]])


def shots(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """Near-duplicate runs around shot centres, as 1 fps frames are."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n // 8, dim))
    return unit(centres[np.arange(n) % len(centres)] + 0.15 * rng.normal(size=(n, dim)))


def test_an_ivf_build_tunes_nprobe_to_the_target_and_a_refresh_keeps_its_recall() -> None:
    x = shots(6000, 32)
    conf = IndexConf(exact_below=0, eval_queries=200, target_recall_at_10=0.95, train_points_per_list=[40])
    build, queries = build_index(x, conf)
    assert build.kind == "ivf" and build.factory == f"IVF{build.nlist},SQfp16" and build.nlist == 128
    assert build.tried and build.tried[0]["tune_recall_at_10"] >= 0.95
    assert set(queries.tune).isdisjoint(queries.report)
    figures = measure(build.index, x, queries)
    assert figures["recall_at_10"] >= 0.9 and figures["queries"] == 200
    # a pinned nprobe of 1 over structureless vectors: the recall a gate must catch
    noise = unit(np.random.default_rng(1).normal(size=(6000, 32)))
    broken, q = build_index(noise, conf.model_copy(update={"nprobe": 1}))
    assert measure(broken.index, noise, q)["recall_at_10"] < 0.6
    # re-adding the same vectors into the trained quantizer: same cells, same recall
    index, _, similarity = refill(build.index, x, conf)
    assert index.ntotal == len(x) and similarity == pytest.approx(build.cell_similarity, abs=0.02)
    assert measure(index, x, queries)["recall_at_10"] == figures["recall_at_10"]


def frame_rows(videos: range, clips_per_video: int, frames_per_clip: int, dim: int, noise: bool = False):
    """silver.frames and silver.embeddings rows for synthetic clips (1 fps frames)."""
    rng = np.random.default_rng(videos.start)
    frames, ids = [], []
    for v in videos:
        for c in range(clips_per_video):
            for f in range(frames_per_clip):
                clip = f"video{v:03d}:{c}"
                ids.append(f"{clip}:fps1:{f * 1000}")
                frames.append({"frame_id": ids[-1], "clip_id": clip, "video_id": f"video{v:03d}", "t_s": float(f),
                               "role": "fps1", "media_uri": "file:///dev/null", "width": 8, "height": 8,
                               "run_id": "run-1"})
    x = unit(rng.normal(size=(len(ids), dim))) if noise else shots(len(ids), dim, seed=videos.start)
    return frames, ids, x


def add_frames(lake, videos: range, noise: bool = True) -> None:
    from adlake.embed.encoders import encoder_id_for
    from schemas.registry import EMBEDDINGS, FRAMES

    frames, ids, x = frame_rows(videos, clips_per_video=10, frames_per_clip=2, dim=32, noise=noise)
    lake.merge(FRAMES, pa.Table.from_pylist(frames))
    lake.merge(EMBEDDINGS, pa.table({
        "entity_id": ids, "entity_type": ["frame"] * len(ids),
        "encoder_id": [encoder_id_for(lake.settings, "video")] * len(ids),
        "vector": pa.array(x.tolist(), pa.list_(pa.float32())), "run_id": ["run-1"] * len(ids)}))


def use_ivf(monkeypatch, **extra: str) -> None:
    from adlake.config import get_settings

    monkeypatch.delenv("ADLAKE__INDEX__NPROBE", raising=False)
    for key, value in {"EXACT_BELOW": "0", "EVAL_QUERIES": "200", "NPROBE_MAX": "16", **extra}.items():
        monkeypatch.setenv(f"ADLAKE__INDEX__{key}", value)
    get_settings.cache_clear()


@pytest.mark.mlflow
def test_a_broken_build_leaves_production_and_rollback_restores_the_previous_version(lake, monkeypatch) -> None:
    from mlflow import MlflowClient

    from adlake.errors import GateFailed, NothingToDo
    from adlake.index.refresh import build_and_promote
    from adlake.index.registry import NoIndex, load_index, production_model_version, prune, rollback
    from adlake.tokenizer.tokenize import tokenize_all
    from adlake.tokenizer.train import train_modality
    from jobs.build_index import main

    add_frames(lake, range(0, 40))  # 400 clips of 2 frames, structureless: an IVF index has to work for recall
    train_modality(lake, "video")
    tokenize_all(lake)

    first = build_and_promote(lake, "clips")
    assert first["version"] == first["production"] == "1" and first["gate_passed"]
    assert first["index_kind"] == "flat" and first["figures"]["recall_at_10"] == 1.0 and first["vectors"] == 400
    trip = first["token_roundtrip"]
    assert trip["computed"] and trip["queries"] == 400 and trip["tokenizer_id"] == "adlake-rqvae-video/1"
    assert 0 <= trip["own_video_in_top_k"] <= 1
    run = MlflowClient().get_run(first["mlflow_run_id"])
    assert run.data.params["input.silver.embeddings.version"] == str(first["input_versions"]["silver.embeddings"])
    assert run.data.params["tokenizer_id"] == "adlake-rqvae-video/1"
    assert {"recall_at_1", "recall_at_10", "qps", "build_s", "index_bytes",
            "token_roundtrip_own_video_top_k"} <= set(run.data.metrics)
    assert {a.path for a in MlflowClient().list_artifacts(run.info.run_id, "index")} == \
        {"index/index.faiss", "index/ids.parquet", "index/index.json"}

    # nothing new arrived: nothing is built, and the job has nothing to do
    again = build_and_promote(lake, "clips")
    assert again["status"] == "skipped" and again["production"] == "1"
    with pytest.raises(NothingToDo, match="clips: no new embeddings since production v1") as err:
        main(["--run-id", "unchanged"])
    assert "bgm: silver.embeddings@v" in str(err.value)  # no music windows: nothing to build either
    with pytest.raises(NothingToDo, match="clips already has a production index .adlake-index-clips/1."):
        main(["--kind", "clips", "--bootstrap", "--run-id", "bootstrap"])

    # more clips, and a deliberately broken build: an IVF index probing 1 of its cells
    add_frames(lake, range(40, 80))
    use_ivf(monkeypatch, NPROBE="1")
    with pytest.raises(GateFailed, match="production unchanged"):
        main(["--kind", "clips", "--run-id", "broken"])
    assert str(production_model_version(lake.ctx, "clips").version) == "1"
    assert MlflowClient().get_model_version("adlake-index-clips", "2").tags["gate"] == "failed"

    # the same data with nprobe tuned: passes, and becomes production
    use_ivf(monkeypatch)
    fixed = main(["--kind", "clips", "--run-id", "fixed"])["built"]["clips"]
    assert fixed["production"] == fixed["version"] == "3" and fixed["mode"] == "full"
    assert fixed["factory"] == "IVF16,SQfp16" and fixed["figures"]["recall_at_10"] >= 0.95
    assert fixed["pruned_versions"] == ["2"]  # a failed version keeps its index files only while it is the newest

    # more clips: re-added into the trained quantizer of version 3
    add_frames(lake, range(80, 90))
    refreshed = main(["--kind", "clips", "--run-id", "nightly"])["built"]["clips"]
    assert refreshed["mode"] == "refresh"
    assert refreshed["production"] == "4" and refreshed["vectors"] == 900
    assert MlflowClient().get_model_version("adlake-index-clips", "4").tags["mode"] == "refresh"

    loaded = load_index(lake.ctx, "clips")
    assert loaded.version == "4" and len(loaded.ids) == 900
    hits = loaded.search(loaded.vector_of("video085:3"), k=5)[0]
    assert hits[0].id == "video085:3" and hits[0].video_id == "video085" and hits[0].score > 0.99

    assert rollback(lake.ctx, "clips")["production"] == "3"
    assert rollback(lake.ctx, "clips")["production"] == "1"  # version 2 failed its gate: skipped
    with pytest.raises(NoIndex, match="did not pass"):
        rollback(lake.ctx, "clips", to=2)
    assert str(production_model_version(lake.ctx, "clips").version) == "1"

    # retention: with production back on v4 and one passing version kept, v1–v3 lose their index files
    assert rollback(lake.ctx, "clips", to=4)["production"] == "4"
    assert prune(lake.ctx, "clips") == []  # the default keeps 7 passing versions: nothing to prune
    assert prune(lake.ctx, "clips", keep=1) == ["1", "3"]
    assert prune(lake.ctx, "clips", keep=1) == []  # idempotent
    client = MlflowClient()
    for number in ("1", "2", "3"):
        mv = client.get_model_version("adlake-index-clips", number)
        assert mv.tags["pruned"] == "true"
        assert {a.path for a in client.list_artifacts(mv.run_id, "index")} == {"index/index.json"}
    assert {a.path for a in client.list_artifacts(client.get_model_version("adlake-index-clips", "4").run_id, "index")} == \
        {"index/index.faiss", "index/ids.parquet", "index/index.json"}
    with pytest.raises(NoIndex, match="pruned"):
        load_index(lake.ctx, "clips", version=3)
    with pytest.raises(NoIndex, match="pruned"):
        rollback(lake.ctx, "clips", to=3)
    with pytest.raises(NoIndex, match="no older gate-passing"):
        rollback(lake.ctx, "clips")
    assert load_index(lake.ctx, "clips").version == "4"


@pytest.mark.mlflow
def test_an_index_waits_for_embeddings(lake) -> None:
    from adlake.errors import NothingToDo
    from adlake.index.corpus import NoVectors
    from jobs.build_index import build, main

    summary = build(lake.ctx, ["clips", "bgm"])
    assert summary["built"] == {} and set(summary["skipped"]) == {"clips", "bgm"}
    with pytest.raises(NoVectors):
        from adlake.index.refresh import build_and_promote

        build_and_promote(lake, "bgm")
    with pytest.raises(NothingToDo, match="clips: silver.embeddings does not exist yet"):
        main(["--bootstrap"])  # no production index, but nothing to build one from
