"""ads_parse on Ray Data (one and two actors per stage) against today's mapped tasks, on the same ads.

Each configuration parses the same synthetic ads into a fresh lake and is timed end to end (staging
included; the commit is the same single writer for all of them and is left out). Every mapped task and
every configuration runs in a process of its own, as under a scheduler, so each pays its own imports and
model loads:

- the baseline: ``parse.engine: airflow``, one process per mapped batch of ``parse.batch_size`` videos,
  as many at once as there are cores (a LocalExecutor with that parallelism), each loading WhisperX;
- ``parse.engine: ray`` with one ``Hear`` and one ``See`` actor, then two of each (half a CPU each, so
  that both pools fit on this machine), each actor loading its models once; the time includes starting a
  local Ray (reported apart: a cluster has it running already).

It prints seconds per minute of video for each, how many times the ASR model was loaded, and what the
loads cost at 1.57M ads, from one load in a fresh process measured in the same run.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RAY = {"ADLAKE__PARSE__ENGINE": "ray", "ADLAKE__PARSE__RAY__CPUS_PER_ACTOR": "0.5"}


def _child(code: str, home: Path, **env: str) -> dict:
    """Run ``code`` (which prints one JSON line last) in a fresh Python with its own ADLAKE_HOME."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ADLAKE__PARSE__")}
    res = subprocess.run([sys.executable, "-c", code], env={**clean, "ADLAKE_HOME": str(home), **env},
                         cwd=ROOT, capture_output=True, text=True)
    if res.returncode:
        raise RuntimeError(f"a bench process failed: {res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


LOAD = """
import json, os, time
t0 = time.perf_counter()
from adlake.asr.transcribe import Transcriber
from adlake.config import get_settings
Transcriber(get_settings().parse.asr)
print(json.dumps({"seconds": time.perf_counter() - t0}))
os._exit(0)
"""

REGISTER = """
import json, os, sys
from adlake.lake import Lake
from adlake.parse.batch import plan_batches
from adlake.provenance import RunContext
from adlake.synth.register import register_videos
lake = Lake(RunContext.create("bench", run_id="bench-scaleout"))
register_videos(lake, json.loads(os.environ["BENCH_FILES"]))
print(json.dumps({"plan": plan_batches(lake)}))
os._exit(0)
"""

PARSE = """
import json, os, time
t0 = time.perf_counter()
from adlake.lake import Lake
from adlake.parse.batch import parse_batch
from adlake.provenance import RunContext
ray_s = 0.0
if os.environ.get("ADLAKE__PARSE__ENGINE") == "ray":
    from adlake.config import get_settings
    from adlake.ray_session import ray_init
    t_ray = time.perf_counter()
    ray_init(get_settings())
    ray_s = time.perf_counter() - t_ray
lake = Lake(RunContext.create("bench", run_id="bench-scaleout"))
r = parse_batch(lake, int(os.environ["BENCH_BATCH"]), int(os.environ["BENCH_BATCHES"]))
print(json.dumps({"seconds": time.perf_counter() - t0, "ray_start_s": ray_s, "videos": r.parsed + r.filtered}))
os._exit(0)
"""


def _configuration(home: Path, files: list[str], env: dict[str, str], cores: int) -> dict:
    plan = _child(REGISTER, home, BENCH_FILES=json.dumps(files), **env)["plan"]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=cores) as pool:
        done = list(pool.map(lambda b: _child(PARSE, home, BENCH_BATCH=str(b["batch"]),
                                              BENCH_BATCHES=str(b["batches"]), **env), plan))
    return {"seconds": time.perf_counter() - t0, "videos": sum(d["videos"] for d in done),
            "ray_start_s": max(d["ray_start_s"] for d in done), "processes": len(plan)}


def run(n: int | None = None, seed: int = 5) -> None:
    from adlake.config import get_settings
    from adlake.synth import generate

    n = n or int(os.environ.get("ADLAKE_BENCH_ADS", "16"))
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="adlake-bench-scaleout-") as tmp:
        corpus = Path(tmp) / "corpus"
        generate(corpus, n=n, seed=seed)
        truth = json.loads((corpus / "ground_truth.json").read_text())["ads"]
        durations = {str(corpus / t["file"]): t["duration_s"] for t in truth.values() if t["kind"] != "bad"}
        files = sorted(durations)
        minutes = sum(durations.values()) / 60
        load_s = _child(LOAD, Path(tmp) / "home-load")["seconds"]

        configs = [("mapped tasks (today)", {}),
                   ("Ray, 1 actor per stage", {**RAY, "ADLAKE__PARSE__RAY__HEAR_ACTORS": "1",
                                               "ADLAKE__PARSE__RAY__SEE_ACTORS": "1"}),
                   ("Ray, 2 actors per stage", {**RAY, "ADLAKE__PARSE__RAY__HEAR_ACTORS": "2",
                                                "ADLAKE__PARSE__RAY__SEE_ACTORS": "2"})]
        rows = []
        for i, (label, env) in enumerate(configs):
            got = _configuration(Path(tmp) / f"home-{i}", files, env, cores)
            loads = int(env.get("ADLAKE__PARSE__RAY__HEAR_ACTORS", got["processes"]))
            rows.append((label, got, loads))

        base = rows[0][1]["seconds"]
        batch = get_settings().parse.batch_size
        print(f"\n== ads_parse: Ray Data actor pools vs mapped tasks ({len(files)} videos, {minutes * 60:.0f} s of "
              f"video, {cores} cores; loading WhisperX in a fresh process, imports included: {load_s:.1f} s)")
        for label, got, loads in rows:
            ray = f"; Ray start {got['ray_start_s']:.1f} s of it" if got["ray_start_s"] else ""
            print(f"  {label:<26} {got['seconds']:7.1f} s  {got['seconds'] / minutes:6.2f} s per minute of video  "
                  f"{base / got['seconds']:5.2f}x the baseline's speed  ASR loads {loads}  "
                  f"({got['videos']} videos{ray})")
        if any(got["videos"] != len(files) for _, got, _ in rows):
            print("  WARNING: a configuration did not parse every video; its figures are not comparable")
        ads = 1_570_000
        tasks = math.ceil(ads / batch)
        print(f"  a 1.57M-ad crawl: mapped tasks of {batch} videos load the model {tasks:,} times "
              f"({tasks * load_s / 3600:,.0f} core-hours of loading at {load_s:.1f} s); an actor pool loads it "
              f"once per actor (e.g. 64 actors: {64 * load_s / 3600:.1f} core-hours)")
