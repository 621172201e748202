"""train_editor: the editor LLM (vocabulary extension, alignment, fine-tuning) and the SSMP shot-sequence model,
trained on pinned training sets and tokenizer versions, scored together on the benchmark.

Triggered by hand or through the REST API (training is the ML team's call, not every new table version's).
train_llm registers adlake-editor-llm and moves its ``production`` only past the best baseline by
train.llm.promote_margin; train_ssmp logs its model and both decoders' answers; score_editor puts both
beside the random and embedding baselines in one report with bootstrap intervals. A lake without training
sets is skipped; a rerun on the same inputs trains nothing.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from adlake.orchestration import dag_defaults, job_argv, run_task


@dag(dag_id="train_editor", schedule=None, doc_md=__doc__, **dag_defaults("models", "training"))
def train_editor():
    @task(multiple_outputs=False)
    def train_llm() -> dict:
        from jobs.train_llm import main

        return run_task(main, job_argv())

    # all_done: a failed LLM does not keep SSMP from training
    @task(multiple_outputs=False, trigger_rule="all_done")
    def train_ssmp() -> dict:
        from jobs.train_ssmp import main

        return run_task(main, job_argv())

    # all_done: one model's failure still gets the other scored (with none, it is skipped)
    @task(multiple_outputs=False, trigger_rule="all_done")
    def score_editor() -> dict:
        from jobs.score_editor import main

        return run_task(main, job_argv())

    # one after the other: each uses every core of a small machine
    train_llm() >> train_ssmp() >> score_editor()


train_editor()
