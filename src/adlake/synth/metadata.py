"""Metadata-only manifests at crawl scale (VC-LLM crawled 1.57M ads of 389K products), no media."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from adlake.synth.corpus import MANIFEST_SCHEMA
from adlake.synth.words import ADJECTIVES, INDUSTRIES, NOUNS, SELLING_POINTS


def generate_metadata_manifest(out: Path, rows: int = 1_570_000, seed: int = 7, products: int | None = None,
                               bad_fraction: float = 0.002, duplicate_fraction: float = 0.01) -> dict:
    """A Parquet manifest of ``rows`` ads with a skewed product distribution and known flaws.

    About ``bad_fraction`` of rows break the contract (missing product id, unsupported scheme) and
    ``duplicate_fraction`` repeat an earlier URL, so filtering and validation have something to find.
    """
    rng = np.random.default_rng(seed)
    products = products or max(1, round(rows * 389_000 / 1_570_000))
    # Zipf-like: a few products have many ads, most have one or two.
    product_idx = np.minimum(rng.zipf(1.6, rows) - 1, products - 1)
    product_idx = (product_idx * 7919 + rng.integers(0, products, rows) * (product_idx == 0)) % products
    ad_ids = pa.array([f"m{seed}_{i:08d}" for i in range(rows)])
    video_idx = np.arange(rows)
    dup = rng.random(rows) < duplicate_fraction
    video_idx[dup] = rng.integers(0, rows, int(dup.sum()))
    urls = np.array([f"https://cdn.example.com/v/{v:09d}.mp4" for v in video_idx], dtype=object)
    bad = rng.random(rows) < bad_fraction
    bad_scheme = bad & (rng.random(rows) < 0.5)
    urls[bad_scheme] = np.char.replace(urls[bad_scheme].astype(str), "https://", "ftp://")
    pid = np.array([f"prod{p:07d}" for p in product_idx], dtype=object)
    pid[bad & ~bad_scheme] = None
    names = np.array([f"{ADJECTIVES[p % len(ADJECTIVES)]} {NOUNS[(p // len(ADJECTIVES)) % len(NOUNS)]}"
                      for p in range(min(products, len(ADJECTIVES) * len(NOUNS)))], dtype=object)
    plays = rng.lognormal(9, 2.0, rows).astype(np.int64)
    points_idx = rng.integers(0, len(SELLING_POINTS), (rows, 2))
    points = pa.array([[SELLING_POINTS[a], SELLING_POINTS[b]] for a, b in points_idx], pa.list_(pa.string()))
    duration = rng.gamma(4.0, 9.0, rows)
    duration[rng.random(rows) < 0.3] = np.nan  # unknown for a third of the crawl
    days = rng.integers(0, 300, rows)
    published = (np.datetime64("2026-01-01T00:00:00") + days.astype("timedelta64[D]")).astype(str)
    table = pa.table({
        "ad_id": ad_ids, "url": pa.array(urls, pa.string()), "product_id": pa.array(pid, pa.string()),
        "product_name": pa.array(names[product_idx % len(names)], pa.string()), "selling_points": points,
        "industry": pa.array(np.array(INDUSTRIES, dtype=object)[product_idx % len(INDUSTRIES)], pa.string()),
        "advertiser_id": pa.array([f"adv{p % 20_000:05d}" for p in product_idx], pa.string()),
        "title": pa.array(np.full(rows, "ad", dtype=object), pa.string()),
        "play_count": pa.array(plays), "like_count": pa.array(plays // 40),
        "published_at": pa.array([p + "Z" for p in published], pa.string()),
        "duration_s": pa.array(duration, pa.float64(), from_pandas=True),
    }, schema=MANIFEST_SCHEMA)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out, row_group_size=256_000)
    return {"manifest": str(out), "rows": rows, "products": int(len(np.unique(product_idx))),
            "bad_rows": int(bad.sum()), "duplicate_urls": int(dup.sum())}
