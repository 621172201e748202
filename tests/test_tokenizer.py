"""RQ-VAE tokenizers: token strings, gated registration in MLflow, versioned token tables, decoding."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from adlake.tokenizer.vocab import SPECIAL_TOKENS, code_tokens, parse_code_tokens, vocabulary


def test_code_tokens_round_trip_and_reject_malformed_strings() -> None:
    text = code_tokens("video", [3, 0, 255, 7])
    assert text == "<v_0_3><v_1_0><v_2_255><v_3_7>"
    modality, codes = parse_code_tokens(text + code_tokens("video", [1, 2, 3, 4]), levels=4)
    assert modality == "video" and codes.tolist() == [[3, 0, 255, 7], [1, 2, 3, 4]]
    assert code_tokens("audio", [5, 6]) == "<a_0_5><a_1_6>"
    for bad in ("<v_0_3><v_1_0><v_2_255>", "<v_1_3><v_0_0><v_2_1><v_3_1>", "<v_0_1><a_1_1><v_2_1><v_3_1>",
                "hello <v_0_1><v_1_1><v_2_1><v_3_1>", ""):
        with pytest.raises(ValueError):
            parse_code_tokens(bad, levels=4)


def test_vocabulary_is_exactly_levels_times_codes_plus_special_tokens() -> None:
    vocab = vocabulary("audio", levels=8, codebook_size=256)
    assert len(vocab["code_tokens"]) == len(set(vocab["code_tokens"])) == 8 * 256
    assert vocab["code_tokens"][0] == "<a_0_0>" and vocab["code_tokens"][-1] == "<a_7_255>"
    assert vocab["special_tokens"] == list(SPECIAL_TOKENS)
    assert {"<|frame_start|>", "<|frame_end|>", "<|clip_start|>", "<|audio_start|>"} <= set(SPECIAL_TOKENS)


def clustered_frames(videos: int, per_video: int, dim: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Frame-like vectors: each video has a few shots, each shot a run of near-duplicate frames."""
    rng = np.random.default_rng(seed)
    themes = rng.normal(size=(6, dim))
    ids, rows = [], []
    for v in range(videos):
        shots = themes[rng.integers(0, len(themes), 4)] + 0.5 * rng.normal(size=(4, dim))
        for f in range(per_video):
            ids.append(f"video{v:02d}:0:fps1:{f:04d}")
            rows.append(shots[f * 4 // per_video] + 0.15 * rng.normal(size=dim))
    x = np.asarray(rows, np.float32)
    return ids, x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def embedded_lake(lake):
    from adlake.embed.encoders import encoder_id_for
    from schemas.registry import EMBEDDINGS

    ids, x = clustered_frames(videos=12, per_video=30, dim=48)
    lake.merge(EMBEDDINGS, pa.table({
        "entity_id": ids, "entity_type": ["frame"] * len(ids),
        "encoder_id": [encoder_id_for(lake.settings, "video")] * len(ids),
        "vector": pa.array(x.tolist(), pa.list_(pa.float32())), "run_id": ["run-1"] * len(ids)}))
    return lake


@pytest.mark.mlflow
def test_a_tokenizer_that_misses_its_gate_leaves_production_unchanged(embedded_lake, monkeypatch) -> None:
    from adlake.config import get_settings
    from adlake.errors import GateFailed
    from adlake.tokenizer.registry import production_version
    from adlake.tokenizer.train import train_modality
    from jobs.train_tokenizer import main

    first = train_modality(embedded_lake, "video")
    assert first["gate_passed"], first["gate"]
    assert first["production"] == first["version"] == "1" and first["previous_production"] is None
    assert first["n_train"] + first["n_heldout"] == 360 and first["videos_heldout"] >= 1
    assert len(first["utilization"]) == len(first["perplexity"]) == 4

    # the same data, a gate no 4 × 16 tokenizer reaches after one epoch
    monkeypatch.setenv("ADLAKE__TOKENIZER__GATES__VIDEO__MIN_COSINE", "0.9999")
    monkeypatch.setenv("ADLAKE__TOKENIZER__MODEL__EPOCHS", "1")
    get_settings.cache_clear()
    with pytest.raises(GateFailed, match="production unchanged"):
        main(["--modality", "video", "--run-id", "gate-test"])
    assert production_version(embedded_lake.ctx, "video") == "1"

    from mlflow import MlflowClient

    failed = MlflowClient().get_model_version("adlake-rqvae-video", "2")
    assert failed.tags["gate"] == "failed"  # registered for inspection, never promoted
    run = MlflowClient().get_run(failed.run_id)
    from schemas.registry import EMBEDDINGS

    assert run.data.params["input.silver.embeddings.version"] == str(embedded_lake.version(EMBEDDINGS))
    assert run.data.metrics["gate_passed"] == 0.0 and "heldout_cosine" in run.data.metrics
    artifacts = {a.path for a in MlflowClient().list_artifacts(failed.run_id, "plots")}
    assert artifacts == {"plots/curves.png", "plots/codebooks.png"}


@pytest.mark.mlflow
def test_token_tables_are_versioned_decodable_and_reruns_add_nothing(embedded_lake) -> None:
    from adlake.errors import NothingToDo
    from adlake.tokenizer.registry import load_tokenizer
    from adlake.tokenizer.tokenize import tokenize_all
    from adlake.tokenizer.train import train_modality
    from jobs.tokenize import main as tokenize_main
    from schemas.registry import EMBEDDINGS, TOKENS

    lake = embedded_lake
    with pytest.raises(NothingToDo, match="tokenization waits for train_tokenizer"):
        tokenize_main(["--run-id", "tok-0"])  # no production tokenizer yet: skipped, no MLflow run
    train_modality(lake, "video")
    first = tokenize_all(lake)
    assert first.production == {"video": "1", "audio": None}
    assert first.tokenized == {"video": 360} and first.vectors_per_second["video"] > 0
    v1_rows = lake.read(TOKENS).sort_by("entity_id")
    version = lake.version(TOKENS)
    again = tokenize_all(lake)
    assert again.tokenized == {"video": 0} and again.already == {"video": 360}
    assert lake.version(TOKENS) == version
    with pytest.raises(NothingToDo, match=r"already tokenized by adlake-rqvae-video/1 \(360 rows\)"):
        tokenize_main(["--run-id", "tok-2"])  # nothing new, no sequence changed
    assert lake.latest_version(TOKENS) == version

    # decode: codes → vectors near the inputs; the token strings decode to the same vectors
    tok = load_tokenizer(lake.ctx, "video")
    assert tok.tokenizer_id == "adlake-rqvae-video/1"
    vectors = lake.read(EMBEDDINGS).sort_by("entity_id")
    x = np.stack(vectors["vector"].to_numpy(zero_copy_only=False))
    codes = np.array(v1_rows["codes"].to_pylist())
    decoded = tok.decode(codes)
    assert np.allclose(np.linalg.norm(decoded, axis=1), 1, atol=1e-5)
    assert float((decoded * x).sum(axis=1).mean()) > 0.5
    assert np.allclose(tok.decode_tokens(v1_rows["tokens"][0].as_py()), decoded[:1], atol=1e-5)
    assert tok.encode(x[:5]).tolist() == codes[:5].tolist()  # loaded from MLflow, it codes as it did

    # the same table version and settings: not trained again, production untouched
    again = train_modality(lake, "video")
    assert again["version"] == "1" and "already trained" in again["skipped"]
    assert again["heldout_cosine"] == tok.meta["figures"]["heldout_cosine"]

    # a second version (forced) adds its own rows; version 1's rows stay as they were
    second = train_modality(lake, "video", force=True)
    assert second["version"] == "2" and second["production"] == "2"
    tokenize_all(lake)
    by_version = lake.read(TOKENS).group_by("tokenizer_id").aggregate([([], "count_all")]).to_pylist()
    assert sorted((r["tokenizer_id"], r["count_all"]) for r in by_version) == \
        [("adlake-rqvae-video/1", 360), ("adlake-rqvae-video/2", 360)]
    still = lake.read(TOKENS, where="tokenizer_id = 'adlake-rqvae-video/1'").sort_by("entity_id")
    assert still.select(["entity_id", "codes", "tokens"]).equals(v1_rows.select(["entity_id", "codes", "tokens"]))


@pytest.mark.mlflow
def test_train_tokenizer_skips_what_was_trained_and_bootstraps_only_without_production(embedded_lake,
                                                                                         monkeypatch) -> None:
    from adlake.config import get_settings
    from adlake.errors import NothingToDo
    from jobs.train_tokenizer import main

    def min_vectors(n: int) -> None:
        monkeypatch.setenv("ADLAKE__TOKENIZER__BOOTSTRAP_MIN_VECTORS", str(n))
        get_settings.cache_clear()

    min_vectors(400)  # the lake holds 360 frame vectors and no audio ones
    with pytest.raises(NothingToDo, match="holds 360 video vectors .* waits for 400") as err:
        main(["--bootstrap", "--run-id", "boot-0"])
    assert "holds 0 audio vectors" in str(err.value)
    min_vectors(300)
    first = main(["--bootstrap", "--run-id", "boot-1"])
    assert first["production_moved"] == {"video": True, "audio": False}
    assert first["trained"]["video"]["production"] == "1" and "holds 0 audio vectors" in first["skipped"]["audio"]
    with pytest.raises(NothingToDo, match="already has a production tokenizer .adlake-rqvae-video/1"):
        main(["--bootstrap", "--modality", "video", "--run-id", "boot-2"])
    # the same table version and settings: trained before, so nothing to do (and production stays)
    with pytest.raises(NothingToDo, match="video: already trained from silver.embeddings@v"):
        main(["--modality", "video", "--run-id", "again"])
    with pytest.raises(NothingToDo, match="audio: silver.embeddings@v.* holds no audio vectors"):
        main(["--modality", "audio", "--run-id", "no-audio"])


def test_the_faiss_baseline_reports_each_levels_utilization_and_deep_levels_starve_at_demo_scale() -> None:
    """The measurement behind the demo's audio gate (conf/local.yaml): with about as many vectors as level 1
    has codes, level 1 gives nearly every vector its own code and the deeper levels get little to encode."""
    from adlake.tokenizer.rqvae import residual_kmeans_baseline

    x = np.random.default_rng(0).normal(size=(300, 16)).astype(np.float32)
    few = residual_kmeans_baseline(x[:260], x[260:], levels=3, codebook_size=256)
    assert len(few.utilization) == 3 and 0 < few.heldout_cosine <= 1
    assert few.utilization[0] > 0.8 and max(few.utilization[1:]) < 0.3
    many = residual_kmeans_baseline(np.random.default_rng(1).normal(size=(8000, 16)).astype(np.float32), x,
                                    levels=3, codebook_size=256)
    assert min(many.utilization) > 0.9  # enough vectors: every level is used
