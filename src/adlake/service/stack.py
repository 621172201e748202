"""The service stack of ``adlake up``: Postgres, an MLflow tracking server, Airflow's api-server, scheduler,
dag-processor and triggerer (LocalExecutor on Postgres), from one configuration profile.

State lives under ``<home>/service``: ``postgres/`` (the cluster), ``airflow/`` (its home and task logs),
``mlflow/artifacts/``, ``logs/<component>.log``, ``run/<component>.pid`` and ``secrets.json`` (mode 0600:
generated passwords and keys, unless the environment gives them). ``up`` starts what is not running and
changes nothing else; ``down`` stops everything and checks that no process of the stack is left.
"""

from __future__ import annotations

import functools
import json
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from adlake.config import Settings
from adlake.errors import ServiceUnavailable
from adlake.orchestration import CRAWL_POOL, airflow_env
from adlake.service.postgres import Postgres
from adlake.service.procs import MARKER, Proc, http_get, kill_leftovers, leftovers

AIRFLOW_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
DATABASES = ("airflow", "mlflow")
BIN = Path(sys.executable).parent


class StackError(ServiceUnavailable):
    pass


@dataclass(frozen=True)
class Stack:
    settings: Settings

    # -- where things are ---------------------------------------------------------------------------
    @property
    def root(self) -> Path:
        return Path(self.settings.home) / "service"

    @property
    def conf(self):
        if self.settings.service is None:
            raise StackError("no `service:` section in the configuration")
        return self.settings.service

    def proc(self, name: str) -> Proc:
        return Proc(name, self.root / "run" / f"{name}.pid", self.root / "logs" / f"{name}.log")

    @property
    def api_url(self) -> str:
        return f"http://{self.conf.host}:{self.conf.airflow_api_port}"

    @property
    def mlflow_url(self) -> str:
        return f"http://{self.conf.host}:{self.conf.mlflow_port}"

    # -- secrets: from the environment, else generated once ------------------------------------------
    @functools.cached_property
    def secrets(self) -> dict[str, str]:
        """Read (or generated and written) once per Stack: every environment below is built from it."""
        path = self.root / "secrets.json"
        stored = json.loads(path.read_text()) if path.exists() else {}
        wanted = {"postgres_password": self.conf.postgres.password, "admin_password": self.conf.admin_password,
                  "jwt_secret": None, "api_secret_key": None, "fernet_key": None}
        out = {}
        for key, given in wanted.items():
            out[key] = given or stored.get(key) or (_fernet_key() if key == "fernet_key" else secrets.token_urlsafe(24))
        if out != stored:
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.touch(mode=0o600)
            tmp.chmod(0o600)
            tmp.write_text(json.dumps(out, indent=2))
            tmp.replace(path)
        return out

    # -- environments ----------------------------------------------------------------------------------
    def base_env(self) -> dict[str, str]:
        """What every component and every task it runs sees: this adlake configuration, and the marker."""
        import os

        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        env.update({"ADLAKE_HOME": str(self.settings.home), "ADLAKE_ENV": self.settings.env,
                    MARKER: str(self.settings.home), "PATH": f"{BIN}:{env.get('PATH', '/usr/bin:/bin')}",
                    "MLFLOW_DISABLE_TELEMETRY": "true"})  # see adlake.tracking
        return env

    def postgres(self) -> Postgres:
        return Postgres(self.settings, self.root / "postgres", self.secrets["postgres_password"], self.base_env())

    def airflow_env(self) -> dict[str, str]:
        s = self.secrets
        home = self.root / "airflow"
        passwords = home / "passwords.json"
        if not passwords.exists() or json.loads(passwords.read_text()) != {self.conf.admin_user: s["admin_password"]}:
            home.mkdir(parents=True, exist_ok=True)
            passwords.touch(mode=0o600)
            passwords.write_text(json.dumps({self.conf.admin_user: s["admin_password"]}))
        return {
            **self.base_env(),
            **airflow_env(self.settings, home=home, sql_alchemy_conn=self.postgres().url("airflow")),
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(self.conf.parallelism),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",  # hands-off: DAGs run once parsed
            "AIRFLOW__CORE__FERNET_KEY": s["fernet_key"],
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{self.conf.admin_user}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
            "AIRFLOW__API__BASE_URL": self.api_url,
            "AIRFLOW__API__HOST": self.conf.host,
            "AIRFLOW__API__PORT": str(self.conf.airflow_api_port),
            "AIRFLOW__API__SECRET_KEY": s["api_secret_key"],
            "AIRFLOW__API_AUTH__JWT_SECRET": s["jwt_secret"],
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
            # a task whose process died with its scheduler is failed (and retried) after a minute, not five
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "60",
            "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "60",
        }

    def mlflow_env(self) -> dict[str, str]:
        artifacts = self.root / "mlflow" / "artifacts"
        artifacts.mkdir(parents=True, exist_ok=True)
        return {**self.base_env(), "MLFLOW_BACKEND_STORE_URI": self.postgres().url("mlflow"),
                "MLFLOW_ARTIFACTS_DESTINATION": artifacts.as_uri()}

    def airflow(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        res = subprocess.run([str(BIN / "airflow"), *args], env=self.airflow_env(), capture_output=True, text=True,
                             timeout=timeout)
        if res.returncode:
            raise StackError(f"airflow {' '.join(args)} exited {res.returncode}:\n{res.stdout[-1500:]}\n"
                             f"{res.stderr[-3000:]}")
        return res

    # -- health -----------------------------------------------------------------------------------------
    def airflow_health(self) -> dict[str, Any]:
        r = http_get(f"{self.api_url}/api/v2/monitor/health", timeout=5)
        return r.json() if r is not None and r.status_code == 200 else {}

    def component_health(self) -> dict[str, bool]:
        pg = self.postgres().healthy()
        r = http_get(f"{self.mlflow_url}/health", timeout=5)
        health = self.airflow_health()
        out = {"postgres": pg, "mlflow": r is not None and r.status_code == 200, "api-server": bool(health)}
        for name, key in (("scheduler", "scheduler"), ("dag-processor", "dag_processor"), ("triggerer", "triggerer")):
            out[name] = self.proc(name).pid() is not None and (health.get(key) or {}).get("status") == "healthy"
        return out

    # -- up, down, status ---------------------------------------------------------------------------------
    def up(self, say: Callable[[str], None] = print) -> dict[str, Any]:
        started: list[str] = []
        pg = self.postgres()
        if not pg.initialised():
            say(f"initialising Postgres in {pg.data}")
            pg.init()
        if not pg.running():
            say(f"starting Postgres on {self.conf.host}:{self.conf.postgres.port}")
            pg.start(self.conf.startup_timeout_s)
            started.append("postgres")
        created = [db for db in DATABASES if pg.ensure_database(db)]
        if created:
            say(f"created databases {created}")
        if self.proc("mlflow").pid() is None:
            say(f"starting the MLflow server on {self.mlflow_url}")
            self.proc("mlflow").start([str(BIN / "mlflow"), "server", "--host", self.conf.host, "--port",
                                       str(self.conf.mlflow_port), "--workers", "1", "--serve-artifacts"],
                                      self.mlflow_env(), cwd=self.root)
            started.append("mlflow")
        missing = [c for c in AIRFLOW_COMPONENTS if self.proc(c).pid() is None]
        if missing:
            say("migrating the Airflow database")
            self.airflow("db", "migrate")
            slots = self.settings.ingest.crawl.pool_slots
            self.airflow("pools", "set", CRAWL_POOL, str(slots), "adlake crawl bandwidth (ingest.crawl.pool_slots)")
            for name in missing:
                say(f"starting airflow {name}")
                argv = [str(BIN / "airflow"), name]
                if name == "api-server":
                    argv += ["--host", self.conf.host, "--port", str(self.conf.airflow_api_port), "--workers", "1"]
                self.proc(name).start(argv, self.airflow_env(), cwd=self.root)
                started.append(name)
        self.wait_healthy()
        return {**self.status(), "started": started}

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + self.conf.startup_timeout_s
        health = self.component_health()
        while not all(health.values()):
            dead = [c for c in ("mlflow", *AIRFLOW_COMPONENTS) if self.proc(c).pid() is None]
            if dead or time.monotonic() > deadline:
                why = f"{dead} exited" if dead else f"not healthy after {self.conf.startup_timeout_s:.0f} s"
                logs = {c: str(self.proc(c).log_file) for c in (dead or [k for k, ok in health.items() if not ok])}
                raise StackError(f"service stack: {why}; see {logs}")
            time.sleep(2)
            health = self.component_health()

    def down(self, say: Callable[[str], None] = print) -> dict[str, Any]:
        stopped = []
        for name in (*reversed(AIRFLOW_COMPONENTS), "mlflow"):
            if self.proc(name).stop(self.conf.stop_timeout_s):
                say(f"stopped {name}")
                stopped.append(name)
        pg = self.postgres()
        if pg.stop(self.conf.stop_timeout_s):
            say("stopped postgres")
            stopped.append("postgres")
        stray = kill_leftovers(Path(self.settings.home))
        if stray:
            say(f"stopped {len(stray)} stray process(es) of the stack: {[p['cmd'][:60] for p in stray]}")
        left = leftovers(Path(self.settings.home))
        if left:
            raise StackError(f"processes of the stack still run after down: {left}")
        return {"stopped": stopped, "stray": stray, "left": left}

    def status(self) -> dict[str, Any]:
        health = self.component_health()
        ports = {"postgres": self.conf.postgres.port, "mlflow": self.conf.mlflow_port,
                 "api-server": self.conf.airflow_api_port}
        components = {}
        for name, ok in health.items():
            pid = self.postgres_pid() if name == "postgres" else self.proc(name).pid()
            state = "running" if ok else ("unhealthy" if pid is not None else "stopped")
            components[name] = {"state": state, "pid": pid, "port": ports.get(name),
                                "log": str(self.root / "logs" / f"{name}.log")}
        return {
            "home": str(self.settings.home), "env": self.settings.env,
            "up": all(health.values()),
            "components": components,
            "airflow": {"ui": self.api_url, "api": f"{self.api_url}/api/v2",
                        "auth": {"token_url": f"{self.api_url}/auth/token", "method": "POST",
                                 "body": {"username": self.conf.admin_user, "password": "<admin_password>"},
                                 "password_file": str(self.root / "secrets.json"), "password_key": "admin_password",
                                 "header": "Authorization: Bearer <access_token>"}},
            "mlflow": {"tracking_uri": self.mlflow_url},
            "postgres": {"host": self.conf.host, "port": self.conf.postgres.port, "user": self.conf.postgres.user,
                         "databases": list(DATABASES)},
        }

    def postgres_pid(self) -> int | None:
        pid_file = self.root / "postgres" / "data" / "postmaster.pid"
        try:
            return int(pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    # -- for scripts and tests ------------------------------------------------------------------------------
    def token(self) -> str:
        r = httpx.post(f"{self.api_url}/auth/token", json={"username": self.conf.admin_user,
                                                            "password": self.secrets["admin_password"]}, timeout=10)
        r.raise_for_status()
        return r.json()["access_token"]


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()
