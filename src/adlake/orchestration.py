"""Running DAGs through Airflow on the current configuration (``adlake run``).

Airflow reads its settings from the environment at import time, so :func:`airflow_env` must run
before anything imports airflow in this process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adlake.config import ROOT, Settings

DAGS_FOLDER = ROOT / "dags"
CRAWL_POOL = "adlake_bandwidth"  # the pool bounding concurrent downloads; its size is ingest.crawl.pool_slots


def job_argv(with_manifest: bool = False) -> list[str]:
    """Arguments for a job's main() from inside a running Airflow task: run id, crawl date, task identity."""
    from airflow.sdk import get_current_context

    ctx = get_current_context()
    params = ctx["params"]
    argv = ["--run-id", ctx["run_id"], "--dag-id", ctx["dag"].dag_id, "--task-id", ctx["ti"].task_id]
    # Asset-triggered runs have no logical date, and need no partition.
    partition = params.get("crawl_date") or ctx.get("ds")
    if partition:
        argv += ["--partition", partition]
    if with_manifest and params.get("manifest"):
        argv += ["--manifest", params["manifest"]]
    return argv


def airflow_env(settings: Settings) -> dict[str, str]:
    home = Path(settings.airflow.home)
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": settings.airflow.sql_alchemy_conn or f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__DEFAULT_TASK_RETRIES": str(settings.airflow.task_retries),
        "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": str(settings.airflow.retry_delay_s),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": settings.airflow.log_level,
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        # Tasks run in this process; they must see the same adlake configuration.
        "ADLAKE_HOME": str(settings.home),
        "ADLAKE_ENV": settings.env,
    }


def prepare_airflow(settings: Settings) -> None:
    """Point Airflow at adlake's home and migrate its SQLite DB once per Airflow version."""
    env = airflow_env(settings)
    os.environ.update(env)
    home = Path(env["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    from importlib.metadata import version

    stamp = home / ".adlake-migrated"
    wanted = f"{version('apache-airflow-core')} pool={settings.ingest.crawl.pool_slots}"
    if stamp.exists() and stamp.read_text() == wanted:
        return
    res = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env={**os.environ},
                         capture_output=True, text=True)
    if res.returncode:
        raise RuntimeError(f"airflow db migrate failed:\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")
    from airflow.models.pool import Pool

    Pool.create_or_update_pool(CRAWL_POOL, slots=settings.ingest.crawl.pool_slots,
                               description="adlake crawl bandwidth", include_deferred=False)
    stamp.write_text(wanted)


@dataclass
class TaskOutcome:
    task_id: str
    map_index: int
    state: str
    try_number: int
    output: Any = None


@dataclass
class DagOutcome:
    dag_id: str
    run_id: str
    state: str
    tasks: list[TaskOutcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.state == "success" and all(t.state in ("success", "skipped") for t in self.tasks)

    def as_dict(self) -> dict[str, Any]:
        return {"dag_id": self.dag_id, "run_id": self.run_id, "state": self.state, "ok": self.ok,
                "tasks": [t.__dict__ for t in self.tasks]}


def load_dags() -> tuple[dict[str, Any], dict[str, str]]:
    """Every DAG in dags/ and the import errors, as Airflow's DagBag sees them."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS_FOLDER))
    return bag.dags, dict(bag.import_errors)


def _state(value: Any) -> str:
    return "none" if value is None else str(getattr(value, "value", value))


def run_dag(settings: Settings, dag_id: str, conf: dict[str, Any]) -> DagOutcome:
    """Run one DAG end to end with ``dag.test`` and collect each task's state and returned summary."""
    prepare_airflow(settings)
    dags, errors = load_dags()
    if errors:
        raise RuntimeError("DAG import errors:\n" + "\n".join(f"{k}: {v}" for k, v in errors.items()))
    if dag_id not in dags:
        raise KeyError(f"unknown DAG {dag_id!r}; known: {', '.join(sorted(dags))}")
    dag = dags[dag_id]
    run = dag.test(run_conf=conf)
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        outputs = {
            (x.task_id, x.map_index): x.value
            for x in session.scalars(select(XComModel).where(
                XComModel.dag_id == dag_id, XComModel.run_id == run.run_id, XComModel.key == "return_value"))
        }
        tis = run.get_task_instances(session=session)
        ordered = sorted(tis, key=lambda ti: (ti.start_date is None, ti.start_date or 0, ti.map_index))
        tasks = [TaskOutcome(ti.task_id, ti.map_index, _state(ti.state), ti.try_number,
                             outputs.get((ti.task_id, ti.map_index))) for ti in ordered]
    state = _state(run.state)
    return DagOutcome(dag_id=dag_id, run_id=run.run_id, state=state, tasks=tasks)
