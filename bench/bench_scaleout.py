"""ads_parse on Ray Data (one and two actors per stage) against today's mapped tasks, on the same ads.

Each configuration parses the same synthetic ads into a fresh lake and is timed end to end (staging
included; the commit is the same single writer for all of them and is left out):

- the baseline: ``parse.engine: airflow``, the mapped tasks of ``ads_parse`` run one after another here,
  each loading WhisperX for its batch of ``parse.batch_size`` videos;
- ``parse.engine: ray`` with one ``Hear`` and one ``See`` actor, then two of each (half a CPU each, so
  that both pools fit on this machine), each actor loading its models once.

It prints seconds per minute of video for each, how many times the ASR model was loaded, and the load time
that saves, measured from one load in the same run and extrapolated to a 1.57M-ad crawl.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from pathlib import Path


def _fresh(home: Path, **env: str):
    from adlake.config import get_settings
    from adlake.lake import Lake
    from adlake.provenance import RunContext

    os.environ["ADLAKE_HOME"] = str(home)
    for key in [k for k in os.environ if k.startswith("ADLAKE__PARSE__")]:
        del os.environ[key]
    os.environ.update(env)
    get_settings.cache_clear()
    return Lake(RunContext.create("bench", run_id="bench-scaleout"))


def run(n: int | None = None, seed: int = 5) -> None:
    from adlake.asr.transcribe import Transcriber
    from adlake.parse.batch import parse_batch, plan_batches
    from adlake.synth import generate
    from adlake.synth.register import register_videos

    n = n or int(os.environ.get("ADLAKE_BENCH_ADS", "16"))
    with tempfile.TemporaryDirectory(prefix="adlake-bench-scaleout-") as tmp:
        corpus = Path(tmp) / "corpus"
        generate(corpus, n=n, seed=seed)
        truth = json.loads((corpus / "ground_truth.json").read_text())["ads"]
        files = sorted({str(corpus / t["file"]): t["duration_s"] for t in truth.values() if t["kind"] != "bad"}.items())
        minutes = sum(d for _, d in files) / 60

        lake = _fresh(Path(tmp) / "home-load")
        t0 = time.perf_counter()
        Transcriber(lake.settings.parse.asr)
        load_s = time.perf_counter() - t0

        rows = []
        configs = [("mapped tasks (today)", {}),
                   ("Ray, 1 actor per stage", {"ADLAKE__PARSE__ENGINE": "ray", "ADLAKE__PARSE__RAY__HEAR_ACTORS": "1",
                                               "ADLAKE__PARSE__RAY__SEE_ACTORS": "1",
                                               "ADLAKE__PARSE__RAY__CPUS_PER_ACTOR": "0.5"}),
                   ("Ray, 2 actors per stage", {"ADLAKE__PARSE__ENGINE": "ray", "ADLAKE__PARSE__RAY__HEAR_ACTORS": "2",
                                                "ADLAKE__PARSE__RAY__SEE_ACTORS": "2",
                                                "ADLAKE__PARSE__RAY__CPUS_PER_ACTOR": "0.5"})]
        for i, (label, env) in enumerate(configs):
            lake = _fresh(Path(tmp) / f"home-{i}", **env)
            register_videos(lake, [f for f, _ in files])
            plan = plan_batches(lake)
            t0 = time.perf_counter()
            results = [parse_batch(lake, b["batch"], b["batches"]) for b in plan]
            seconds = time.perf_counter() - t0
            parsed = sum(r.parsed + r.filtered for r in results)
            loads = len(plan) if "ENGINE" not in env else int(env["ADLAKE__PARSE__RAY__HEAR_ACTORS"])
            rows.append((label, seconds, parsed, loads))
            if "ENGINE" in env:
                import ray

                ray.shutdown()

        base = rows[0][1]
        batch = _fresh(Path(tmp) / "home-load").settings.parse.batch_size
        print(f"\n== ads_parse: Ray Data actor pools vs mapped tasks ({len(files)} videos, {minutes * 60:.0f} s of "
              f"video, {os.cpu_count()} cores; one WhisperX load {load_s:.1f} s)")
        for label, seconds, parsed, loads in rows:
            print(f"  {label:<26} {seconds:7.1f} s  {seconds / minutes:6.2f} s per minute of video  "
                  f"{base / seconds:5.2f}x the baseline's speed  ASR loads {loads}  ({parsed} videos)")
        ads = 1_570_000
        print(f"  a 1.57M-ad crawl: mapped tasks load the model {math.ceil(ads / batch):,} times "
              f"({math.ceil(ads / batch) * load_s / 3600:,.0f} h of loading at {load_s:.1f} s); an actor pool "
              f"loads it once per actor (e.g. 64 actors: {64 * load_s / 60:.1f} min)")
