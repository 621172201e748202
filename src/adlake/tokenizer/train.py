"""train_tokenizer: one RQ-VAE per modality from a pinned silver.embeddings version, gated, registered.

The sample is every vector of the modality's entity types embedded by the configured encoder at that
version (a seeded subsample above ``max_train_vectors``), split by whole videos so that near-duplicate
frames of one shot never sit on both sides. One MLflow run per training holds the parameters, the
input table version, the loss curves, the held-out figures, the FAISS residual k-means baseline
trained on the same sample, PNG plots and the model; the version is registered, and the ``production``
alias moves to it only when every gate passes.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from adlake.errors import NothingToDo
from adlake.lake import Lake
from adlake.lake.sql import sql_literal
from adlake.tokenizer.registry import MODEL_NAMES, production_version, registry, tokenizer_id
from adlake.tokenizer.vocab import write_vocabulary
from schemas.registry import EMBEDDINGS

ENTITY_TYPES = {"video": ("frame",), "audio": ("audio", "bgm")}
# AutoCut's figures, reported beside whatever gate the configuration sets
PAPER_BAR = {"video": {"min_cosine": 0.89, "min_utilization": 0.95, "min_margin_over_baseline": 0.01},
             "audio": {"min_cosine": 0.96, "min_utilization": 0.95, "min_margin_over_baseline": 0.01}}


class NoTrainingData(NothingToDo):
    """Nothing to train on yet (no table, no vectors of the encoder, a single video): the task is skipped."""


@dataclass
class Sample:
    x_train: np.ndarray
    x_heldout: np.ndarray
    encoder_id: str
    embeddings_version: int
    videos_train: int
    videos_heldout: int
    vectors_available: int


def video_of(entity_id: str) -> str:
    """Entity ids start with their video id (``<video_id>:...``), the unit of the held-out split."""
    return entity_id.split(":", 1)[0]


def heldout_videos(videos: list[str], share: float, seed: int) -> set[str]:
    """A seeded, order-independent choice of about ``share`` of the videos (at least one, never all)."""
    ranked = sorted(set(videos), key=lambda v: hashlib.sha256(f"{seed}:{v}".encode()).hexdigest())
    n = min(max(1, round(share * len(ranked))), len(ranked) - 1)
    return set(ranked[:n])


def draw_sample(lake: Lake, modality: str, encoder_id: str, version: int | None = None) -> Sample:
    conf = lake.settings.tokenizer
    if version is None:  # the job's pinned version (pinned here when the job has not)
        version = lake.pin(EMBEDDINGS)[EMBEDDINGS.name]
    if version is None or not lake.exists(EMBEDDINGS):
        raise NoTrainingData("silver.embeddings does not exist yet: run ads_features first")
    types = ", ".join(sql_literal(t) for t in ENTITY_TYPES[modality])
    rows = lake.read(EMBEDDINGS, version=version, columns=["entity_id", "vector"],
                     where=f"entity_type IN ({types}) AND encoder_id = {sql_literal(encoder_id)}")
    if rows.num_rows == 0:
        raise NoTrainingData(f"silver.embeddings@v{version} holds no {modality} vectors of encoder {encoder_id}")
    order = np.argsort(np.array(rows["entity_id"].to_pylist()))  # reads come in no fixed order
    ids = [rows["entity_id"][int(i)].as_py() for i in order]
    x = np.stack(rows["vector"].to_numpy(zero_copy_only=False)).astype(np.float32)[order]
    videos = [video_of(e) for e in ids]
    if len(set(videos)) < 2:
        raise NoTrainingData(f"{modality}: vectors of {len(set(videos))} video(s); a held-out split needs two")
    held = heldout_videos(videos, conf.heldout_share, conf.seed)
    is_held = np.array([v in held for v in videos])
    train_idx = np.flatnonzero(~is_held)
    if len(train_idx) > conf.max_train_vectors:
        rng = np.random.default_rng(conf.seed)
        train_idx = np.sort(rng.choice(train_idx, conf.max_train_vectors, replace=False))
    return Sample(x[train_idx], x[is_held], encoder_id, version, len(set(videos)) - len(held), len(held), len(ids))


@dataclass
class GateResult:
    passed: bool
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def failures(self) -> list[str]:
        return [k for k, v in self.checks.items() if not v["passed"]]


def apply_gate(gate, cosine: float, utilization: list[float], baseline: float | None) -> GateResult:
    checks = {"reconstruction_cosine": {"value": cosine, "min": gate.min_cosine, "passed": cosine >= gate.min_cosine},
              "min_level_utilization": {"value": min(utilization), "min": gate.min_utilization,
                                        "passed": min(utilization) >= gate.min_utilization}}
    if gate.min_margin_over_baseline is not None:
        margin = None if baseline is None else round(cosine - baseline, 4)
        checks["margin_over_baseline"] = {"value": margin, "min": gate.min_margin_over_baseline,
                                          "passed": margin is not None and margin >= gate.min_margin_over_baseline}
    return GateResult(all(c["passed"] for c in checks.values()), checks)


def _plots(out: Path, losses: list[float], heldout: list[float], utilization: list[float],
           perplexity: list[float], codebook_size: int) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
    ax[0].plot(losses, label="training loss")
    ax[0].set_xlabel("epoch")
    ax[0].legend()
    ax[1].plot(heldout, color="tab:green", label="held-out reconstruction cosine")
    ax[1].set_xlabel("epoch")
    ax[1].legend()
    fig.tight_layout()
    curves = out / "curves.png"
    fig.savefig(curves, dpi=90)
    plt.close(fig)
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
    levels = list(range(len(utilization)))
    ax[0].bar(levels, utilization)
    ax[0].set_ylim(0, 1.05)
    ax[0].set_title("codebook utilization per level")
    ax[1].bar(levels, perplexity, color="tab:orange")
    ax[1].axhline(codebook_size, color="grey", linestyle="--")
    ax[1].set_title("code perplexity per level")
    for a in ax:
        a.set_xlabel("level")
    fig.tight_layout()
    codes = out / "codebooks.png"
    fig.savefig(codes, dpi=90)
    plt.close(fig)
    return [curves, codes]


def training_key(sample: Sample, modality: str, cfg, gate, conf) -> str:
    """What makes a training reproducible: the input table version, the encoder and every setting."""
    blob = {"modality": modality, "encoder_id": sample.encoder_id, "embeddings_version": sample.embeddings_version,
            "model": asdict(cfg), "gate": gate.model_dump(), "heldout_share": conf.heldout_share,
            "max_train_vectors": conf.max_train_vectors, "baseline": conf.baseline}
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:16]


def _summary(modality: str, number: str, meta: dict[str, Any], production: str | None, previous: str | None,
             mlflow_run_id: str, **extra: Any) -> dict[str, Any]:
    checks = meta["gate"]
    return {"modality": modality, "model": MODEL_NAMES[modality], "version": number,
            "tokenizer_id": tokenizer_id(modality, number),
            "gate_passed": all(c["passed"] for c in checks.values()),
            "gate_failures": [k for k, c in checks.items() if not c["passed"]], "gate": checks,
            "production": production, "previous_production": previous, "encoder_id": meta["encoder_id"],
            "embeddings_version": meta["embeddings_version"],
            **{k: meta[k] for k in ("n_train", "n_heldout", "videos_train", "videos_heldout")},
            "mlflow_run_id": mlflow_run_id, **meta["figures"], **extra}


def train_modality(lake: Lake, modality: str, *, embeddings_version: int | None = None,
                   model_overrides: dict[str, Any] | None = None, gate_overrides: dict[str, Any] | None = None,
                   force: bool = False) -> dict[str, Any]:
    """Train, evaluate, register; move ``production`` only when the gates pass. Returns the figures.

    A training that was already registered from the same table version, encoder and settings is not
    repeated (training is seeded and deterministic): its version and figures are returned, production
    untouched. ``force`` trains and registers again.
    """
    import mlflow
    import torch

    from adlake.config import TokenizerGate
    from adlake.embed.encoders import encoder_id_for
    from adlake.tokenizer.rqvae import RqvaeConfig, code_stats, residual_kmeans_baseline, train
    from adlake.tracking import job_run

    settings = lake.settings
    conf = settings.tokenizer
    sample = draw_sample(lake, modality, encoder_id_for(settings, modality), embeddings_version)
    cfg = RqvaeConfig(input_dim=sample.x_train.shape[1], seed=conf.seed,
                      **{**conf.model.model_dump(), **(model_overrides or {})})
    gate = conf.gates[modality].model_copy(update=gate_overrides or {})
    params = {"modality": modality, "encoder_id": sample.encoder_id, **asdict(cfg),
              "n_train": len(sample.x_train), "n_heldout": len(sample.x_heldout),
              "videos_train": sample.videos_train, "videos_heldout": sample.videos_heldout,
              "heldout_share": conf.heldout_share, **{f"gate.{k}": v for k, v in gate.model_dump().items()}}
    key = training_key(sample, modality, cfg, gate, conf)
    reg = registry(lake.ctx, modality)
    done = None if force else next((v for v in reg.versions() if v.tags.get("training_key") == key), None)
    if done is not None:
        meta = reg.read_json(done, "tokenizer/tokenizer.json")
        production = production_version(lake.ctx, modality)
        return _summary(modality, str(done.version), meta, production, production, done.run_id,
                        skipped=f"already trained from silver.embeddings@v{sample.embeddings_version} with these "
                                f"settings (training key {key}): version {done.version}")
    with job_run(lake.ctx, experiment="train_tokenizer", params={**params, "training_key": key},
                 inputs={EMBEDDINGS.name: sample.embeddings_version}) as run:
        torch.manual_seed(conf.seed)
        t0 = time.perf_counter()
        result = train(sample.x_train, sample.x_heldout, cfg,
                       on_epoch=lambda epoch, loss, held: run.metrics(
                           {"train_loss": loss, "heldout_cosine_epoch": held}, step=epoch))
        train_s = time.perf_counter() - t0
        held = code_stats(result.model, sample.x_heldout)
        on_train = code_stats(result.model, sample.x_train)
        baseline = baseline_s = baseline_error = None
        baseline_utilization: list[float] | None = None
        if conf.baseline:
            t0 = time.perf_counter()
            try:
                base = residual_kmeans_baseline(sample.x_train, sample.x_heldout, cfg.levels, cfg.codebook_size,
                                                seed=conf.seed)
                baseline, baseline_utilization = base.heldout_cosine, base.utilization
            except RuntimeError as e:  # e.g. FAISS refuses a sample smaller than the dimension: not computed
                baseline_error = str(e).strip().splitlines()[-1][:300]
            baseline_s = round(time.perf_counter() - t0, 2)
        verdict = apply_gate(gate, held.reconstruction_cosine, on_train.utilization, baseline)
        paper = apply_gate(TokenizerGate(**PAPER_BAR[modality]), held.reconstruction_cosine, on_train.utilization,
                           baseline)
        figures = {"heldout_cosine": held.reconstruction_cosine, "train_cosine": on_train.reconstruction_cosine,
                   "baseline_faiss_rq_cosine": baseline, "baseline_error": baseline_error,
                   "baseline_faiss_rq_utilization": baseline_utilization,
                   "margin_over_baseline": None if baseline is None else round(held.reconstruction_cosine - baseline, 4),
                   "utilization": on_train.utilization, "perplexity": on_train.perplexity,
                   "heldout_utilization": held.utilization, "heldout_perplexity": held.perplexity,
                   "distinct_tuples_train": on_train.distinct_tuples, "distinct_tuples_heldout": held.distinct_tuples,
                   "train_s": round(train_s, 2), "baseline_s": baseline_s,
                   "paper_bar_passed": paper.passed, "paper_bar_failures": paper.failures}
        run.metrics({k: v for k, v in figures.items() if isinstance(v, int | float)})
        run.metrics({f"utilization_level_{i}": u for i, u in enumerate(on_train.utilization)})
        run.metrics({f"perplexity_level_{i}": p for i, p in enumerate(on_train.perplexity)})
        run.metrics({"gate_passed": float(verdict.passed)})
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp)
            for png in _plots(out, result.losses, result.heldout_cosine, on_train.utilization, on_train.perplexity,
                              cfg.codebook_size):
                run.artifact(png, "plots")
            bundle = out / "tokenizer"
            bundle.mkdir()
            result.model.save(bundle / "model.pt")
            meta = {"modality": modality, "encoder_id": sample.encoder_id, "config": asdict(cfg),
                    "embeddings_version": sample.embeddings_version, "training_key": key, "figures": figures,
                    "n_train": len(sample.x_train), "n_heldout": len(sample.x_heldout),
                    "videos_train": sample.videos_train, "videos_heldout": sample.videos_heldout,
                    "gate": verdict.checks}
            (bundle / "tokenizer.json").write_text(json.dumps(meta, indent=1, default=str))
            write_vocabulary(bundle / "vocab.json", modality, cfg.levels, cfg.codebook_size)
            mlflow.log_artifacts(str(bundle), "tokenizer")
        previous = production_version(lake.ctx, modality)
        number = str(reg.register(
            run.run_id, "tokenizer", passed=verdict.passed,
            tags={"encoder_id": sample.encoder_id, "training_key": key,
                  "input.silver.embeddings.version": str(sample.embeddings_version)},
            description=f"{modality} RQ-VAE, held-out cosine {held.reconstruction_cosine}").version)
        summary = _summary(modality, number, json.loads(json.dumps(meta, default=str)),
                           number if verdict.passed else previous, previous, run.run_id)
        run.summary(summary)
    return summary

