"""ads_parse: videos → soundtrack, WhisperX sentences and words, PySceneDetect shots, clips, 1 fps frames.

Runs when bronze.videos changes. plan_batches → parse_batch × N (mapped; a broken video is quarantined,
its batch goes on) → commit, the single writer of the silver tables, which runs even if a batch task
died (so finished videos are kept) and fails the run if any video is unaccounted for. Finished videos
are skipped on every later run; a run with nothing to parse is skipped and emits no Asset event.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from adlake.assets import asset
from adlake.orchestration import dag_defaults, job_argv, run_task


@dag(dag_id="ads_parse", schedule=[asset("bronze.videos")], doc_md=__doc__, **dag_defaults("parse"))
def ads_parse():
    @task
    def plan_batches() -> list[dict]:
        from jobs.parse_videos import main

        return run_task(main, [*job_argv(), "--plan"])["batches"]

    @task(multiple_outputs=False)
    def parse_batch(batch: dict) -> dict:
        from jobs.parse_videos import main

        return run_task(main, [*job_argv(), "--batch", str(batch["batch"]), "--batches", str(batch["batches"])])

    @task(trigger_rule="all_done", multiple_outputs=False,
          outlets=[asset("silver.asr_sentences"), asset("silver.asr_words"), asset("silver.shots"),
                   asset("silver.parsed_videos"), asset("silver.clips"), asset("silver.frames"), asset("silver.ads")])
    def commit() -> dict:
        from jobs.commit_parse import main

        return run_task(main, job_argv())

    # commit reads the staging area, not the batches' return values: a failed batch has none.
    parse_batch.expand(batch=plan_batches()) >> commit()


ads_parse()
