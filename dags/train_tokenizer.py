"""train_tokenizer: RQ-VAE tokenizers per modality from the latest silver.embeddings version, gated in MLflow.

Manual or weekly. Each task trains one modality on a pinned table version (logged with the run),
registers the model, and moves ``production`` only when its gates pass; a failed gate fails the task
loudly and leaves production where it was. ads_features then tokenizes with the new production version.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import dag, task

from adlake.orchestration import job_argv


@dag(
    dag_id="train_tokenizer",
    schedule="@weekly",
    start_date=dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    default_args={"retry_exponential_backoff": True},
    tags=["adlake", "features", "tokenizer"],
    doc_md=__doc__,
)
def train_tokenizer():
    @task(multiple_outputs=False, retries=0)  # a gate failure is a verdict, not a transient error
    def train_video() -> dict:
        from jobs.train_tokenizer import main

        return main([*job_argv(), "--modality", "video"])

    @task(multiple_outputs=False, retries=0, trigger_rule="all_done")
    def train_audio() -> dict:
        from jobs.train_tokenizer import main

        return main([*job_argv(), "--modality", "audio"])

    # one after the other: each uses every core of a small machine
    train_video() >> train_audio()


train_tokenizer()
