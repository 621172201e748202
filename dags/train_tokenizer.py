"""train_tokenizer: RQ-VAE tokenizers per modality from the latest silver.embeddings version, gated in MLflow.

Weekly, by hand, and — until each modality has a production tokenizer — whenever silver.embeddings changes:
such an Asset-triggered run trains only a modality with none yet, once the table holds
tokenizer.bootstrap_min_vectors of its vectors, and is skipped otherwise. Each task trains one modality on a
pinned table version (logged with the run), registers the model, and moves ``production`` only when its
gates pass; a failed gate fails the task without retry and leaves production where it was. announce emits
models.tokenizer when production moved, on which ads_features tokenizes.
"""

from __future__ import annotations

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, dag, task

from adlake.assets import asset
from adlake.orchestration import dag_defaults, job_argv, run_task

MODALITIES = {"train_video": "video", "train_audio": "audio"}


@dag(
    dag_id="train_tokenizer",
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable("@weekly", timezone="UTC"),
                                 assets=asset("silver.embeddings")),
    doc_md=__doc__,
    **dag_defaults("features", "tokenizer"),
)
def train_tokenizer():
    def train(modality: str) -> dict:
        from jobs.train_tokenizer import main

        return run_task(main, [*job_argv(bootstrap_on_asset=True), "--modality", modality])

    # all_done: a failed video gate does not keep audio from training
    trains = [task(train, task_id=task_id, multiple_outputs=False, trigger_rule="all_done")(modality)
              for task_id, modality in MODALITIES.items()]

    @task(outlets=[asset("models.tokenizer")], multiple_outputs=False, trigger_rule="all_done")
    def announce(ti=None) -> dict:
        from adlake.errors import NothingToDo
        from adlake.orchestration import task_errors

        promoted = {m: r["trained"][m]["production"] for t, m in MODALITIES.items()
                    if (r := ti.xcom_pull(task_ids=t)) and r["production_moved"].get(m)}
        with task_errors():
            if not promoted:
                raise NothingToDo("no tokenizer was promoted: production is unchanged")
        return {"promoted": promoted}

    # one after the other: each uses every core of a small machine
    trains[0] >> trains[1] >> announce()


train_tokenizer()
