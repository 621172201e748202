"""The gated registry against a real MLflow tracking server, and what an outage of that server does: an
error to retry (ServiceUnavailable), never "nothing registered yet"."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.mlflow

MODEL = "adlake-test-model"
HTTP_ENV = ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    """The server and its uvicorn worker (its own process group)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # a worker that outlived its parent
    except ProcessLookupError:
        pass


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    """``mlflow server`` on a free port (SQLite backend store), as a subprocess; stopped by the outage test."""
    tmp = tmp_path_factory.mktemp("mlflow-server")
    url = f"http://127.0.0.1:{_free_port()}"
    log = (tmp / "server.log").open("w")
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", url.rsplit(":", 1)[1],
         "--workers", "1", "--backend-store-uri", f"sqlite:///{tmp / 'm.db'}", "--artifacts-destination",
         str(tmp / "artifacts")],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})  # no job-runner processes
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not start: {(tmp / 'server.log').read_text()[-3000:]}")
            time.sleep(0.3)
        yield url, proc
    finally:
        _stop(proc)
        log.close()


@pytest.fixture
def remote(home: Path, server, monkeypatch: pytest.MonkeyPatch):
    """A RunContext whose MLflow is the server (which stores the artifacts: mlflow-artifacts:/)."""
    from adlake.config import get_settings
    from adlake.provenance import RunContext

    url, _ = server
    monkeypatch.setenv("ADLAKE__MLFLOW__TRACKING_URI", url)
    monkeypatch.delenv("ADLAKE__MLFLOW__ARTIFACT_ROOT", raising=False)
    for name in HTTP_ENV:  # configure() sets them; restored after the test
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    return RunContext.create("test", run_id="run-1")


def _log_version(ctx, content: str) -> str:
    """One run with a tiny model folder: ``model/meta.json`` and ``model/blob.bin``."""
    from adlake.tracking import job_run

    folder = Path(ctx.settings.home) / "model"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "meta.json").write_text(json.dumps({"content": content}))
    (folder / "blob.bin").write_bytes(content.encode() * 100)
    with job_run(ctx, experiment="registry_test") as run:
        run.artifact(folder / "meta.json", "model")
        run.artifact(folder / "blob.bin", "model")
    return run.run_id


def test_production_moves_only_to_gate_passing_versions(remote) -> None:
    from adlake.registry import GatedRegistry, NoVersion
    from adlake.tokenizer.registry import production_version

    reg = GatedRegistry(remote, MODEL, "test model")
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "2"  # conf/base.yaml, applied for an http server
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "10"
    # an empty server: nothing registered is an answer, not an error
    assert reg.production() is None and reg.versions() == [] and reg.get(1) is None
    assert production_version(remote, "video") is None
    with pytest.raises(NoVersion, match="no production version"):
        reg.rollback()

    v1 = reg.register(_log_version(remote, "one"), "model", passed=True, tags={"k": "1"}, description="first")
    assert str(v1.version) == "1" and reg.production().version == v1.version
    reg.register(_log_version(remote, "two"), "model", passed=False, tags={"k": "2"})
    assert str(reg.production().version) == "1"  # a failed gate leaves production alone
    reg.register(_log_version(remote, "three"), "model", passed=True, tags={"k": "3"})
    assert str(reg.production().version) == "3"
    found = reg.versions()
    assert [str(v.version) for v in found] == ["1", "2", "3"]
    assert [v.tags["gate"] for v in found] == ["passed", "failed", "passed"]
    assert found[1].tags["k"] == "2" and reg.get(3).tags["k"] == "3"
    assert reg.read_json(reg.get(2), "model/meta.json") == {"content": "two"}

    # rollback skips the failed version, and refuses it as a target
    assert reg.rollback() == {"model": MODEL, "production": "1", "previous_production": "3"}
    assert reg.get(1).tags["rolled_back_from"] == "3"
    with pytest.raises(NoVersion, match="did not pass"):
        reg.rollback(to=2)
    with pytest.raises(NoVersion, match="no version 9"):
        reg.rollback(to=9)
    assert reg.rollback(to=3)["production"] == "3"

    # retention: keep production (3); versions 1 and 2 lose their blob, keep the rest
    assert [str(v.version) for v in reg.prune(keep=1, files=["model/blob.bin"])] == ["1", "2"]
    assert reg.prune(keep=1, files=["model/blob.bin"]) == []  # idempotent
    assert reg.get(1).tags["pruned"] == "true" and "pruned" not in reg.get(3).tags
    assert reg.read_json(reg.get(1), "model/meta.json") == {"content": "one"}
    assert {a.path for a in reg.client.list_artifacts(reg.get(1).run_id, "model")} == {"model/meta.json"}
    with pytest.raises(NoVersion, match="pruned"):
        reg.rollback(to=1)
    with pytest.raises(NoVersion, match="no older gate-passing"):
        reg.rollback()


def test_an_outage_is_an_error_not_nothing_registered(remote, server) -> None:
    from adlake.errors import ServiceUnavailable
    from adlake.lake import Lake
    from adlake.registry import GatedRegistry
    from adlake.tokenizer.registry import production_version
    from adlake.tokenizer.tokenize import tokenize_all
    from adlake.tracking import experiment_id

    url, proc = server
    reg = GatedRegistry(remote, MODEL)
    _stop(proc)  # the tracking server goes down
    calls = {"production()": reg.production, "versions()": reg.versions, "get(1)": lambda: reg.get(1),
             "production_version(video)": lambda: production_version(remote, "video"),
             "tokenize_all": lambda: tokenize_all(Lake(remote)),
             "experiment_id": lambda: experiment_id(remote, "registry_test")}
    for name, call in calls.items():
        t0 = time.monotonic()
        with pytest.raises(ServiceUnavailable, match=url) as raised:
            call()
        assert time.monotonic() - t0 < 30, f"{name} took {time.monotonic() - t0:.1f} s to fail"
        assert raised.value.__cause__ is not None, name
