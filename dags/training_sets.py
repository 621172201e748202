"""training_sets: leak-safe splits, VC-LLM and AutoCut task samples, the benchmark, and its baselines' report.

Runs when gold.tokens changes. build_training_sets pins every input table's version and writes
gold.split_assignments, gold.samples and gold.benchmark (each rerun on the same versions commits
nothing) plus byte-identical JSONL exports; score_baselines scores the random and embedding baselines
on that benchmark version and logs the report to MLflow; render_previews renders each sample's ground
truth and baselines to MP4s with a contact sheet, logged beside it. A lake with no clips yet is skipped.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from adlake.assets import asset
from adlake.orchestration import dag_defaults, job_argv, run_task


@dag(dag_id="training_sets", schedule=[asset("gold.tokens")], doc_md=__doc__, **dag_defaults("datasets"))
def training_sets():
    @task(outlets=[asset("gold.samples"), asset("gold.benchmark"), asset("gold.split_assignments")],
          multiple_outputs=False)
    def build_training_sets() -> dict:
        from jobs.build_training_sets import main

        return run_task(main, job_argv())

    @task(multiple_outputs=False)
    def score_baselines() -> dict:
        from jobs.score_benchmark import main

        return run_task(main, job_argv())

    @task(multiple_outputs=False)
    def render_previews() -> dict:
        from jobs.render_previews import main

        return run_task(main, job_argv())

    build_training_sets() >> score_baselines() >> render_previews()


training_sets()
