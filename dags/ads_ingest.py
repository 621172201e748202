"""ads_ingest: a crawl manifest → bronze.crawl_manifest (the rest of ingest follows in later tasks)."""

from __future__ import annotations

import datetime as dt

from airflow.sdk import Param, dag, get_current_context, task

from adlake.assets import asset


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
    @task(outlets=[asset("bronze.crawl_manifest")], multiple_outputs=False)
    def land_manifest() -> dict:
        from jobs.land_manifest import main

        ctx = get_current_context()
        params = ctx["params"]
        crawl_date = params.get("crawl_date") or ctx["ds"]
        argv = ["--run-id", ctx["run_id"], "--partition", crawl_date, "--dag-id", ctx["dag"].dag_id,
                "--task-id", ctx["ti"].task_id]
        if params.get("manifest"):
            argv += ["--manifest", params["manifest"]]
        return main(argv)

    land_manifest()


ads_ingest()
