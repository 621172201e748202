"""Score the editor models' benchmark answers beside the baselines, in one report with confidence intervals.

    python -m jobs.score_editor [--run-id ID]

Reads the predictions train_llm and train_ssmp wrote for the pinned gold.benchmark version
(reports/benchmark/v<N>-editor/predictions/) and writes report.json and report.md beside them, plus an
MLflow run. A system whose file is missing is named in the summary; with none there is nothing to do.
"""

from __future__ import annotations

from typing import Any

from adlake.errors import NothingToDo
from adlake.evaluate.report import evaluate
from adlake.jobs import cli, context, parser
from adlake.lake import Lake
from adlake.train.common import SYSTEMS, predictions_dir
from schemas.registry import BENCHMARK

JOB = "score_editor"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    lake = Lake(context(JOB, args))
    version = lake.pin(BENCHMARK)[BENCHMARK.name]
    if version is None:
        raise NothingToDo("gold.benchmark does not exist yet: run training_sets first")
    folder = predictions_dir(lake)
    found = [folder / f"{s}.jsonl" for s in SYSTEMS if (folder / f"{s}.jsonl").is_file()]
    if not found:
        raise NothingToDo(f"no editor predictions for gold.benchmark@v{version} in {folder}: run train_llm and "
                          "train_ssmp first")
    report = evaluate(lake, found, benchmark_version=version, name="editor")
    return {"job": JOB, "missing": [s for s in SYSTEMS if folder / f"{s}.jsonl" not in found],
            **{k: report[k] for k in ("benchmark", "benchmark_version", "samples", "systems", "ranking",
                                      "confidence", "report_dir", "mlflow_run_id")},
            "judge": report["judge"]["status"]}


if __name__ == "__main__":
    cli(main)
