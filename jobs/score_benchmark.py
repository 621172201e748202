"""Score the benchmark's baselines (and a predictions file) on a pinned benchmark version.

    python -m jobs.score_benchmark [--predictions FILE]... [--benchmark-version N] [--run-id ID]

Writes report.json and report.md under $ADLAKE_HOME/reports/benchmark/ and an MLflow run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from adlake.evaluate.report import evaluate
from adlake.jobs import cli, context, parser
from adlake.lake import Lake
from schemas.registry import BENCHMARK

JOB = "score_benchmark"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--predictions", type=Path, action="append",
                   help="JSONL predictions to score beside the baselines (repeatable; each file one system)")
    p.add_argument("--benchmark-version", type=int, help="gold.benchmark version (default: the latest)")
    args = p.parse_args(argv)
    lake = Lake(context(JOB, args))
    pinned = lake.pin(BENCHMARK)[BENCHMARK.name]  # the run logs the version it scores
    report = evaluate(lake, args.predictions,
                      benchmark_version=pinned if args.benchmark_version is None else args.benchmark_version)
    return {"job": JOB, **{k: report[k] for k in ("benchmark", "benchmark_version", "samples", "systems",
                                                  "ranking", "confidence", "report_dir", "mlflow_run_id")},
            "judge": report["judge"]["status"]}


if __name__ == "__main__":
    cli(main)
