"""Build the training sets: leak-safe splits, task samples, the benchmark and the JSONL exports.

    python -m jobs.build_training_sets [--run-id ID]

Everything is a function of the input tables' current versions (pinned at the start, written into
every row as ``source_versions`` and logged with the MLflow run) and ``datasets.seed``: a rerun on the
same versions commits nothing and rewrites byte-identical exports, whose sha256 it prints. With no
selected ad with clips yet, there is nothing to do (``NotReady``, a ``NothingToDo``).
"""

from __future__ import annotations

from typing import Any

from adlake.datasets.build import INPUTS, build_training_sets, read_inputs
from adlake.jobs import cli, context, parser
from adlake.lake import Lake
from adlake.tracking import job_run

JOB = "build_training_sets"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    ctx = context(JOB, args)
    lake = Lake(ctx)
    pins = lake.pin(*INPUTS)
    inputs = read_inputs(lake)  # NotReady before any MLflow run
    conf = lake.settings.datasets
    with job_run(ctx, params={"seed": conf.seed, "near_duplicate_cosine": conf.near_duplicate_cosine,
                              **{k: v for k, v in inputs.source_versions.items() if k.startswith(("tokenizer.",
                                                                                                  "encoder."))}},
                 inputs=pins) as run:
        result = build_training_sets(lake, inputs)
        run.params({"build_key": result.build_key, "export_sha256": result.export_hash,
                    "export_dir": result.export_dir, "benchmark_version": result.benchmark_version,
                    "benchmark_hash": result.benchmark_hash})
        run.metrics({"benchmark_samples": result.benchmark_samples,
                     **{f"ads_{split}": sizes.get("ads", 0) for split, sizes in result.sizes.items()},
                     **{f"samples_{task}_{split}": n for task, by_split in result.samples.items()
                        for split, n in by_split.items()},
                     "leaks": sum(len(v) for v in result.leaks.values())})
        summary = {"job": JOB, "run_id": ctx.run_id, "mlflow_run_id": run.run_id, **result.as_dict()}
        run.summary(summary)
    return summary


if __name__ == "__main__":
    cli(main)
