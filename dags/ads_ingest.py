"""ads_ingest: a crawl manifest → filtered ads → downloaded, probed, deduplicated videos.

filter_manifest (Spark) → plan_shards → crawl_shard × N (mapped, in the bandwidth pool) → finalize,
which commits bronze.videos and silver.ads and fails the run if any manifest row is unaccounted for.
A daily run with no manifest under <landing>/<crawl_date>/ is skipped, and says so.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task

from adlake.assets import asset
from adlake.orchestration import CRAWL_POOL, dag_defaults, job_argv, run_task


@dag(
    dag_id="ads_ingest",
    schedule="@daily",
    params={
        "manifest": Param(None, type=["null", "string"], title="Manifest URI",
                          description="Parquet, CSV or JSONL; empty: the one under <landing>/<crawl_date>/"),
        "crawl_date": Param(None, type=["null", "string"], format="date", title="Crawl date",
                            description="YYYY-MM-DD; empty: the run's data interval date"),
    },
    doc_md=__doc__,
    **dag_defaults("ingest"),
)
def ads_ingest():
    @task(outlets=[asset("bronze.crawl_manifest"), asset("silver.ads")], multiple_outputs=False)
    def filter_manifest() -> dict:
        from jobs.filter_manifest import main

        return run_task(main, job_argv(with_manifest=True))

    @task
    def plan_shards(filtered: dict) -> list[dict]:
        from jobs.crawl import main

        return run_task(main, [*job_argv(), "--plan"])["shards"]

    @task(pool=CRAWL_POOL, multiple_outputs=False)
    def crawl_shard(shard: dict) -> dict:
        from jobs.crawl import main

        return run_task(main, [*job_argv(), "--shard", str(shard["shard"]), "--shards", str(shard["shards"])])

    # with nothing to crawl (every ad filtered, no shard) the day is still settled and reconciled; with no
    # manifest (filter_manifest skipped) there is nothing to settle
    @task(outlets=[asset("bronze.videos"), asset("silver.ads")], multiple_outputs=False,
          trigger_rule="none_failed_min_one_success")
    def finalize(filtered: dict, shards: list[dict]) -> dict:
        from jobs.finalize_ingest import main

        return run_task(main, job_argv())

    filtered = filter_manifest()
    finalize(filtered, crawl_shard.expand(shard=plan_shards(filtered)))


ads_ingest()
