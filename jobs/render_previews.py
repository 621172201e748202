"""Render preview MP4s and contact sheets for a benchmark version: each sample's ground truth and baselines.

    python -m jobs.render_previews [--benchmark-version N] [--run-id ID]

Writes <sample>/{truth,random,embedding}.mp4 (with .srt/.vtt) and sheet.png under
$ADLAKE_HOME/reports/benchmark/v<N>-baselines/previews/ and logs them to an MLflow run in the evaluate
experiment, beside the benchmark report. Renders are content-addressed: a rerun renders nothing new.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from adlake.errors import NothingToDo
from adlake.evaluate.benchmark import load_benchmark
from adlake.evaluate.report import NoBenchmark, baseline_predictions, benchmark_rows
from adlake.jobs import cli, context, parser
from adlake.lake import Lake
from adlake.render.previews import render_previews
from schemas.registry import BENCHMARK

JOB = "render_previews"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from adlake.tracking import job_run

    p = parser(__doc__.splitlines()[0])
    p.add_argument("--benchmark-version", type=int, help="gold.benchmark version (default: the latest)")
    args = p.parse_args(argv)
    lake = Lake(context(JOB, args))
    pinned = lake.pin(BENCHMARK)[BENCHMARK.name]
    try:
        version, rows = benchmark_rows(lake, pinned if args.benchmark_version is None else args.benchmark_version)
    except NoBenchmark as e:
        raise NothingToDo(str(e)) from None
    source = json.loads(rows[0]["source_versions"])
    baselines = baseline_predictions(lake, load_benchmark(rows), source)
    out = Path(lake.settings.home) / "reports" / "benchmark" / f"v{version}-baselines" / "previews"
    result = render_previews(lake, rows, baselines, out)
    (out / "previews.json").write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    with job_run(lake.ctx, experiment="evaluate", params={"kind": "previews", "benchmark_version": version,
                                                          **{f"source.{k}": v for k, v in source.items()}},
                 inputs={BENCHMARK.name: version}) as run:
        run.metrics({"previews.samples": result["samples"], "previews.videos": result["videos"],
                     "previews.failed": len(result["failed"])})
        run.artifacts(out, "previews")
        run_id = run.run_id
    return {"job": JOB, "benchmark_version": version, **{k: result[k] for k in (
        "samples", "videos", "rendered", "already_rendered", "failed", "dir")}, "mlflow_run_id": run_id}


if __name__ == "__main__":
    cli(main)
