"""Filter a crawl manifest on Spark into bronze.crawl_manifest and silver.ads (bad rows to ops.quarantine).

    python -m jobs.filter_manifest --partition 2026-11-01 [--manifest URI] [--run-id ID]

Without --manifest, the one manifest under <ingest.landing_uri>/<crawl_date>/ is used; when none landed
there is nothing to do (``NoManifest``, a ``NothingToDo``, before Spark or MLflow start); two or more
there are an error.
"""

from __future__ import annotations

from typing import Any

from adlake.errors import NothingToDo
from adlake.ingest.filter import run_filter
from adlake.ingest.manifest import find_manifest
from adlake.jobs import cli, context, parse_date, parser
from adlake.lake import Lake
from adlake.tracking import job_run
from schemas.registry import ADS, CRAWL_MANIFEST

JOB = "filter_manifest"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--manifest", help="manifest URI (Parquet, CSV or JSONL)")
    args = p.parse_args(argv)
    crawl_date = parse_date(args.partition)
    ctx = context(JOB, args)
    lake = Lake(ctx)
    manifest = args.manifest or find_manifest(ctx.settings.ingest.landing_uri, crawl_date,  # NoManifest: skip
                                                  ctx.settings.lake.storage_options)
    # The input is the manifest file; silver.ads is read at its latest just before its partition is rewritten
    # (a read-modify-write keeps what the crawl decided), so no table is pinned.
    with job_run(ctx, params={"manifest": manifest, "crawl_date": crawl_date.isoformat(),
                              "spark_master": ctx.settings.spark.connect_url or ctx.settings.spark.master}) as run:
        result = run_filter(lake, manifest, crawl_date)
        run.metrics({"rows": result.rows, "landed": result.landed, "quarantined": result.quarantined,
                     "filtered": result.filtered, "pending": result.pending})
        run.params({f"output.{t}.version": v for t, v in result.versions.items()})
        summary = {"job": JOB, "run_id": ctx.run_id, **result.as_dict(),
                   "wrote": {CRAWL_MANIFEST.name: result.versions[CRAWL_MANIFEST.name],
                             ADS.name: result.versions[ADS.name]}}
        summary.pop("versions")
        run.summary(summary)
    if not result.changed and result.pending == 0:  # skipped: no Asset event for tables that did not change
        raise NothingToDo(f"manifest {manifest} of {crawl_date} changed nothing and no ad waits for the crawl "
                          f"({result.landed} landed, {result.quarantined} quarantined, {result.filtered} filtered, "
                          f"{result.still_quarantined} failed crawls not due again)")
    return summary


if __name__ == "__main__":
    cli(main)
