"""Commit a crawl's staged results: bronze.videos, silver.ads, ops.quarantine; then reconcile.

    python -m jobs.finalize_ingest --partition 2026-11-01 --run-id ID

Fails when the crawl date does not reconcile (some manifest row is in no place, or in two).
"""

from __future__ import annotations

from typing import Any

from adlake.errors import NothingToDo
from adlake.ingest.crawl import finalize_crawl
from adlake.jobs import cli, context, parse_date, parser
from adlake.lake import Lake
from adlake.tracking import job_run
from schemas.registry import CRAWL_MANIFEST

JOB = "finalize_ingest"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    if not args.run_id:
        raise SystemExit("--run-id is required: it names the crawl whose results are committed")
    crawl_date = parse_date(args.partition)
    ctx = context(JOB, args)
    lake = Lake(ctx)
    # The manifest as landed is pinned; silver.ads is read at its latest, just before its partition is
    # rewritten (a read-modify-write must not start from an older version).
    inputs = lake.pin(CRAWL_MANIFEST)
    with job_run(ctx, params={"crawl_date": crawl_date.isoformat()}, inputs=inputs) as run:
        summary = {"job": JOB, "run_id": ctx.run_id, **finalize_crawl(lake, crawl_date)}
        rec = summary["reconciliation"]
        run.metrics({k: v for k, v in rec.items() if isinstance(v, int) and not isinstance(v, bool)})
        run.params({f"output.{t}.version": v for t, v in summary["wrote"].items()})
        run.summary(summary)
    if not summary["changed"]:  # skipped: no Asset event (ads_parse) for tables that did not change
        raise NothingToDo(f"the crawl of {crawl_date} changed no table; it reconciles: "
                          f"{summary['reconciliation']['manifest_rows']} manifest rows, each in one place")
    return summary


if __name__ == "__main__":
    cli(main)
