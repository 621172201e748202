"""Manifest landing and lake writes at crawl scale, against plain pyarrow Parquet I/O of the same rows.

Baseline: read the manifest with pyarrow and write it back as one Parquet file — the least any
landing must do. adlake's landing also validates every row (pandera), quarantines bad rows and
commits a Delta partition; the ratio says what that costs.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq


def _timed(fn):
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def run(rows: int = int(os.environ.get("ADLAKE_BENCH_ROWS", "200000"))) -> None:
    from adlake.config import get_settings
    from adlake.ingest.manifest import land
    from adlake.lake import Lake
    from adlake.provenance import RunContext
    from adlake.synth import generate_metadata_manifest
    from schemas.registry import CRAWL_MANIFEST

    with tempfile.TemporaryDirectory(prefix="adlake-bench-") as tmp:
        os.environ["ADLAKE_HOME"] = str(Path(tmp) / "home")
        get_settings.cache_clear()
        manifest = Path(tmp) / "manifest.parquet"
        gen_s, info = _timed(lambda: generate_metadata_manifest(manifest, rows=rows, seed=1))
        base_s, _ = _timed(lambda: pq.write_table(pq.read_table(manifest), Path(tmp) / "copy.parquet"))
        lake = Lake(RunContext.create("bench", run_id="bench-1"))
        day = dt.date(2026, 11, 1)
        land_s, result = _timed(lambda: land(lake, str(manifest), day))
        again_s, again = _timed(lambda: land(Lake(RunContext.create("bench", run_id="bench-2")), str(manifest), day))
        assert again.skipped_write and lake.count(CRAWL_MANIFEST) == result.landed
    print(f"\n== lake: landing a {rows:,}-row manifest (generated in {gen_s:.1f} s, "
          f"{info['bad_rows']:,} rows break the contract)")
    print(f"baseline pyarrow read+write      {base_s:8.2f} s  {rows / base_s:12,.0f} rows/s")
    print(f"adlake land (validate+commit)    {land_s:8.2f} s  {rows / land_s:12,.0f} rows/s  "
          f"ratio {land_s / base_s:6.1f}x baseline")
    print(f"adlake land again (no-op rerun)  {again_s:8.2f} s  {rows / again_s:12,.0f} rows/s  "
          f"ratio {again_s / base_s:6.1f}x baseline")
    print(f"landed {result.landed:,}, quarantined {result.quarantined:,} {result.by_error_class}")
