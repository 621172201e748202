"""What produced an output: run id, code version, configuration fingerprint, Airflow context."""

from __future__ import annotations

import functools
import os
import subprocess
import uuid
from dataclasses import dataclass, field

from adlake.config import ROOT, Settings, get_settings


@functools.lru_cache(maxsize=1)
def git_sha() -> str:
    """HEAD of the checkout, with '-dirty' when tracked files differ; ADLAKE_GIT_SHA wins when set."""
    if os.environ.get("ADLAKE_GIT_SHA"):
        return os.environ["ADLAKE_GIT_SHA"]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return f"{sha}-dirty" if dirty else sha
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def new_run_id(prefix: str = "manual") -> str:
    return f"{prefix}__{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True)
class RunContext:
    """Identity of one job invocation; stamped on every commit and MLflow run it makes."""

    run_id: str
    job: str
    settings: Settings = field(repr=False)
    dag_id: str | None = None
    task_id: str | None = None

    @classmethod
    def create(cls, job: str, run_id: str | None = None, settings: Settings | None = None,
               dag_id: str | None = None, task_id: str | None = None) -> RunContext:
        return cls(run_id=run_id or new_run_id(job), job=job, settings=settings or get_settings(),
                   dag_id=dag_id, task_id=task_id)

    @property
    def config_fingerprint(self) -> str:
        return self.settings.fingerprint()

    def stamp(self) -> dict[str, str]:
        out = {"adlake.run_id": self.run_id, "adlake.job": self.job, "adlake.git_sha": git_sha(),
               "adlake.config_fingerprint": self.config_fingerprint}
        if self.dag_id:  # inside Airflow the adlake run id is the DAG run's id
            out["airflow.dag_id"] = self.dag_id
            out["airflow.run_id"] = self.run_id
        if self.task_id:
            out["airflow.task_id"] = self.task_id
        return out
