"""Commit staged parse results: silver ASR, shots, clips, frames and parsed_videos; quarantine; reconcile.

    python -m jobs.commit_parse [--run-id ID]

Fails when some video of bronze.videos is in no place (neither parsed, filtered nor quarantined).
"""

from __future__ import annotations

from typing import Any

from adlake.jobs import cli, context, parser
from adlake.lake import Lake
from adlake.parse.batch import OUTPUTS, commit_parse
from adlake.tracking import job_run
from schemas.registry import VIDEOS

JOB = "commit_parse"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    ctx = context(JOB, args)
    lake = Lake(ctx)
    inputs = {VIDEOS.name: lake.version(VIDEOS), **{s.name: lake.version(s) for s in OUTPUTS}}
    with job_run(ctx, inputs=inputs) as run:
        summary = {"job": JOB, "run_id": ctx.run_id, **commit_parse(lake)}
        rec = summary["reconciliation"]
        run.metrics({k: v for k, v in rec.items() if isinstance(v, int) and not isinstance(v, bool)})
        run.params({f"output.{t}.version": v for t, v in summary["wrote"].items()})
        run.summary(summary)
    return summary


if __name__ == "__main__":
    cli(main)
