"""index_refresh: nightly FAISS clip and background-music indexes, promoted only past their recall gate.

Each task builds one index from the latest table versions, pinned for the build and logged with the
MLflow run. A night with no new embeddings since the production version builds nothing (skipped). Until a
kind has a production index, new gold.tokens trigger a run too, which builds only such a kind. A failed
gate fails the task at once (no retry: it is a verdict, not a transient error) and leaves production
where it was; other errors are retried.
"""

from __future__ import annotations

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, dag, task

from adlake.assets import asset
from adlake.orchestration import dag_defaults, job_argv, run_task

NIGHTLY = "0 2 * * *"


@dag(
    dag_id="index_refresh",
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable(NIGHTLY, timezone="UTC"),
                                 assets=asset("gold.tokens")),
    doc_md=__doc__,
    **dag_defaults("index"),
)
def index_refresh():
    def build(kind: str) -> dict:
        from jobs.build_index import main

        return run_task(main, [*job_argv(bootstrap_on_asset=True), "--kind", kind])

    # one after the other (each uses every core of a small machine); all_done: a failed clips gate does not
    # keep the music index from its build
    build_clips = task(build, task_id="build_clips", multiple_outputs=False)("clips")
    build_bgm = task(build, task_id="build_bgm", multiple_outputs=False, trigger_rule="all_done")("bgm")
    build_clips >> build_bgm


index_refresh()
