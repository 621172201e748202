"""The local cluster of ``adlake cluster up`` (``make cluster-up``): on this machine, the engines a deployment
already runs, for ``conf/cluster.local.yaml`` to point at.

- **object store**: moto's standalone S3 server (``moto[server]``) on 127.0.0.1, with the buckets of the
  configuration created; the lake, the media store, the staging areas and MLflow artifacts live there;
- **Spark standalone**: a master and ``cluster.spark_workers`` workers from the lockfile's own pyspark
  (``spark-class org.apache.spark.deploy.master.Master`` / ``...worker.Worker``), each worker with its cores
  and memory from conf;
- **Ray**: a head and ``cluster.ray_nodes - 1`` more nodes (``ray start --head``, then
  ``ray start --address``), each with its own CPUs and a custom resource ``adlake_node_<i>`` so that
  placement across nodes is real and visible.

State lives under ``<home>/cluster`` (``logs/``, ``run/``, Spark work folders, Ray's temp folder). ``up``
starts what is not running; ``down`` stops everything and checks that no process is left. Every process
carries the marker ``ADLAKE_CLUSTER_HOME``, so stray executors and Ray workers are found too.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from adlake.config import Settings
from adlake.errors import ServiceUnavailable
from adlake.service.procs import Proc, http_get, kill_leftovers, leftovers

BIN = Path(sys.executable).parent
MARKER = "ADLAKE_CLUSTER_HOME"


class ClusterError(ServiceUnavailable):
    pass


@dataclass(frozen=True)
class Cluster:
    settings: Settings

    @property
    def conf(self):
        if self.settings.cluster is None:
            raise ClusterError("no `cluster:` section in the configuration")
        return self.settings.cluster

    @property
    def root(self) -> Path:
        return Path(self.settings.home) / "cluster"

    def proc(self, name: str) -> Proc:
        return Proc(name, self.root / "run" / f"{name}.pid", self.root / "logs" / f"{name}.log")

    # -- where the profile says each engine listens (one place: its URLs) ----------------------------------
    def _local(self, what: str, url: str | None, scheme: str) -> tuple[str, int]:
        parts = urlsplit(url if url and "://" in url else f"{scheme}://{url}")
        if parts.scheme != scheme or parts.hostname not in ("127.0.0.1", "localhost") or not parts.port:
            raise ClusterError(f"adlake cluster up runs the engines on this machine: {what} must be "
                               f"{scheme}://127.0.0.1:<port>, got {url!r}")
        return parts.hostname, parts.port

    @property
    def host(self) -> str:
        return self._local("spark.master", self.settings.spark.master, "spark")[0]

    @property
    def s3(self) -> tuple[str, int]:
        return self._local("lake.storage_options.AWS_ENDPOINT_URL",
                           self.settings.lake.storage_options.get("AWS_ENDPOINT_URL"), "http")

    @property
    def s3_url(self) -> str:
        host, port = self.s3
        return f"http://{host}:{port}"

    @property
    def spark_master(self) -> str:
        return self.settings.spark.master

    @property
    def ray_port(self) -> int:
        return self._local("ray.address", self.settings.ray.address, "ray")[1]

    @property
    def ray_address(self) -> str:
        return f"{self.host}:{self.ray_port}"

    def workers(self) -> list[str]:
        return [f"spark-worker-{i + 1}" for i in range(self.conf.spark_workers)]

    def ray_nodes(self) -> list[str]:
        return ["ray-head", *(f"ray-node-{i + 1}" for i in range(1, self.conf.ray_nodes))]

    def components(self) -> list[str]:
        return ["s3", "spark-master", *self.workers(), *self.ray_nodes()]

    # -- environments ------------------------------------------------------------------------------------
    def base_env(self) -> dict[str, str]:
        import pyspark

        env = dict(os.environ)
        env.update(self._ray_auth())
        env.update({MARKER: str(self.settings.home), "PATH": f"{BIN}:{env.get('PATH', '/usr/bin:/bin')}",
                    "SPARK_HOME": str(Path(pyspark.__file__).parent), "PYSPARK_PYTHON": sys.executable,
                    "SPARK_LOCAL_IP": self.host, "SPARK_LOG_DIR": str(self.root / "logs"),
                    "SPARK_NO_DAEMONIZE": "1", "RAY_USAGE_STATS_ENABLED": "0"})
        return env

    def _ray_auth(self) -> dict[str, str]:
        """Ray's token authentication: the token file of ``ray.auth_token_path``, generated once (0600)."""
        from adlake.ray_session import ray_auth_env

        env = ray_auth_env(self.settings)
        if not env:
            raise ClusterError("ray.auth_token_path is not set: a Ray cluster is not started without authentication")
        path = Path(env["RAY_AUTH_TOKEN_PATH"])
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.touch(mode=0o600)
            tmp.write_text(secrets.token_hex(32))
            tmp.replace(path)
        return env

    # -- starting ----------------------------------------------------------------------------------------
    def _argv(self, name: str) -> list[str]:
        c = self.conf
        spark_class = str(Path(self.base_env()["SPARK_HOME"]) / "bin" / "spark-class")
        if name == "s3":
            return [str(BIN / "moto_server"), "-H", self.s3[0], "-p", str(self.s3[1])]
        if name == "spark-master":
            return [spark_class, "org.apache.spark.deploy.master.Master", "--host", self.host,
                    "--port", str(self._local("spark.master", self.spark_master, "spark")[1]),
                    "--webui-port", str(c.spark_ui_port)]
        if name.startswith("spark-worker-"):
            i = int(name.rsplit("-", 1)[1])
            work = self.root / "spark" / name
            work.mkdir(parents=True, exist_ok=True)
            return [spark_class, "org.apache.spark.deploy.worker.Worker", self.spark_master, "--host", self.host,
                    "--cores", str(c.spark_worker_cores), "--memory", c.spark_worker_memory,
                    "--webui-port", str(c.spark_ui_port + i), "--work-dir", str(work)]
        i = self.ray_nodes().index(name)
        common = ["--node-ip-address", self.host, "--num-cpus", str(c.ray_cpus_per_node), "--block",
                  "--object-store-memory", str(c.ray_object_store_mb << 20), "--disable-usage-stats",
                  "--resources", json.dumps({f"adlake_node_{i + 1}": 1}),
                  "--node-manager-port", str(self.ray_port + 10 + 10 * i),
                  "--object-manager-port", str(self.ray_port + 11 + 10 * i),
                  "--dashboard-agent-listen-port", str(self.ray_port + 12 + 10 * i),
                  "--dashboard-agent-grpc-port", str(self.ray_port + 13 + 10 * i),
                  "--runtime-env-agent-port", str(self.ray_port + 14 + 10 * i),
                  "--metrics-export-port", str(self.ray_port + 15 + 10 * i),
                  "--min-worker-port", str(self.ray_port + 1000 + 200 * i),
                  "--max-worker-port", str(self.ray_port + 1199 + 200 * i)]
        if i == 0:
            return [str(BIN / "ray"), "start", "--head", "--port", str(self.ray_port), "--include-dashboard", "false",
                    "--temp-dir", str(self.root / "ray"), "--ray-client-server-port", str(self.ray_port + 1), *common]
        return [str(BIN / "ray"), "start", "--address", self.ray_address, *common]

    def up(self, say: Callable[[str], None] = print) -> dict[str, Any]:
        started = []
        for name in self.components():
            if self.proc(name).pid() is None:
                self._check_ports(name)
                self._start(name, say)
                started.append(name)
        self.ensure_buckets()
        return {**self.status(), "started": started}

    def _ports(self, name: str) -> list[int]:
        c = self.conf
        if name == "s3":
            return [self.s3[1]]
        if name == "spark-master":
            return [self._local("spark.master", self.spark_master, "spark")[1], c.spark_ui_port]
        if name.startswith("spark-worker-"):
            return [c.spark_ui_port + int(name.rsplit("-", 1)[1])]
        return [self.ray_port] if name == "ray-head" else []

    def _check_ports(self, name: str) -> None:
        import socket

        for port in self._ports(name):
            with socket.socket() as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a TIME_WAIT is no listener
                try:
                    sock.bind((self.host, port))
                except OSError:
                    raise ClusterError(f"cluster: {name} cannot start, port {port} is in use by another program "
                                       f"(a cluster of another ADLAKE_HOME? `ss -ltnp | grep {port}`)") from None

    def _start(self, name: str, say: Callable[[str], None]) -> None:
        """Start ``name`` and wait until it is healthy; one that exits while starting is started again, up to
        ``cluster.start_attempts`` times."""
        for attempt in range(1, self.conf.start_attempts + 1):
            say(f"starting {name}" + (f" (attempt {attempt} of {self.conf.start_attempts})" if attempt > 1 else ""))
            pid = self.proc(name).start(self._argv(name), self.base_env(), cwd=self.root)
            if self._wait(name):
                return
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)  # whatever it had started (a raylet) goes with it
            say(f"{name} exited while starting; see {self.proc(name).log_file}")
        raise ClusterError(f"cluster: {name} exited {self.conf.start_attempts} times while starting; "
                           f"see {self.proc(name).log_file}")

    def _wait(self, name: str) -> bool:
        """True once ``name`` is healthy, False when its process exited; a ClusterError when it runs but is not
        healthy within ``cluster.startup_timeout_s``."""
        deadline = time.monotonic() + self.conf.startup_timeout_s
        while not self.healthy(name):
            if self.proc(name).pid() is None:
                return False
            if time.monotonic() > deadline:
                raise ClusterError(f"cluster: {name} not healthy after {self.conf.startup_timeout_s:.0f} s; "
                                   f"see {self.proc(name).log_file}")
            time.sleep(1)
        return True

    def ensure_buckets(self) -> list[str]:
        import boto3

        opts = self.settings.lake.storage_options
        s3 = boto3.client("s3", endpoint_url=self.s3_url, region_name=opts.get("AWS_REGION", "us-east-1"),
                          aws_access_key_id=opts.get("AWS_ACCESS_KEY_ID"),
                          aws_secret_access_key=opts.get("AWS_SECRET_ACCESS_KEY"))
        have = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
        made = []
        for bucket in self.buckets():
            if bucket not in have:
                s3.create_bucket(Bucket=bucket)
                made.append(bucket)
        return made

    def buckets(self) -> list[str]:
        s = self.settings
        uris = [s.lake.uri, s.lake.staging_uri, s.media.uri, s.mlflow.artifact_root or ""]
        return sorted({urlsplit(u).netloc for u in uris if u and u.startswith("s3://")})

    # -- health ------------------------------------------------------------------------------------------
    def spark_state(self) -> dict[str, Any]:
        r = http_get(f"http://{self.host}:{self.conf.spark_ui_port}/json/", timeout=3)
        return r.json() if r is not None and r.status_code == 200 else {}

    def ray_joined(self) -> set[str]:
        """The ``adlake_node_<i>`` resources the Ray cluster reports: the nodes that joined (``ray status``
        reads the GCS; the state API would need the dashboard)."""
        import re
        import subprocess

        try:
            res = subprocess.run([str(BIN / "ray"), "status", "--address", self.ray_address], capture_output=True,
                                 text=True, timeout=30, env=self.base_env())
        except subprocess.TimeoutExpired:
            return set()
        return set(re.findall(r"/\d+(?:\.\d+)? (adlake_node_\d+)", res.stdout)) if res.returncode == 0 else set()

    def healthy(self, name: str) -> bool:
        if self.proc(name).pid() is None:
            return False
        if name == "s3":
            r = http_get(f"{self.s3_url}/", timeout=3)
            return r is not None and r.status_code == 200
        if name == "spark-master":
            return self.spark_state().get("status") == "ALIVE"
        if name.startswith("spark-worker-"):  # registered with the master, known by its web UI port
            port = f":{self.conf.spark_ui_port + int(name.rsplit('-', 1)[1])}"
            return any(w.get("state") == "ALIVE" and str(w.get("webuiaddress", "")).endswith(port)
                       for w in self.spark_state().get("workers", []))
        # `ray status` is a heavy process: asked only once the node says it started (after it registered)
        return (self.proc(name).logged_since_start("Ray runtime started")
                and f"adlake_node_{self.ray_nodes().index(name) + 1}" in self.ray_joined())

    # -- down, status --------------------------------------------------------------------------------------
    def down(self, say: Callable[[str], None] = print) -> dict[str, Any]:
        stopped = []
        for name in reversed(self.components()):
            if self.proc(name).stop(self.conf.stop_timeout_s):
                say(f"stopped {name}")
                stopped.append(name)
        stray = kill_leftovers(Path(self.settings.home), marker=MARKER)
        if stray:
            say(f"stopped {len(stray)} stray process(es) of the cluster")
        left = leftovers(Path(self.settings.home), marker=MARKER)
        if left:
            raise ClusterError(f"processes of the cluster still run after down: {left}")
        return {"stopped": stopped, "stray": stray, "left": left}

    def status(self) -> dict[str, Any]:
        components = {}
        for name in self.components():
            pid = self.proc(name).pid()
            ok = self.healthy(name) if pid is not None else False
            components[name] = {"state": "running" if ok else ("unhealthy" if pid else "stopped"), "pid": pid,
                                "log": str(self.proc(name).log_file)}
        spark = self.spark_state()
        return {"home": str(self.settings.home), "env": self.settings.env,
                "up": all(c["state"] == "running" for c in components.values()), "components": components,
                "s3": {"endpoint": self.s3_url, "buckets": self.buckets()},
                "spark": {"master": self.spark_master, "ui": f"http://{self.host}:{self.conf.spark_ui_port}",
                          "workers": [{"id": w["id"], "cores": w["cores"], "state": w["state"]}
                                      for w in spark.get("workers", [])]},
                "ray": {"address": self.ray_address, "nodes": len(self.ray_nodes())}}
