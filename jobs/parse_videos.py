"""Parse one batch of pending videos (soundtrack, ASR, shots, clips, frames) into the staging area.

    python -m jobs.parse_videos --batch 0 --batches 4 [--run-id ID]
    python -m jobs.parse_videos --plan              # list the batches of the pending videos

Run commit_parse afterwards to write the silver tables.
"""

from __future__ import annotations

from typing import Any

from adlake.jobs import cli, context, parser
from adlake.lake import Lake
from adlake.parse.batch import parse_batch, plan_batches
from adlake.tracking import job_run
from schemas.registry import PARSED_VIDEOS, VIDEOS

JOB = "parse_videos"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=0)
    p.add_argument("--batches", type=int, default=1)
    p.add_argument("--plan", action="store_true", help="only print the batches of the pending videos")
    args = p.parse_args(argv)
    ctx = context(JOB, args)
    lake = Lake(ctx)
    inputs = lake.pin(VIDEOS, PARSED_VIDEOS)  # the pending videos, as of the start
    if args.plan:
        return {"job": JOB, "batches": plan_batches(lake)}
    if not 0 <= args.batch < args.batches:
        raise SystemExit(f"--batch must be in [0, {args.batches})")
    with job_run(ctx, params={"batch": args.batch, "batches": args.batches, "asr_model":
                              lake.settings.parse.asr.model_path or "bundled tiny.en"},
                 inputs=inputs) as run:
        result = parse_batch(lake, args.batch, args.batches)
        run.metrics({k: v for k, v in result.as_dict().items() if isinstance(v, int | float)})
        summary = {"job": JOB, "run_id": ctx.run_id, **result.as_dict()}
        run.summary(summary)
    return summary


if __name__ == "__main__":
    cli(main)
