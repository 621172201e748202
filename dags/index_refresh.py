"""index_refresh: nightly FAISS clip and background-music indexes, promoted only past their recall gate.

Each task builds one index from the latest table versions, pinned for the build and logged with the
MLflow run. A night with no new embeddings since the production version builds nothing. A failed gate
fails the task at once (no retry: it is a verdict, not a transient error) and leaves production where it
was; other errors are retried.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import dag, task

from adlake.orchestration import job_argv


def _build(kind: str) -> dict:
    from airflow.sdk.exceptions import AirflowFailException

    from adlake.index.refresh import IndexGateFailed
    from jobs.build_index import main

    try:
        return main([*job_argv(), "--kind", kind])
    except IndexGateFailed as e:
        raise AirflowFailException(str(e)) from e


@dag(
    dag_id="index_refresh",
    schedule="0 2 * * *",  # nightly
    start_date=dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    default_args={"retry_exponential_backoff": True},  # retries: airflow.task_retries in conf (2 by default)
    tags=["adlake", "index"],
    doc_md=__doc__,
)
def index_refresh():
    @task(multiple_outputs=False)
    def build_clips() -> dict:
        return _build("clips")

    @task(multiple_outputs=False, trigger_rule="all_done")
    def build_bgm() -> dict:
        return _build("bgm")

    # one after the other: each uses every core of a small machine
    build_clips() >> build_bgm()


index_refresh()
