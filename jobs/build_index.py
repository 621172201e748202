"""Build, evaluate and register the FAISS indexes from pinned table versions; promote only past the gate.

    python -m jobs.build_index [--kind clips|bgm|all] [--embeddings-version N] [--force] [--retrain] [--bootstrap]
                               [--run-id ID]

One MLflow run per index built. Nothing is built when the production version already holds the same
embeddings with the same settings (``--force`` builds anyway); ``--retrain`` trains a new coarse
quantizer instead of re-adding into the production one; ``--bootstrap`` builds only kinds without a
production index yet. With every kind skipped (no vectors, nothing new since production, or bootstrapped
already) there is nothing to do (``NothingToDo``). When a gate fails the version stays
registered (tagged gate=failed), production stays where it was, and the job exits non-zero after
trying every kind.
"""

from __future__ import annotations

from typing import Any

from adlake.errors import GateFailed, NothingToDo
from adlake.index.corpus import NoVectors
from adlake.index.refresh import build_and_promote
from adlake.index.registry import MODEL_NAMES, production_model_version
from adlake.jobs import cli, context, parser
from adlake.lake import Lake
from schemas.registry import EMBEDDINGS, FRAMES, TOKENS

JOB = "build_index"
KINDS = ["clips", "bgm"]


def build(ctx, kinds: list[str], embeddings_version: int | None = None, force: bool = False,
          retrain: bool = False, *, bootstrap: bool = False) -> dict[str, Any]:
    """Each kind in turn, from one pinned version of each input table; the figures and verdicts, failures
    included. ``bootstrap``: only kinds without a production index yet."""
    lake = Lake(ctx)
    inputs = lake.pin(EMBEDDINGS, FRAMES, TOKENS)  # TOKENS: the token round trip
    summary: dict[str, Any] = {"job": JOB, "run_id": ctx.run_id, "inputs": inputs, "built": {}, "skipped": {}}
    for kind in kinds:
        if bootstrap:
            current = production_model_version(ctx, kind)
            if current is not None:
                summary["skipped"][kind] = f"{kind} already has a production index ({MODEL_NAMES[kind]}/" \
                                           f"{current.version}): --bootstrap builds only kinds without one"
                continue
        try:
            result = build_and_promote(lake, kind, embeddings_version=embeddings_version, force=force,
                                       retrain=retrain)
        except NoVectors as e:
            summary["skipped"][kind] = str(e)
            continue
        if result["status"] == "skipped":
            summary["skipped"][kind] = result["reason"]
        else:
            summary["built"][kind] = result
    summary["gate_failures"] = {k: r["gate_failures"] for k, r in summary["built"].items() if not r["gate_passed"]}
    return summary


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--kind", choices=[*KINDS, "all"], default="all")
    p.add_argument("--embeddings-version", type=int, help="silver.embeddings version (default: the latest)")
    p.add_argument("--force", action="store_true", help="build even when nothing new arrived")
    p.add_argument("--retrain", action="store_true", help="train a new coarse quantizer")
    p.add_argument("--bootstrap", action="store_true", help="build only kinds without a production index yet")
    args = p.parse_args(argv)
    ctx = context(JOB, args)
    summary = build(ctx, KINDS if args.kind == "all" else [args.kind], args.embeddings_version, args.force,
                    args.retrain, bootstrap=args.bootstrap)
    if summary["gate_failures"]:
        raise GateFailed(f"index gates failed, production unchanged: {summary['gate_failures']}; "
                         f"figures: { {k: figures(r) for k, r in summary['built'].items()} }")
    if not summary["built"]:
        raise NothingToDo("nothing to build: " + "; ".join(f"{k}: {why}" for k, why in summary["skipped"].items()))
    return {**summary, "built": {k: figures(r) for k, r in summary["built"].items()}}


def figures(r: dict[str, Any]) -> dict[str, Any]:
    keys = ("version", "production", "mode", "plan_reason", "quantizer_from", "factory", "nprobe", "vectors", "build_s",
            "figures", "token_roundtrip", "gate_passed", "pruned_versions", "prune_error")
    return {k: r[k] for k in keys if k in r}


if __name__ == "__main__":
    cli(main)
