"""The Spark manifest filter at crawl scale (VC-LLM: 1.57M ads), and at a tenth of it.

For each size it prints the filter's time and rows/s next to a baseline measured in the same run on
the same rows: Spark reading the manifest and writing it back as Parquet, with no checks or
decisions. The ratio 1.57M / 157K says how the cost grows with size (10x the rows).
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
import time
from pathlib import Path


def run(sizes: tuple[int, ...] = (157_000, 1_570_000)) -> None:
    from adlake.config import get_settings
    from adlake.ingest.filter import run_filter
    from adlake.lake import Lake
    from adlake.provenance import RunContext
    from adlake.spark import spark_session
    from adlake.synth import generate_metadata_manifest

    rows_env = os.environ.get("ADLAKE_BENCH_ROWS")
    if rows_env:
        sizes = tuple(int(x) for x in rows_env.split(","))
    results = []
    with tempfile.TemporaryDirectory(prefix="adlake-bench-") as tmp:
        os.environ["ADLAKE_HOME"] = str(Path(tmp) / "home")
        get_settings.cache_clear()
        settings = get_settings()
        spark = spark_session(settings)
        spark.range(10).count()  # session start-up is not part of any measurement
        print(f"\n== Spark manifest filter ({settings.spark.master}, {os.cpu_count()} cores)")
        for rows in sizes:
            manifest = Path(tmp) / f"manifest_{rows}.parquet"
            info = generate_metadata_manifest(manifest, rows=rows, seed=1)
            t0 = time.perf_counter()
            spark.read.parquet(str(manifest)).write.mode("overwrite").parquet(str(Path(tmp) / f"copy_{rows}"))
            base_s = time.perf_counter() - t0
            lake = Lake(RunContext.create("bench", run_id=f"bench-{rows}"))
            t0 = time.perf_counter()
            result = run_filter(lake, str(manifest), dt.date(2026, 11, 1) + dt.timedelta(days=len(results)))
            filter_s = time.perf_counter() - t0
            results.append((rows, base_s, filter_s))
            print(f"{rows:>10,} rows  baseline read+write {base_s:7.1f} s ({rows / base_s:>10,.0f} rows/s)  "
                  f"filter {filter_s:7.1f} s ({rows / filter_s:>9,.0f} rows/s)  ratio {filter_s / base_s:5.1f}x baseline")
            print(f"{'':>16}{info['products']:,} products; landed {result.landed:,}, quarantined "
                  f"{result.quarantined:,} {result.by_error_class}; filtered {result.filtered:,} "
                  f"{result.by_reason}; pending {result.pending:,}")
    if len(results) >= 2:
        (r0, b0, f0), (r1, b1, f1) = results[0], results[-1]
        print(f"growth {r1 / r0:.0f}x rows: filter time x{f1 / f0:.1f}, baseline time x{b1 / b0:.1f}")
