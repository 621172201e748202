"""Index benchmark: the index_refresh build at 1M frame-like vectors against exact search in the same run.

The vectors are drawn to resemble 1 fps frame embeddings rather than uniform noise:

- themes (ad categories, looks) are directions around a shared mean, with a decaying spectrum, as
  real embeddings have a few dominant directions;
- each shot is a point near its theme (cosine ≈ 0.6 between shots of one theme);
- each shot holds a geometric number of frames (mean 8), near-duplicates of the shot (cosine ≈ 0.99).

Queries are held-out rows (outside every coarse-quantizer training sample), each excluding itself,
exactly as the job measures. The nightly refresh (re-adding every vector into the trained index) is
timed as well.
"""

from __future__ import annotations

import datetime as dt
import os
import time

import numpy as np


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def frame_like(n: int, dim: int = 512, seed: int = 0, frames_per_shot: float = 8.0,
               shots_per_theme: int = 50) -> np.ndarray:
    """n unit vectors: near-duplicate frames of shots, shots clustered by theme (see the module docstring)."""
    rng = np.random.default_rng(seed)
    spectrum = (1.0 + np.arange(dim)) ** -0.5
    spectrum = (spectrum / np.linalg.norm(spectrum) * np.sqrt(dim)).astype(np.float32)

    def noise(rows: int) -> np.ndarray:
        return _unit(rng.standard_normal((rows, dim), dtype=np.float32) * spectrum)

    lengths = rng.geometric(1.0 / frames_per_shot, size=int(n / frames_per_shot * 1.2) + 16)
    lengths = lengths[: np.searchsorted(np.cumsum(lengths), n) + 1]
    shots = len(lengths)
    themes = max(4, shots // shots_per_theme)
    mean = _unit(rng.standard_normal((1, dim), dtype=np.float32))
    theme_dirs = _unit(0.6 * mean + noise(themes))
    shot_dirs = _unit(theme_dirs[rng.integers(0, themes, shots)] + 0.8 * noise(shots))
    out = np.empty((n, dim), dtype=np.float32)
    shot_of_row = np.repeat(np.arange(shots), lengths)[:n]
    step = 100_000
    for start in range(0, n, step):
        rows = shot_of_row[start: start + step]
        out[start: start + len(rows)] = _unit(shot_dirs[rows] + 0.15 * noise(len(rows)))
    return out


def _flat(x: np.ndarray):
    import faiss

    flat = faiss.IndexFlatIP(x.shape[1])
    flat.add(x)
    return flat


def _single_query_qps(index, x: np.ndarray, rows: np.ndarray) -> float:
    t0 = time.perf_counter()
    for r in rows:
        index.search(x[r: r + 1], 11)
    return len(rows) / (time.perf_counter() - t0)


def run(vectors: int | None = None) -> None:
    import faiss

    from adlake.config import get_settings
    from adlake.index.faiss_index import build_index, index_bytes, measure, refill

    n = vectors or int(os.environ.get("ADLAKE_BENCH_INDEX_VECTORS", "1000000"))
    dim = int(os.environ.get("ADLAKE_BENCH_INDEX_DIM", "512"))
    conf = get_settings().index.model_copy(update={"exact_below": 0, "eval_queries": 500})
    t0 = time.perf_counter()
    x = frame_like(n, dim)
    gen_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    build, queries = build_index(x, conf)
    build_s = time.perf_counter() - t0
    figures = measure(build.index, x, queries)
    single = {name: _single_query_qps(ix, x, queries.report[:count])
              for name, ix, count in (("exact", _flat(x), 20), ("index", build.index, 200))}
    index, refresh_s, similarity = refill(build.index, x, conf)
    after = measure(index, x, queries)
    print(f"\n== index ({n:,} frame-like {dim}-d vectors, {faiss.omp_get_max_threads()} threads) {dt.date.today()}")
    print(f"  vectors: shots of ~8 near-duplicate frames (cos ≈ 0.99), shots clustered by theme; generated in "
          f"{gen_s:.0f} s")
    print(f"  batches of {figures['queries']} queries:")
    print(f"  exact search (IndexFlatIP, baseline)   {figures['exact_qps']:9.1f} queries/s   recall@10 1.000")
    print(f"  {build.factory:<24} nprobe {build.nprobe:<4} {figures['qps']:9.1f} queries/s   recall@10 "
          f"{figures['recall_at_10']:.3f}  recall@1 {figures['recall_at_1']:.3f}  "
          f"ratio {figures['speedup_over_exact']:.0f}x exact")
    print(f"  one query per call: exact {single['exact']:.1f} queries/s, {build.factory} {single['index']:.0f} "
          f"queries/s, ratio {single['index'] / single['exact']:.0f}x")
    print(f"  full build {build_s:.0f} s on {faiss.omp_get_max_threads()} cores (quantizer training "
          f"{build.train_s:.0f} s on {build.train_size:,} vectors, add {build.add_s:.0f} s, tuning queries "
          f"{len(queries.tune)}; tried {build.tried})")
    print(f"  nightly refresh (re-add into the trained quantizer) {refresh_s:.0f} s = "
          f"{refresh_s / (n / 1e6):.0f} s per million vectors; recall@10 after {after['recall_at_10']:.3f}; "
          f"cell similarity {similarity} (trained {build.cell_similarity})")
    print(f"  index size {index_bytes(index) / 2**20:.0f} MiB against {x.nbytes / 2**20:.0f} MiB of float32 vectors")


if __name__ == "__main__":
    run()
