"""Download and probe one shard of a crawl date's pending ads (results go to the staging area).

    python -m jobs.crawl --partition 2026-11-01 --shard 0 --shards 4 [--run-id ID]
    python -m jobs.crawl --partition 2026-11-01 --plan        # list the shards

Run finalize_ingest with the same run id afterwards to commit the results.
"""

from __future__ import annotations

from typing import Any

from adlake.ingest.crawl import crawl_shard, plan_shards
from adlake.jobs import cli, context, parse_date, parser
from adlake.lake import Lake
from adlake.tracking import job_run
from schemas.registry import ADS

JOB = "crawl"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--shard", type=int, default=0)
    p.add_argument("--shards", type=int, default=1)
    p.add_argument("--plan", action="store_true", help="only print the shards of the pending ads")
    args = p.parse_args(argv)
    crawl_date = parse_date(args.partition)
    ctx = context(JOB, args)
    lake = Lake(ctx)
    inputs = lake.pin(ADS)  # the pending ads, as of the start
    if args.plan:
        return {"job": JOB, "shards": plan_shards(lake, crawl_date)}
    if not 0 <= args.shard < args.shards:
        raise SystemExit(f"--shard must be in [0, {args.shards})")
    with job_run(ctx, params={"crawl_date": crawl_date.isoformat(), "shard": args.shard, "shards": args.shards},
                 inputs=inputs) as run:
        result = crawl_shard(lake, crawl_date, args.shard, args.shards)
        run.metrics({"ads": result.ads, "downloaded": result.downloaded, "cached": result.cached,
                     "failed": result.failed, "seconds": result.seconds})
        summary = {"job": JOB, "run_id": ctx.run_id, **result.as_dict()}
        run.summary(summary)
    return summary


if __name__ == "__main__":
    cli(main)
