"""One MLflow run per job invocation, tied to the adlake run id and the Airflow run when there is one."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from adlake.errors import ServiceUnavailable
from adlake.provenance import RunContext, git_sha

# adlake sends no telemetry; MLflow's telemetry thread also sets and unsets an environment variable while
# other threads iterate os.environ (requests' proxy lookup), which failed a log_batch with
# KeyError: '_MLFLOW_TELEMETRY_SESSION_ID' under the scheduler. Set before mlflow is first imported.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

NOT_FOUND = "RESOURCE_DOES_NOT_EXIST"  # MLflow's error codes that are answers, not failures
ALREADY_EXISTS = "RESOURCE_ALREADY_EXISTS"
ANSWERS = (NOT_FOUND, ALREADY_EXISTS)


def _artifact_location(root: str, experiment: str) -> str:
    if "://" in root:
        return f"{root.rstrip('/')}/{experiment}"
    path = Path(root) / experiment
    path.mkdir(parents=True, exist_ok=True)
    return path.as_uri()


def configure(ctx: RunContext) -> None:
    import mlflow

    conf = ctx.settings.mlflow
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # keeps task logs and stderr readable
    if conf.tracking_uri.startswith("sqlite:///"):
        Path(conf.tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    if conf.tracking_uri.startswith(("http://", "https://")):
        # MLflow's own default retries a dead server for minutes; a task should fail and be retried instead
        os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(conf.http_retries)
        os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(conf.http_timeout_s)
        os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] = str(conf.http_backoff_factor)
    if conf.s3_endpoint_url and (conf.artifact_root or "").startswith("s3://"):
        # MLflow's S3 artifact store is boto3: the endpoint and the lake's credentials through its environment
        os.environ["MLFLOW_S3_ENDPOINT_URL"] = conf.s3_endpoint_url
        lake = {k.upper(): v for k, v in ctx.settings.lake.storage_options.items()}
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            if lake.get(key):
                os.environ.setdefault(key, lake[key])
        os.environ.setdefault("AWS_DEFAULT_REGION", lake.get("AWS_REGION", "us-east-1"))
    mlflow.set_tracking_uri(conf.tracking_uri)
    mlflow.set_registry_uri(conf.registry_uri or conf.tracking_uri)


def mlflow_code(error: BaseException) -> str | None:
    """MLflow's error code of an exception (``RESOURCE_DOES_NOT_EXIST``, ...), None for any other error."""
    return getattr(error, "error_code", None)


@contextlib.contextmanager
def service_errors(uri: str | None = None) -> Iterator[None]:
    """MLflow calls inside: its answers pass through (an MlflowException saying not found or already exists);
    any other MlflowException, or a connection error, becomes :class:`ServiceUnavailable` naming the server
    (``uri``, default: the tracking URI) and the cause, so that the task fails and is retried."""
    import mlflow
    import requests

    try:
        yield
    except (mlflow.exceptions.MlflowException, requests.exceptions.RequestException, ConnectionError) as e:
        if mlflow_code(e) in ANSWERS:
            raise
        uri = uri or mlflow.get_tracking_uri()
        raise ServiceUnavailable(f"MLflow ({uri}) failed: {type(e).__name__}: {e}") from e


def experiment_id(ctx: RunContext, name: str) -> str:
    import mlflow

    conf = ctx.settings.mlflow
    full = f"{conf.experiment_prefix}/{name}"
    with service_errors(conf.tracking_uri):
        found = mlflow.get_experiment_by_name(full)  # None when there is none
        if found is not None:
            return found.experiment_id
        # no artifact root (a tracking server that stores the artifacts): the server's default location
        location = None if conf.artifact_root is None else _artifact_location(conf.artifact_root, name)
        try:
            return mlflow.create_experiment(full, artifact_location=location)
        except mlflow.exceptions.MlflowException as e:
            if mlflow_code(e) != ALREADY_EXISTS:
                raise
        return mlflow.get_experiment_by_name(full).experiment_id  # created concurrently


class JobRun:
    """Thin handle on the active MLflow run."""

    def __init__(self, run: Any):
        self.run = run
        self.run_id: str = run.info.run_id

    def params(self, values: dict[str, Any]) -> None:
        import mlflow

        mlflow.log_params({k: ("null" if v is None else v) for k, v in values.items()})

    def input_table(self, name: str, version: int | None) -> None:
        # Logged as a parameter: MLflow's Delta dataset source drops version 0.
        self.params({f"input.{name}.version": version})

    def metrics(self, values: dict[str, float], step: int | None = None) -> None:
        import mlflow

        mlflow.log_metrics({k: float(v) for k, v in values.items() if v is not None}, step=step)

    def summary(self, values: dict[str, Any], name: str = "summary.json") -> None:
        import mlflow

        mlflow.log_text(json.dumps(values, indent=2, sort_keys=True, default=str), name)

    def artifact(self, path: str | os.PathLike, subdir: str | None = None) -> None:
        import mlflow

        mlflow.log_artifact(str(path), artifact_path=subdir)

    def artifacts(self, folder: str | os.PathLike, subdir: str | None = None) -> None:
        """Every file under ``folder``."""
        import mlflow

        mlflow.log_artifacts(str(folder), artifact_path=subdir)


@contextlib.contextmanager
def job_run(ctx: RunContext, *, experiment: str | None = None, params: dict[str, Any] | None = None,
            inputs: dict[str, int | None] | None = None) -> Iterator[JobRun]:
    """Open the MLflow run of one job invocation; it ends FAILED when the body raises."""
    import mlflow

    configure(ctx)
    tags = {**ctx.stamp(), "mlflow.source.git.commit": git_sha()}
    with mlflow.start_run(experiment_id=experiment_id(ctx, experiment or ctx.job), run_name=ctx.run_id,
                          tags=tags) as run:
        handle = JobRun(run)
        handle.params({"config_fingerprint": ctx.config_fingerprint, "git_sha": git_sha(),
                       "adlake_run_id": ctx.run_id, **(params or {})})
        for name, version in (inputs or {}).items():
            handle.input_table(name, version)
        yield handle


def ensure_registered_model(client: Any, name: str, description: str) -> None:
    """Create the registered model unless it exists (another process may create it at the same time)."""
    from mlflow.exceptions import MlflowException

    with service_errors():
        try:
            client.get_registered_model(name)
            return
        except MlflowException as e:
            if mlflow_code(e) != NOT_FOUND:
                raise
        try:
            client.create_registered_model(name, description=description)
        except MlflowException as e:
            if mlflow_code(e) != ALREADY_EXISTS:
                raise  # else created concurrently
