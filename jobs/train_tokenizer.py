"""Train the RQ-VAE tokenizers from a pinned silver.embeddings version; register them; gate production.

    python -m jobs.train_tokenizer [--modality video|audio|all] [--embeddings-version N] [--force] [--bootstrap]
                                   [--run-id ID]

One MLflow run per modality, both on one pinned silver.embeddings version; a training already registered
from the same table version and settings is not repeated (``--force`` repeats it). With nothing trained
(no training data, or every modality trained before) there is nothing to do (``NothingToDo``).
``--bootstrap`` trains only modalities without a production tokenizer, once silver.embeddings holds
``tokenizer.bootstrap_min_vectors`` of their vectors. The summary's ``production_moved`` says, per
modality, whether ``production`` moved. The ``production`` alias moves only when every gate passes; when a gate
fails, the version stays registered (tagged gate=failed), production stays where it was, and the job
exits non-zero after trying every modality.
"""

from __future__ import annotations

from typing import Any

from adlake.embed.encoders import encoder_id_for
from adlake.errors import GateFailed, NothingToDo
from adlake.jobs import cli, context, parser
from adlake.lake import Lake
from adlake.lake.sql import sql_literal
from adlake.tokenizer.registry import production_version, tokenizer_id
from adlake.tokenizer.train import ENTITY_TYPES, NoTrainingData, train_modality
from schemas.registry import EMBEDDINGS

JOB = "train_tokenizer"


def bootstrap_wait(lake: Lake, modality: str, embeddings_version: int | None) -> str | None:
    """Why ``--bootstrap`` does not train this modality (None: it does): a production tokenizer exists, or
    silver.embeddings holds fewer than ``tokenizer.bootstrap_min_vectors`` of its vectors."""
    production = production_version(lake.ctx, modality)
    if production is not None:
        return f"{modality} already has a production tokenizer ({tokenizer_id(modality, production)}): " \
               "--bootstrap trains only modalities without one"
    version = lake.version(EMBEDDINGS) if embeddings_version is None else embeddings_version
    if version is None:
        return "silver.embeddings does not exist yet: run ads_features first"
    encoder_id = encoder_id_for(lake.settings, modality)
    types = ", ".join(sql_literal(t) for t in ENTITY_TYPES[modality])
    n = lake.read(EMBEDDINGS, version=version, columns=["entity_id"],
                  where=f"entity_type IN ({types}) AND encoder_id = {sql_literal(encoder_id)}").num_rows
    wanted = lake.settings.tokenizer.bootstrap_min_vectors
    if n < wanted:
        return f"silver.embeddings@v{version} holds {n} {modality} vectors of {encoder_id}; a first tokenizer " \
               f"waits for {wanted} (tokenizer.bootstrap_min_vectors)"
    return None


def train(ctx, modalities: list[str], embeddings_version: int | None = None, force: bool = False, *,
          bootstrap: bool = False) -> dict[str, Any]:
    """Train each modality (one MLflow run each) on one pinned silver.embeddings version; the figures and
    gate verdicts, failures included, and whether each modality's ``production`` moved."""
    lake = Lake(ctx)
    inputs = lake.pin(EMBEDDINGS)
    summary: dict[str, Any] = {"job": JOB, "run_id": ctx.run_id, "inputs": inputs, "trained": {}, "skipped": {}}
    for modality in modalities:
        why = bootstrap_wait(lake, modality, embeddings_version) if bootstrap else None
        if why:
            summary["skipped"][modality] = why
            continue
        try:
            summary["trained"][modality] = train_modality(lake, modality, embeddings_version=embeddings_version,
                                                          force=force)
        except NoTrainingData as e:
            summary["skipped"][modality] = str(e)
    summary["gate_failures"] = {m: r["gate_failures"] for m, r in summary["trained"].items() if not r["gate_passed"]}
    summary["production_moved"] = {m: m in summary["trained"] and summary["trained"][m]["production"] !=
                                   summary["trained"][m]["previous_production"] for m in modalities}
    return summary


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--modality", choices=["video", "audio", "all"], default="all")
    p.add_argument("--embeddings-version", type=int, help="silver.embeddings version (default: the latest)")
    p.add_argument("--force", action="store_true",
                   help="train again even if this table version and these settings were trained before")
    p.add_argument("--bootstrap", action="store_true",
                   help="train only modalities without a production tokenizer, once silver.embeddings holds "
                        "tokenizer.bootstrap_min_vectors of their vectors")
    args = p.parse_args(argv)
    ctx = context(JOB, args)
    summary = train(ctx, ["video", "audio"] if args.modality == "all" else [args.modality], args.embeddings_version,
                    args.force, bootstrap=args.bootstrap)
    if summary["gate_failures"]:
        raise GateFailed(f"gates failed, production unchanged: {summary['gate_failures']}; figures: "
                         f"{ {m: _figures(r) for m, r in summary['trained'].items()} }")
    done = {m: r["skipped"] for m, r in summary["trained"].items() if r.get("skipped")}  # trained before
    if len(done) == len(summary["trained"]):  # nothing trained in this run
        raise NothingToDo("nothing to train: " + "; ".join(f"{m}: {why}" for m, why in {**summary["skipped"],
                                                                                          **done}.items()))
    return {**summary, "trained": {m: _figures(r) for m, r in summary["trained"].items()}}


def _figures(r: dict[str, Any]) -> dict[str, Any]:
    keys = ("version", "production", "heldout_cosine", "baseline_faiss_rq_cosine", "margin_over_baseline",
            "utilization", "baseline_faiss_rq_utilization", "perplexity", "n_train", "n_heldout", "skipped")
    return {k: r[k] for k in keys if k in r}


if __name__ == "__main__":
    cli(main)
