"""ads_features: frames and clip soundtracks → embeddings (Ray) → tokens with the production tokenizer.

Runs when silver.frames changes. embed_frames, embed_audio (each clip's soundtrack) and embed_bgm
(background-music windows where nobody speaks) run the Ray Data job for what is not yet embedded by the
configured encoders; tokenize uses the production RQ-VAE tokenizers, and on a lake
with none yet it says that tokenization waits for train_tokenizer, and succeeds.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import dag, task

from adlake.assets import asset
from adlake.orchestration import job_argv


@dag(
    dag_id="ads_features",
    schedule=[asset("silver.frames")],
    start_date=dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    default_args={"retry_exponential_backoff": True},
    tags=["adlake", "features"],
    doc_md=__doc__,
)
def ads_features():
    @task(outlets=[asset("silver.embeddings")], multiple_outputs=False)
    def embed_frames() -> dict:
        from jobs.embed import main

        return main([*job_argv(), "--entity", "frame"])

    @task(outlets=[asset("silver.embeddings")], multiple_outputs=False)
    def embed_audio() -> dict:
        from jobs.embed import main

        return main([*job_argv(), "--entity", "audio"])

    @task(outlets=[asset("silver.embeddings")], multiple_outputs=False)
    def embed_bgm() -> dict:
        from jobs.embed import main

        return main([*job_argv(), "--entity", "bgm"])

    @task(outlets=[asset("gold.tokens")], multiple_outputs=False)
    def tokenize() -> dict:
        from jobs.tokenize import main

        return main(job_argv())

    # one writer of silver.embeddings at a time: the two jobs run one after the other
    embed_frames() >> embed_audio() >> embed_bgm() >> tokenize()


ads_features()
