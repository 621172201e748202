"""ads_features: frames and clip soundtracks → embeddings (Ray) → tokens with the production tokenizer.

Runs when silver.frames changes, and when a tokenizer is promoted (models.tokenizer). embed_frames,
embed_audio (each clip's soundtrack) and embed_bgm (background-music windows where nobody speaks) run the
Ray Data job for what the configured encoders have not embedded yet, one writer at a time, each skipped
when it has nothing to embed; publish_embeddings emits silver.embeddings when any of them wrote.
tokenize writes gold.tokens and gold.ad_sequences with the production RQ-VAE tokenizers; with none
registered yet, or nothing new to tokenize, it is skipped and says why.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from adlake.assets import asset
from adlake.orchestration import dag_defaults, job_argv, run_task

ENTITIES = {"embed_frames": "frame", "embed_audio": "audio", "embed_bgm": "bgm"}


@dag(dag_id="ads_features", schedule=asset("silver.frames") | asset("models.tokenizer"), doc_md=__doc__,
     **dag_defaults("features"))
def ads_features():
    def embed(entity: str) -> dict:
        from jobs.embed import main

        return run_task(main, [*job_argv(), "--entity", entity])

    embeds = [task(embed, task_id=task_id, multiple_outputs=False, trigger_rule="none_failed")(entity)
              for task_id, entity in ENTITIES.items()]

    @task(outlets=[asset("silver.embeddings")], multiple_outputs=False, trigger_rule="none_failed")
    def publish_embeddings(ti=None) -> dict:
        from adlake.errors import NothingToDo
        from adlake.orchestration import task_errors

        embedded = {t: r["embedded"] for t in ENTITIES if (r := ti.xcom_pull(task_ids=t))}
        with task_errors():
            if not any(embedded.values()):
                raise NothingToDo("no new embeddings: silver.embeddings is unchanged")
        return {"embedded": embedded}

    @task(outlets=[asset("gold.tokens"), asset("gold.ad_sequences")], multiple_outputs=False,
          trigger_rule="none_failed")
    def tokenize() -> dict:
        from jobs.tokenize import main

        return run_task(main, job_argv())

    # one writer of silver.embeddings at a time: the embedding jobs run one after the other
    embeds[0] >> embeds[1] >> embeds[2] >> publish_embeddings() >> tokenize()


ads_features()
