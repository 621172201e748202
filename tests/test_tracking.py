"""One MLflow run per job invocation, with provenance."""

from __future__ import annotations

import pytest

from adlake.provenance import RunContext
from adlake.tracking import job_run


def test_job_run_records_params_tags_metrics(home) -> None:
    import mlflow

    ctx = RunContext.create("unit_job", run_id="r-42", dag_id="ads_ingest", task_id="land")
    with job_run(ctx, params={"k": "v"}, inputs={"bronze.videos": 0}) as run:
        run.metrics({"rows": 3})
        run.summary({"ok": True})
    got = mlflow.get_run(run.run_id)
    assert got.info.status == "FINISHED"
    assert got.data.params["input.bronze.videos.version"] == "0"  # version 0 is kept
    assert got.data.params["config_fingerprint"] == ctx.settings.fingerprint()
    assert got.data.params["k"] == "v"
    assert got.data.metrics["rows"] == 3
    assert got.data.tags["airflow.dag_id"] == "ads_ingest" and got.data.tags["adlake.run_id"] == "r-42"
    assert got.data.tags["airflow.run_id"] == "r-42" and got.data.tags["airflow.task_id"] == "land"
    assert str(home) in ctx.settings.mlflow.tracking_uri
    artifacts = [a.path for a in mlflow.MlflowClient().list_artifacts(run.run_id)]
    assert "summary.json" in artifacts


def test_a_failing_job_ends_its_run_failed(home) -> None:
    import mlflow

    ctx = RunContext.create("unit_job", run_id="r-43")
    with pytest.raises(RuntimeError), job_run(ctx) as run:
        raise RuntimeError("boom")
    assert mlflow.get_run(run.run_id).info.status == "FAILED"
