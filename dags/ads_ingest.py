"""ads_ingest: a crawl manifest → filtered ads → downloaded, probed, deduplicated videos.

filter_manifest (Spark) → plan_shards → crawl_shard × N (mapped, in the bandwidth pool) → finalize,
which commits bronze.videos and silver.ads and fails the run if any manifest row is unaccounted for.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import Param, dag, task

from adlake.assets import asset
from adlake.orchestration import CRAWL_POOL, job_argv


@dag(
    dag_id="ads_ingest",
    schedule="@daily",
    start_date=dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    # Retries and their delay come from conf (airflow.task_retries), exported by adlake to Airflow.
    default_args={"retry_exponential_backoff": True},
    params={
        "manifest": Param(None, type=["null", "string"], title="Manifest URI",
                          description="Parquet, CSV or JSONL; empty: the one under <landing>/<crawl_date>/"),
        "crawl_date": Param(None, type=["null", "string"], format="date", title="Crawl date",
                            description="YYYY-MM-DD; empty: the run's data interval date"),
    },
    tags=["adlake", "ingest"],
    doc_md=__doc__,
)
def ads_ingest():
    @task(outlets=[asset("bronze.crawl_manifest"), asset("silver.ads")], multiple_outputs=False)
    def filter_manifest() -> dict:
        from jobs.filter_manifest import main

        return main(job_argv(with_manifest=True))

    @task
    def plan_shards(filtered: dict) -> list[dict]:
        from jobs.crawl import main

        return main([*job_argv(), "--plan"])["shards"]

    @task(pool=CRAWL_POOL, multiple_outputs=False)
    def crawl_shard(shard: dict) -> dict:
        from jobs.crawl import main

        return main([*job_argv(), "--shard", str(shard["shard"]), "--shards", str(shard["shards"])])

    @task(outlets=[asset("bronze.videos"), asset("silver.ads")], multiple_outputs=False)
    def finalize(shards: list[dict]) -> dict:
        from jobs.finalize_ingest import main

        return main(job_argv())

    shards = plan_shards(filter_manifest())
    finalize(crawl_shard.expand(shard=shards))


ads_ingest()
