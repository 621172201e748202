"""`adlake run ads_ingest` on a 200,000-row manifest through Airflow: wall time, peak memory, reconciliation.

The manifest (``synth.generate_metadata_manifest``: skewed products, duplicates, contract violations)
points at a loopback server that serves three small real videos, so every selected ad is downloaded,
probed and settled for real. Peak memory is the largest summed RSS of the ``adlake run`` process tree
(Airflow, the Spark JVM, the crawl tasks), sampled every 0.2 s.

Baseline, measured in the same run on the same rows: Spark reading the manifest and writing it back
(the filter's floor), plus plain concurrent GETs of every URL the crawl fetched, into memory, at the
crawl's total concurrency (the crawl's floor: no store, no probe, no tables).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

DAY = "2026-11-01"


def _videos(folder: Path) -> list[bytes]:
    out = []
    for i, size in enumerate(("160x90", "192x108", "128x72")):
        path = folder / f"v{i}.mp4"
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=s={size}:d=2:r=12",
                        "-f", "lavfi", "-i", f"sine=frequency={300 + 100 * i}:duration=2", "-c:v", "libx264",
                        "-preset", "ultrafast", "-c:a", "aac", "-shortest", str(path)], check=True)
        out.append(path.read_bytes())
    return out


def _server(body_of: Callable[[str], bytes]) -> ThreadingHTTPServer:
    """A loopback server answering every GET with ``body_of(path)``."""
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            body = body_of(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.request_queue_size = 512
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _tree_rss(pid: int) -> int:
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def _run_measured(cmd: list[str], env: dict) -> tuple[subprocess.CompletedProcess, float, int]:
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak, done = 0, threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss(proc.pid))
            time.sleep(0.2)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    seconds = time.perf_counter() - t0
    done.set()
    sampler.join()
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err), seconds, peak


async def _plain_gets(urls: list[str], concurrency: int) -> int:
    import httpx

    sem, total = asyncio.Semaphore(concurrency), 0
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=concurrency), trust_env=False) as client:
        async def one(url: str) -> None:
            nonlocal total
            async with sem:
                total += len((await client.get(url)).content)
        await asyncio.gather(*(one(u) for u in urls))
    return total


def run(rows: int | None = None) -> None:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from adlake.config import get_settings
    from adlake.synth import generate_metadata_manifest

    rows = rows or int(os.environ.get("ADLAKE_BENCH_INGEST_ROWS", "200000"))
    with tempfile.TemporaryDirectory(prefix="adlake-bench-ingest-") as tmp:
        tmp_path = Path(tmp)
        home = tmp_path / "home"
        env = {**os.environ, "ADLAKE_HOME": str(home)}
        os.environ["ADLAKE_HOME"] = str(home)
        get_settings.cache_clear()
        settings = get_settings()
        bodies = _videos(tmp_path)
        server = _server(lambda path: bodies[zlib.crc32(path.encode()) % len(bodies)])
        base = f"http://127.0.0.1:{server.server_address[1]}"
        manifest = tmp_path / "manifest.parquet"
        info = generate_metadata_manifest(manifest, rows=rows, seed=3)
        table = pq.read_table(manifest)
        urls = pc.replace_substring(table["url"], "https://cdn.example.com", base)
        pq.write_table(table.set_column(table.schema.get_field_index("url"), "url", urls), manifest)
        print(f"\n== ads_ingest through Airflow on {rows:,} manifest rows ({os.cpu_count()} cores, "
              f"{settings.spark.master}); {info['products']:,} products, videos served from {base}")

        from adlake.spark import spark_session

        spark = spark_session(settings)
        spark.range(10).count()
        t0 = time.perf_counter()
        spark.read.parquet(str(manifest)).write.mode("overwrite").parquet(str(tmp_path / "copy"))
        spark_floor = time.perf_counter() - t0
        spark.stop()

        cmd = [sys.executable, "-m", "adlake", "run", "ads_ingest", "--param", f"manifest={manifest}",
               "--param", f"crawl_date={DAY}", "--json"]
        res, seconds, peak = _run_measured(cmd, env)
        if res.returncode:
            print(f"adlake run ads_ingest failed ({res.returncode}) after {seconds:.0f} s:\n{res.stderr[-3000:]}")
            server.shutdown()
            return
        outcome = json.loads(res.stdout)
        rec = outcome["tasks"][-1]["output"]["reconciliation"]
        shards = sum(1 for t in outcome["tasks"] if t["task_id"] == "crawl_shard")

        from adlake.lake import Lake
        from adlake.provenance import RunContext
        from schemas.registry import ADS

        lake = Lake(RunContext.create("bench", settings=settings))
        ads = lake.read(ADS, columns=["source_uri", "status", "reason"]).to_pylist()
        fetched = sorted({a["source_uri"] for a in ads if a["status"] == "selected"})
        crawl_conf = settings.ingest.crawl
        concurrency = min(crawl_conf.pool_slots, shards) * crawl_conf.per_host
        t0 = time.perf_counter()
        got = asyncio.run(_plain_gets(fetched, concurrency))
        get_floor = time.perf_counter() - t0
        server.shutdown()

        floor = spark_floor + get_floor
        print(f"  adlake run ads_ingest   {seconds:8.1f} s  peak RSS {peak / 2**30:5.2f} GiB  "
              f"({rows / seconds:,.0f} manifest rows/s, {shards} crawl shards)")
        print(f"  baseline                {floor:8.1f} s  = Spark read+write {spark_floor:.1f} s + {len(fetched):,} "
              f"plain GETs ({got / 2**20:,.0f} MiB, {concurrency} at once) {get_floor:.1f} s")
        print(f"  ratio                   {seconds / floor:8.1f}x baseline")
        print(f"  reconciliation          balanced={rec['balanced']}  manifest {rec['manifest_rows']:,} = "
              f"quarantined at landing {rec['manifest_quarantined']:,} + selected {rec['selected']:,} + "
              f"filtered {rec['filtered']:,} + quarantined in the crawl {rec['crawl_quarantined']:,}; "
              f"{rec['videos']} distinct videos")
        print(f"  by reason {rec['by_reason']}  by error class {rec['by_error_class']}")


if __name__ == "__main__":
    run()
