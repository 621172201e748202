"""adlake's Airflow glue: what every DAG shares (defaults, job arguments, error mapping) and running DAGs
through Airflow on the current configuration (``adlake run``).

Airflow reads its settings from the environment at import time, so :func:`airflow_env` must run
before anything imports airflow in this process.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adlake.config import ROOT, Settings

DAGS_FOLDER = ROOT / "dags"
CRAWL_POOL = "adlake_bandwidth"  # the pool bounding concurrent downloads; its size is ingest.crawl.pool_slots
SKIP_KEY = "skipped"  # the XCom holding a skipped task's reason


def job_argv(with_manifest: bool = False, bootstrap_on_asset: bool = False) -> list[str]:
    """Arguments for a job's main() from inside a running Airflow task: run id, crawl date, task identity;
    with ``bootstrap_on_asset``, ``--bootstrap`` when Asset events (not a clock or a person) created the run."""
    from airflow.sdk import get_current_context

    ctx = get_current_context()
    params = ctx["params"]
    argv = ["--run-id", ctx["run_id"], "--dag-id", ctx["dag"].dag_id, "--task-id", ctx["ti"].task_id]
    # Asset-triggered runs have no logical date, and need no partition. A DAG with a crawl date (ads_ingest)
    # triggered through the REST API without a logical date crawls the day it was triggered for.
    partition = params.get("crawl_date") or ctx.get("ds")
    if not partition and "crawl_date" in params:
        partition = ctx["dag_run"].run_after.date().isoformat()
    if partition:
        argv += ["--partition", partition]
    if with_manifest and params.get("manifest"):
        argv += ["--manifest", params["manifest"]]
    if bootstrap_on_asset and asset_triggered():
        argv.append("--bootstrap")
    return argv


def asset_triggered() -> bool:
    """Whether the running DAG run was created by Asset events (not by its clock or by hand)."""
    from airflow.sdk import get_current_context

    run_type = get_current_context()["dag_run"].run_type
    return str(getattr(run_type, "value", run_type)) == "asset_triggered"


@contextlib.contextmanager
def task_errors() -> Iterator[None]:
    """Map adlake's errors onto Airflow's task states inside a running task:

    - ``NothingToDo``: the task is *skipped*, with the reason in its log and in the XCom ``skipped``, so
      it emits no Asset event;
    - ``GateFailed``: the task fails at once, never retried (a gate's verdict is not a transient error);
    - anything else propagates and is retried by the DAG's ``retries``.
    """
    from airflow.sdk import get_current_context
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    from adlake.errors import GateFailed, NothingToDo

    try:
        yield
    except NothingToDo as e:
        get_current_context()["ti"].xcom_push(key=SKIP_KEY, value=str(e))
        raise AirflowSkipException(str(e)) from e
    except GateFailed as e:
        raise AirflowFailException(str(e)) from e


def run_task(main: Callable[[list[str]], dict[str, Any]], argv: list[str]) -> dict[str, Any]:
    """A job's main() as an Airflow task, under :func:`task_errors`."""
    with task_errors():
        return main(argv)


def dag_defaults(*tags: str) -> dict[str, Any]:
    """Arguments every adlake DAG shares (``@dag(**dag_defaults("ingest"), ...)``), with retries and their
    backoff from the configuration, read when the DAG file is parsed: a scheduler, a DAG processor and
    ``adlake run`` all see the same retries, whatever their environment sets."""
    from adlake.config import get_settings

    conf = get_settings().airflow
    return {
        "start_date": dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
        "catchup": False,
        "max_active_runs": 1,
        "tags": ["adlake", *tags],
        "default_args": {
            "owner": conf.owner,
            "retries": conf.task_retries,
            "retry_delay": dt.timedelta(seconds=conf.retry_delay_s),
            "retry_exponential_backoff": True,
            "max_retry_delay": dt.timedelta(seconds=conf.max_retry_delay_s),
        },
    }


def airflow_env(settings: Settings, home: Path | None = None, sql_alchemy_conn: str | None = None) -> dict[str, str]:
    """Airflow's settings for adlake: its home, the DAG folder, the metadata DB (SQLite in the home unless
    configured), and the adlake configuration every task must see."""
    home = Path(home or settings.airflow.home)
    conn = sql_alchemy_conn or settings.airflow.sql_alchemy_conn or f"sqlite:///{home / 'airflow.db'}"
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": conn,
        "AIRFLOW__LOGGING__LOGGING_LEVEL": settings.airflow.log_level,
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
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
    duration_s: float | None = None


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
        outputs: dict[tuple[str, int], Any] = {}
        for x in session.scalars(select(XComModel).where(
                XComModel.dag_id == dag_id, XComModel.run_id == run.run_id,
                XComModel.key.in_(["return_value", SKIP_KEY]))):
            outputs[(x.task_id, x.map_index)] = x.value if x.key == "return_value" else {SKIP_KEY: x.value}
        tis = run.get_task_instances(session=session)
        ordered = sorted(tis, key=lambda ti: (ti.start_date is None, ti.start_date or 0, ti.map_index))
        tasks = [TaskOutcome(ti.task_id, ti.map_index, _state(ti.state), ti.try_number,
                             outputs.get((ti.task_id, ti.map_index)),
                             None if ti.duration is None else round(ti.duration, 2)) for ti in ordered]
    state = _state(run.state)
    return DagOutcome(dag_id=dag_id, run_id=run.run_id, state=state, tasks=tasks)
