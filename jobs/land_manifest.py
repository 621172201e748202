"""Land a crawl manifest into bronze.crawl_manifest (contract checks; bad rows to ops.quarantine).

    python -m jobs.land_manifest --partition 2026-11-01 [--manifest URI] [--run-id ID]

Without --manifest, the one manifest under <ingest.landing_uri>/<crawl_date>/ is used.
"""

from __future__ import annotations

from typing import Any

from adlake.ingest.manifest import find_manifest, land
from adlake.jobs import cli, context, parse_date, parser
from adlake.lake import Lake
from adlake.tracking import job_run
from schemas.registry import CRAWL_MANIFEST

JOB = "land_manifest"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--manifest", help="manifest URI (Parquet, CSV or JSONL)")
    args = p.parse_args(argv)
    crawl_date = parse_date(args.partition)
    ctx = context(JOB, args)
    lake = Lake(ctx)
    manifest = args.manifest or find_manifest(ctx.settings.ingest.landing_uri, crawl_date)
    with job_run(ctx, params={"manifest": manifest, "crawl_date": crawl_date.isoformat()}) as run:
        result = land(lake, manifest, crawl_date)
        run.metrics({"rows": result.rows, "landed": result.landed, "quarantined": result.quarantined})
        run.params({f"output.{CRAWL_MANIFEST.name}.version": result.table_version})
        summary = {"job": JOB, "run_id": ctx.run_id, "mlflow_run_id": run.run_id, **result.as_dict(),
                   "wrote": {CRAWL_MANIFEST.name: result.table_version}}
        run.summary(summary)
    return summary


if __name__ == "__main__":
    cli(main)
