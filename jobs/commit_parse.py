"""Commit staged parse results: silver ASR, shots, clips, frames and parsed_videos; quarantine; reconcile.

    python -m jobs.commit_parse [--run-id ID]

Fails when some video of bronze.videos is in no place (neither parsed, filtered nor quarantined). With
nothing staged there is nothing to commit (``NothingToDo``, before any MLflow run), once the tables are
checked to reconcile.
"""

from __future__ import annotations

import json
from typing import Any

from adlake.errors import NothingToDo
from adlake.jobs import cli, context, parser
from adlake.lake import Lake
from adlake.parse.batch import ParseReconciliationError, commit_parse, reconcile_parse, staged_videos
from adlake.tracking import job_run
from schemas.registry import PARSED_VIDEOS, VIDEOS

JOB = "commit_parse"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    ctx = context(JOB, args)
    lake = Lake(ctx)
    inputs = lake.pin(VIDEOS, PARSED_VIDEOS)  # the videos to reconcile, and what was finished at the start
    staged = staged_videos(lake)
    if not staged:
        rec = reconcile_parse(lake)
        if not rec.balanced:
            raise ParseReconciliationError(f"ads_parse does not reconcile: {json.dumps(rec.as_dict())}")
        raise NothingToDo(f"nothing staged to commit; ads_parse reconciles: {rec.videos} videos = {rec.parsed} "
                          f"parsed + {rec.filtered} filtered + {rec.quarantined} quarantined")
    with job_run(ctx, inputs=inputs) as run:
        summary = {"job": JOB, "run_id": ctx.run_id, **commit_parse(lake, staged)}
        rec = summary["reconciliation"]
        run.metrics({k: v for k, v in rec.items() if isinstance(v, int) and not isinstance(v, bool)})
        run.params({f"output.{t}.version": v for t, v in summary["wrote"].items()})
        run.summary(summary)
    return summary


if __name__ == "__main__":
    cli(main)
