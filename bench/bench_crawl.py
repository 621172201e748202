"""The crawl at scale: 10,000 distinct small videos served from 127.0.0.1 through `adlake run ads_ingest`
(the Spark filter, the planner, the mapped crawl shards that download, probe and store, the finalize), and
what the measured rate predicts for a 1.57M-ad crawl.

Every URL serves its own bytes (one real 2 s MP4 followed by a ``free`` box holding the ad's number, which
players and ffprobe skip), so every ad is a distinct download, a distinct probe and a distinct blob.

Baselines, measured in the same run: plain concurrent GETs of the same URLs into memory at the crawl's
concurrency (the download floor) and the crawl's admission check (``ffprobe`` and a packet read) of
the same file one after another on one core (the probe floor).
video2dataset's published WebVid figure, 14.4 downloads per second per core, is quoted beside them (from
its own 96-core benchmark; it is not measured here).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import struct
import sys
import tempfile
import time
from pathlib import Path

from bench.bench_ingest import _plain_gets, _run_measured, _server, _videos

DAY = "2026-11-01"
VIDEO2DATASET_PER_CORE = 14.4  # downloads/s per core, video2dataset's WebVid benchmark (its README)
ADS_1_57M = 1_570_000


def _body(base: bytes, i: int) -> bytes:
    payload = f"adlake-bench-{i:08d}".encode()
    return base + struct.pack(">I4s", 8 + len(payload), b"free") + payload


def run(videos: int | None = None) -> None:
    from adlake.config import get_settings
    from adlake.ingest.crawl import admission, shard_count
    from adlake.synth import write_manifest

    n = videos or int(os.environ.get("ADLAKE_BENCH_CRAWL_VIDEOS", "10000"))
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="adlake-bench-crawl-") as tmp:
        tmp_path = Path(tmp)
        os.environ["ADLAKE_HOME"] = str(tmp_path / "home")
        get_settings.cache_clear()
        conf = get_settings().ingest.crawl
        base_video = _videos(tmp_path)[0]
        server = _server(lambda path: _body(base_video, int(path.rsplit("/", 1)[1].split(".")[0])))
        url = f"http://127.0.0.1:{server.server_address[1]}"
        rows = [{"ad_id": f"ad{i:06d}", "url": f"{url}/v/{i}.mp4", "product_id": f"p{i}", "product_name": "P",
                 "selling_points": ["fast"], "industry": "retail", "advertiser_id": f"adv{i % 97}", "title": "t",
                 "play_count": 1_000_000, "like_count": 10, "published_at": None, "duration_s": 2.0}
                for i in range(n)]
        manifest = write_manifest(rows, tmp_path / "manifest.parquet")
        print(f"\n== the crawl at scale: {n:,} distinct videos of {len(base_video) / 1024:.0f} KiB through "
              f"`adlake run ads_ingest` ({cores} cores; shard_size {conf.shard_size}, max_shards {conf.max_shards}, "
              f"concurrency {conf.concurrency} per shard)")
        env = {**os.environ, "ADLAKE_HOME": str(tmp_path / "home")}
        res, seconds, peak = _run_measured([sys.executable, "-m", "adlake", "run", "ads_ingest", "--param",
                                            f"manifest={manifest}", "--param", f"crawl_date={DAY}", "--json"], env)
        if res.returncode:
            print(f"  ads_ingest FAILED (exit {res.returncode}): {res.stderr[-2000:]}")
            return
        tasks = json.loads(res.stdout)["tasks"]
        shards = [t["output"] for t in tasks if t["task_id"] == "crawl_shard"]
        crawl_s = sum(s["seconds"] for s in shards)
        fetched = sum(s["downloaded"] for s in shards)
        rec = next(t for t in tasks if t["task_id"] == "finalize")["output"]["reconciliation"]
        per_core = fetched / crawl_s / cores
        print(f"  whole DAG {seconds:.0f} s, peak RSS {peak / 2**30:.2f} GiB; reconciliation balanced: "
              f"{rec['balanced']} ({rec['selected']:,} selected)")
        print(f"  crawl: {len(shards)} shards, {fetched:,} downloaded + probed + stored in {crawl_s:.0f} s of shard "
              f"time: {fetched / crawl_s:.1f}/s, {per_core:.1f}/s per core")

        urls = [r["url"] for r in rows]
        t0 = time.perf_counter()
        asyncio.run(_plain_gets(urls, conf.concurrency))
        gets = n / (time.perf_counter() - t0)
        sample = tmp_path / "probe.mp4"
        sample.write_bytes(_body(base_video, 1))
        admit = admission(get_settings())  # the crawl's own check: ffprobe, then a packet read (probe.check_packets)
        checks, t0 = 200, time.perf_counter()
        for _ in range(checks):
            admit(sample)
        admit_rate = checks / (time.perf_counter() - t0)
        print(f"  floors in this run: plain GETs {gets:.0f}/s ({gets / cores:.0f}/s per core); the admission check "
              f"alone (ffprobe + packet check, one file after another) {admit_rate:.1f}/s on one core")
        print(f"  the crawl per core is {per_core / admit_rate:.2f}x the admission floor and "
              f"{per_core / (gets / cores):.3f}x the GET floor. video2dataset quotes {VIDEO2DATASET_PER_CORE}/s per core for downloads without a probe "
              f"(its benchmark, not measured here): {per_core / VIDEO2DATASET_PER_CORE:.2f}x of it")

        planned = shard_count(ADS_1_57M, conf)
        per_shard = math.ceil(ADS_1_57M / planned)
        core_h = ADS_1_57M / per_core / 3600
        print(f"  a 1.57M-ad day: the planner makes {planned:,} shards of up to {per_shard:,} ads; at the measured "
              f"{per_core:.1f}/s per core that is {per_shard / per_core / 60:.0f} min per shard on one core and "
              f"{core_h:.0f} core-hours in all: {core_h / 16:.1f} h on one 16-core node, "
              f"{core_h / (16 * 8):.1f} h on 8, if the media store and the network keep up")
