"""Every DAG file imports cleanly through Airflow's DagBag; DAG files stay thin."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from adlake.orchestration import DAGS_FOLDER

pytestmark = pytest.mark.airflow

HEAVY = {"pyspark", "ray", "torch", "whisperx", "faiss", "mlflow", "deltalake", "pandas", "numpy", "scenedetect"}


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory: pytest.TempPathFactory):
    import os

    from adlake.config import load_settings
    from adlake.orchestration import airflow_env

    home = tmp_path_factory.mktemp("af")
    os.environ.update(airflow_env(load_settings(home=str(home))))
    from adlake.orchestration import load_dags

    return load_dags()


def test_every_dag_file_imports_without_errors(dagbag) -> None:
    dags, errors = dagbag
    assert errors == {}
    assert {"ads_ingest", "ads_parse", "ads_features", "train_tokenizer", "index_refresh", "training_sets",
            "train_editor"} <= set(dags)
    files = {p.stem for p in DAGS_FOLDER.glob("*.py")}
    assert files <= {d.fileloc and Path(d.fileloc).stem for d in dags.values()}


def test_ads_ingest_shape(dagbag) -> None:
    from adlake.orchestration import CRAWL_POOL

    dag = dagbag[0]["ads_ingest"]
    assert set(dag.params.keys()) == {"manifest", "crawl_date"}
    assert dag.max_active_runs == 1 and not dag.catchup
    tasks = {t.task_id: t for t in dag.tasks}
    assert set(tasks) == {"filter_manifest", "plan_shards", "crawl_shard", "finalize"}
    assert tasks["finalize"].trigger_rule == "none_failed_min_one_success"  # no shard: still settled
    assert tasks["crawl_shard"].pool == CRAWL_POOL
    assert type(tasks["crawl_shard"]).__name__.endswith("MappedOperator")  # fanned out by dynamic task mapping
    assert {o.name for o in tasks["finalize"].outlets} == {"bronze.videos", "silver.ads"}
    assert {o.name for o in tasks["filter_manifest"].outlets} == {"bronze.crawl_manifest", "silver.ads"}
    assert tasks["finalize"].upstream_task_ids == {"crawl_shard", "filter_manifest"}


def test_ads_parse_shape(dagbag) -> None:
    dag = dagbag[0]["ads_parse"]
    assert dag.max_active_runs == 1 and not dag.catchup
    # triggered by the Asset bronze.videos, not by a clock
    assert [a.name for a in dag.timetable.asset_condition.objects] == ["bronze.videos"]
    tasks = {t.task_id: t for t in dag.tasks}
    assert set(tasks) == {"plan_batches", "parse_batch", "commit"}
    assert type(tasks["parse_batch"]).__name__.endswith("MappedOperator")
    assert tasks["commit"].upstream_task_ids == {"parse_batch"}
    assert tasks["commit"].trigger_rule == "all_done"  # staged videos are committed even if one batch died
    assert {"silver.clips", "silver.frames"} <= {o.name for o in tasks["commit"].outlets}


def test_ads_features_shape(dagbag) -> None:
    dag = dagbag[0]["ads_features"]
    # new frames, or a newly promoted tokenizer
    assert _scheduled_on(dag.timetable.asset_condition) == {"silver.frames", "models.tokenizer"}
    tasks = {t.task_id: t for t in dag.tasks}
    assert set(tasks) == {"embed_frames", "embed_audio", "embed_bgm", "publish_embeddings", "tokenize"}
    # one writer of silver.embeddings at a time; a skipped (nothing to embed) step does not skip the next
    assert tasks["embed_audio"].upstream_task_ids == {"embed_frames"}
    assert tasks["embed_bgm"].upstream_task_ids == {"embed_audio"}
    assert tasks["publish_embeddings"].upstream_task_ids == {"embed_bgm"}
    assert tasks["tokenize"].upstream_task_ids == {"publish_embeddings"}
    assert all(tasks[t].trigger_rule == "none_failed" for t in tasks if t != "embed_frames")
    # only publish_embeddings emits silver.embeddings, once, after every embedding job
    assert {o.name for t in tasks.values() for o in t.outlets if o.name == "silver.embeddings"} == {"silver.embeddings"}
    assert [t for t in tasks if "silver.embeddings" in {o.name for o in tasks[t].outlets}] == ["publish_embeddings"]
    assert {o.name for o in tasks["tokenize"].outlets} == {"gold.tokens", "gold.ad_sequences"}


def test_train_tokenizer_shape(dagbag) -> None:
    dag = dagbag[0]["train_tokenizer"]
    tasks = {t.task_id: t for t in dag.tasks}
    assert set(tasks) == {"train_video", "train_audio", "announce"}
    assert tasks["train_audio"].upstream_task_ids == {"train_video"}
    assert tasks["train_audio"].trigger_rule == "all_done"  # a failed video gate does not skip audio
    assert {o.name for o in tasks["announce"].outlets} == {"models.tokenizer"}
    # weekly, and on new embeddings (a bootstrap run trains only a modality with no production tokenizer)
    assert type(dag.timetable).__name__ == "AssetOrTimeSchedule"
    assert _scheduled_on(dag.timetable.asset_condition) == {"silver.embeddings"}
    assert dag.max_active_runs == 1 and not dag.catchup


def test_index_refresh_is_nightly_without_catch_up_and_one_run_at_a_time(dagbag) -> None:
    dag = dagbag[0]["index_refresh"]
    tasks = {t.task_id: t for t in dag.tasks}
    assert set(tasks) == {"build_clips", "build_bgm"}
    assert tasks["build_bgm"].upstream_task_ids == {"build_clips"} and tasks["build_bgm"].trigger_rule == "all_done"
    assert dag.max_active_runs == 1 and not dag.catchup
    assert dag.timetable.timetable.expression == "0 2 * * *"
    assert _scheduled_on(dag.timetable.asset_condition) == {"gold.tokens"}  # until the first production index exists


def test_training_sets_runs_on_new_tokens_and_writes_the_samples(dagbag) -> None:
    dag = dagbag[0]["training_sets"]
    tasks = {t.task_id: t for t in dag.tasks}
    assert set(tasks) == {"build_training_sets", "score_baselines", "render_previews"}
    assert tasks["score_baselines"].upstream_task_ids == {"build_training_sets"}
    assert tasks["render_previews"].upstream_task_ids == {"score_baselines"}
    assert {o.name for o in tasks["build_training_sets"].outlets} >= {"gold.samples", "gold.benchmark"}
    assert [a.name for a in dag.timetable.asset_condition.objects] == ["gold.tokens"]


def _scheduled_on(condition) -> set[str]:
    if hasattr(condition, "objects"):
        return set().union(*(_scheduled_on(c) for c in condition.objects))
    return {condition.name}


def test_train_editor_trains_one_model_after_the_other_and_scores_whatever_finished(dagbag) -> None:
    dag = dagbag[0]["train_editor"]
    tasks = {t.task_id: t for t in dag.tasks}
    assert set(tasks) == {"train_llm", "train_ssmp", "score_editor"}
    assert tasks["train_ssmp"].upstream_task_ids == {"train_llm"} and tasks["train_ssmp"].trigger_rule == "all_done"
    assert tasks["score_editor"].upstream_task_ids == {"train_ssmp"} and tasks["score_editor"].trigger_rule == "all_done"
    assert type(dag.timetable).__name__ == "NullTimetable" and dag.max_active_runs == 1  # the ML team triggers it


def test_every_asset_a_dag_is_scheduled_on_is_produced_by_some_task(dagbag) -> None:
    dags = dagbag[0]
    produced = {o.name for d in dags.values() for t in d.tasks for o in t.outlets}
    consumed = {name: _scheduled_on(d.timetable.asset_condition) for name, d in dags.items()
                if getattr(d.timetable, "asset_condition", None) is not None}
    assert set(consumed) == {"ads_parse", "ads_features", "train_tokenizer", "index_refresh", "training_sets"}
    orphans = {d: names - produced for d, names in consumed.items() if names - produced}
    assert not orphans, f"scheduled on Assets no task produces: {orphans}"


def test_retries_and_backoff_come_from_the_configuration_in_every_dag(dagbag) -> None:
    from adlake.config import get_settings

    conf = get_settings().airflow
    for dag in dagbag[0].values():
        assert dag.owner == conf.owner and "adlake" in dag.tags
        for t in dag.tasks:
            assert t.retries == conf.task_retries, (dag.dag_id, t.task_id)
            assert t.retry_delay.total_seconds() == conf.retry_delay_s and t.retry_exponential_backoff


@pytest.mark.parametrize("path", sorted(DAGS_FOLDER.glob("*.py")), ids=lambda p: p.name)
def test_dag_files_do_no_heavy_imports_at_parse_time(path: Path) -> None:
    tree = ast.parse(path.read_text())
    top_level = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    names = {(n.module or "").split(".")[0] for n in top_level if isinstance(n, ast.ImportFrom)}
    names |= {a.name.split(".")[0] for n in top_level if isinstance(n, ast.Import) for a in n.names}
    assert not names & HEAVY, f"{path.name} imports {names & HEAVY} at parse time"


def test_assets_are_defined_once_and_named_layer_dot_table() -> None:
    from adlake.assets import ASSETS, MODELS
    from schemas import TABLES

    assert set(ASSETS) == set(TABLES) | set(MODELS)
    for name, a in ASSETS.items():
        assert a.name == name and name.count(".") == 1
