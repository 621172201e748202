"""Build, evaluate and register the FAISS indexes from pinned table versions; promote only past the gate.

    python -m jobs.build_index [--kind clips|bgm|all] [--embeddings-version N] [--force] [--retrain] [--run-id ID]

One MLflow run per index built. Nothing is built when the production version already holds the same
embeddings with the same settings (``--force`` builds anyway); ``--retrain`` trains a new coarse
quantizer instead of re-adding into the production one. When a gate fails the version stays
registered (tagged gate=failed), production stays where it was, and the job exits non-zero after
trying every kind.
"""

from __future__ import annotations

from typing import Any

from adlake.index.corpus import NoVectors
from adlake.index.refresh import IndexGateFailed, build_and_promote
from adlake.jobs import cli, context, parser
from adlake.lake import Lake

JOB = "build_index"
KINDS = ["clips", "bgm"]


def build(ctx, kinds: list[str], embeddings_version: int | None = None, force: bool = False,
          retrain: bool = False) -> dict[str, Any]:
    """Each kind in turn; the figures and verdicts, failures included."""
    lake = Lake(ctx)
    summary: dict[str, Any] = {"job": JOB, "run_id": ctx.run_id, "built": {}, "skipped": {}}
    for kind in kinds:
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
    args = p.parse_args(argv)
    ctx = context(JOB, args)
    summary = build(ctx, KINDS if args.kind == "all" else [args.kind], args.embeddings_version, args.force,
                    args.retrain)
    if summary["gate_failures"]:
        raise IndexGateFailed(f"index gates failed, production unchanged: {summary['gate_failures']}; "
                              f"figures: { {k: figures(r) for k, r in summary['built'].items()} }")
    return {**summary, "built": {k: figures(r) for k, r in summary["built"].items()}}


def figures(r: dict[str, Any]) -> dict[str, Any]:
    keys = ("version", "production", "mode", "plan_reason", "quantizer_from", "factory", "nprobe", "vectors", "build_s",
            "figures", "token_roundtrip", "gate_passed", "pruned_versions", "prune_error")
    return {k: r[k] for k in keys if k in r}


if __name__ == "__main__":
    cli(main)
