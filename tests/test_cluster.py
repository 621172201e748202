"""The local cluster (`adlake cluster up`, ADLAKE_ENV=cluster.local) on free ports: S3 (moto's server), Spark
standalone with two workers, a two-node Ray cluster; work lands on every node, the lake lives on S3 and
concurrent writers lose no commit; `down` leaves no process behind."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.cluster]


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def free_block(size: int) -> int:
    """A port with ``size`` free ports above it (Ray derives its node ports from its head port)."""
    for _ in range(50):
        base = random.randrange(20000, 60000 - size)
        if all(_free(p) for p in (base, base + 1, *range(base + 10, base + 40), *range(base + 1000, base + size))):
            return base
    raise RuntimeError("no free block of ports")


class LocalCluster:
    def __init__(self) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="adlake-cluster-"))
        self.env = {**os.environ, "ADLAKE_ENV": "cluster.local", "ADLAKE_HOME": str(self.home),
                    "ADLAKE_S3_PORT": str(free_block(2)), "ADLAKE_SPARK_PORT": str(free_block(2)),
                    "ADLAKE_RAY_PORT": str(free_block(1400)), "ADLAKE__CLUSTER__SPARK_UI_PORT": str(free_block(4)),
                    "PYTHONPATH": str(ROOT)}

    def adlake(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "adlake", *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout, cwd=ROOT)

    def python(self, code: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", code], env=self.env, capture_output=True, text=True,
                              timeout=timeout, cwd=ROOT)


@pytest.fixture(scope="module")
def cluster():
    c = LocalCluster()
    up = c.adlake("cluster", "up", "--json")
    try:
        assert up.returncode == 0, up.stderr[-3000:]
        c.status = json.loads(up.stdout)
        yield c
    finally:
        down = c.adlake("cluster", "down", "--json")
        assert down.returncode == 0, down.stderr[-3000:]
        assert json.loads(down.stdout)["left"] == []
        from adlake.service.procs import leftovers

        assert leftovers(c.home, marker="ADLAKE_CLUSTER_HOME") == []


def test_up_starts_every_engine_once(cluster: LocalCluster) -> None:
    st = cluster.status
    assert st["up"] and set(st["components"]) == {"s3", "spark-master", "spark-worker-1", "spark-worker-2",
                                                  "ray-head", "ray-node-2"}
    assert [w["state"] for w in st["spark"]["workers"]] == ["ALIVE", "ALIVE"]
    assert st["s3"]["buckets"] == ["adlake"]
    again = cluster.adlake("cluster", "up", "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["started"] == []
    token = cluster.home / "cluster" / "ray_auth_token"
    assert token.stat().st_mode & 0o077 == 0  # Ray runs with token authentication; the token is private


def test_spark_and_ray_work_lands_on_every_node(cluster: LocalCluster) -> None:
    res = cluster.python("""
import json, os
from adlake.config import get_settings
from adlake.spark import spark_session
from adlake.embed.job import ray_init
s = get_settings()
spark = spark_session(s)
dirs = spark.sparkContext.parallelize(range(16), 16).map(lambda i: os.getcwd()).collect()
spark.stop()
ray_init(s)
import ray
@ray.remote(num_cpus=1)
def node():
    return ray.get_runtime_context().get_node_id()
nodes = ray.get([node.options(resources={f"adlake_node_{i}": 0.01}).remote() for i in (1, 2)])
print(json.dumps({"spark": sorted({d.split("/cluster/spark/")[1].split("/")[0] for d in dirs}),
                  "ray_nodes": len(ray.nodes()), "ray_placed": len(set(nodes))}))
os._exit(0)
""")
    assert res.returncode == 0, res.stderr[-3000:]
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got == {"spark": ["spark-worker-1", "spark-worker-2"], "ray_nodes": 2, "ray_placed": 2}


WRITER = """
import os, sys
from adlake.lake import Lake, Quarantine, QuarantineRecord
from adlake.provenance import RunContext
w, n = sys.argv[1], int(sys.argv[2])
lake = Lake(RunContext.create("writer", run_id=f"writer-{w}"))
for i in range(n):
    Quarantine(lake).add([QuarantineRecord("test.writers", f"{w}-{i}", "x", "m", "p")])
sys.stdout.flush()
os._exit(0)  # delta-rs' runtime threads may abort a normal interpreter exit
"""


def test_concurrent_writers_on_s3_lose_no_commit(cluster: LocalCluster) -> None:
    writers, each = 3, 6
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, w, str(each)], env=cluster.env, cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for w in "abc"[:writers]]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    res = cluster.python("""
import json, os
from adlake.lake import Lake
from adlake.provenance import RunContext
from schemas.registry import QUARANTINE
lake = Lake(RunContext.create("check"))
t = lake.read(QUARANTINE)
print(json.dumps({"uri": lake.uri(QUARANTINE), "rows": t.num_rows, "keys": len(set(t["entity_key"].to_pylist())),
                  "version": lake.latest_version(QUARANTINE),
                  "ops": [h.get("operation") for h in lake.history(QUARANTINE)]}))
os._exit(0)
""")
    assert res.returncode == 0, res.stderr[-3000:]
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got["uri"].startswith("s3://adlake/")
    # every merge committed once: no lost write, no duplicate; every version is in the log, in order
    assert got["rows"] == got["keys"] == writers * each
    assert got["ops"].count("MERGE") == writers * each, got["ops"]
    assert len(got["ops"]) == got["version"] + 1, got["ops"]


def test_the_media_store_writes_whole_blobs_to_s3(cluster: LocalCluster) -> None:
    res = cluster.python("""
import hashlib, json, os
from adlake.config import get_settings
from adlake.media.store import MediaStore
store = MediaStore(get_settings())
data = os.urandom(300_000)
key = store.put_bytes(data, "videos")
again = store.put_bytes(data, "videos")
print(json.dumps({"root": store.root, "same": key == again, "whole": store.read_bytes(key) == data,
                  "name": key.rsplit("/", 1)[1] == hashlib.sha256(data).hexdigest(), "files": len(store.files())}))
os._exit(0)
""")
    assert res.returncode == 0, res.stderr[-3000:]
    assert json.loads(res.stdout.strip().splitlines()[-1]) == {"root": "s3://adlake/media", "same": True,
                                                              "whole": True, "name": True, "files": 1}
