"""Train the RQ-VAE tokenizers from a pinned silver.embeddings version; register them; gate production.

    python -m jobs.train_tokenizer [--modality video|audio|all] [--embeddings-version N] [--run-id ID]

One MLflow run per modality; a training already registered from the same table version and settings is
not repeated (``--force`` repeats it). The ``production`` alias moves only when every gate passes; when a gate
fails, the version stays registered (tagged gate=failed), production stays where it was, and the job
exits non-zero after trying every modality.
"""

from __future__ import annotations

from typing import Any

from adlake.jobs import cli, context, parser
from adlake.lake import Lake
from adlake.tokenizer.train import NoTrainingData, train_modality

JOB = "train_tokenizer"


class TokenizerGateFailed(RuntimeError):
    pass


def train(ctx, modalities: list[str], embeddings_version: int | None = None, force: bool = False) -> dict[str, Any]:
    """Train each modality (one MLflow run each); the figures and gate verdicts, failures included."""
    lake = Lake(ctx)
    summary: dict[str, Any] = {"job": JOB, "run_id": ctx.run_id, "trained": {}, "skipped": {}}
    for modality in modalities:
        try:
            summary["trained"][modality] = train_modality(lake, modality, embeddings_version=embeddings_version,
                                                          force=force)
        except NoTrainingData as e:
            summary["skipped"][modality] = str(e)
    summary["gate_failures"] = {m: r["gate_failures"] for m, r in summary["trained"].items() if not r["gate_passed"]}
    return summary


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--modality", choices=["video", "audio", "all"], default="all")
    p.add_argument("--embeddings-version", type=int, help="silver.embeddings version (default: the latest)")
    p.add_argument("--force", action="store_true",
                   help="train again even if this table version and these settings were trained before")
    args = p.parse_args(argv)
    ctx = context(JOB, args)
    summary = train(ctx, ["video", "audio"] if args.modality == "all" else [args.modality], args.embeddings_version,
                    args.force)
    if summary["gate_failures"]:
        raise TokenizerGateFailed(f"gates failed, production unchanged: {summary['gate_failures']}; figures: "
                                  f"{ {m: _figures(r) for m, r in summary['trained'].items()} }")
    if not summary["trained"]:
        raise NoTrainingData(f"nothing to train on: {summary['skipped']}")
    return {**summary, "trained": {m: _figures(r) for m, r in summary["trained"].items()}}


def _figures(r: dict[str, Any]) -> dict[str, Any]:
    keys = ("version", "production", "heldout_cosine", "baseline_faiss_rq_cosine", "margin_over_baseline",
            "utilization", "perplexity", "n_train", "n_heldout", "skipped")
    return {k: r[k] for k in keys if k in r}


if __name__ == "__main__":
    cli(main)
