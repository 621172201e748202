"""Building, tuning and measuring one FAISS inner-product index over L2-normalised vectors.

Pure numpy and FAISS: the index_refresh job and the benchmark call the same functions. FAISS ids are
row positions (0..n-1); the caller keeps the row → string id table beside the index.

- Below ``exact_below`` vectors: an exact ``IndexFlatIP``.
- From there on: ``IVF<nlist>,<codes>`` (inner product). The coarse quantizer is trained on a sample of
  ``train_points_per_list × nlist`` vectors; the sizes listed are tried in order until some nprobe ≤
  ``nprobe_max`` reaches ``target_recall_at_10`` on tuning queries, and nprobe is the smallest power of
  two that does. Reported recall comes from a second, disjoint set of queries.
- A refresh re-adds vectors into an already-trained index (``reset`` keeps the quantizer and the codes'
  training) unless the vectors have drifted away from the coarse cells.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


@dataclass
class Queries:
    """Two disjoint held-out query sets (rows of the indexed matrix), and each one's exact neighbours."""

    tune: np.ndarray
    report: np.ndarray
    tune_exact: np.ndarray  # row positions, the query itself excluded
    report_exact: np.ndarray
    exact_qps: float


@dataclass
class Build:
    index: Any
    kind: str  # "flat" or "ivf"
    factory: str
    nlist: int | None = None
    nprobe: int | None = None
    train_size: int | None = None
    train_s: float = 0.0
    add_s: float = 0.0
    trained_at: float | None = None  # epoch seconds of the coarse quantizer's training
    cell_similarity: float | None = None  # mean best-cell inner product of the training sample
    tried: list[dict[str, Any]] = field(default_factory=list)

    def params(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("index")
        return out


def set_threads(threads: int | None) -> None:
    import faiss

    if threads:
        faiss.omp_set_num_threads(threads)


def nlist_for(n: int, per_sqrt_n: float) -> int:
    """Coarse cells ≈ per_sqrt_n × √n as a power of two, at least 16 and never more than n / 39."""
    target = per_sqrt_n * math.sqrt(max(n, 1))
    nlist = 2 ** max(4, round(math.log2(target)))
    while nlist > 16 and nlist * 39 > n:
        nlist //= 2
    return nlist


def exact_neighbours(x: np.ndarray, rows: np.ndarray, k: int, flat: Any = None) -> tuple[np.ndarray, float]:
    """Exact top-k (inner product) of x[rows] among x, each query's own row excluded; and queries per second."""
    import faiss

    if flat is None:
        flat = faiss.IndexFlatIP(x.shape[1])
        flat.add(x)
    t0 = time.perf_counter()
    _, found = flat.search(x[rows], k + 1)
    qps = len(rows) / max(time.perf_counter() - t0, 1e-9)
    return drop_self(found, rows, k), qps


def drop_self(found: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """Top-k without the query's own row (searches ask for k + 1)."""
    out = np.full((len(rows), k), -1, dtype=np.int64)
    for i, (hits, own) in enumerate(zip(found, rows, strict=True)):
        kept = hits[(hits != own) & (hits >= 0)][:k]
        out[i, : len(kept)] = kept
    return out


def held_out_queries(x: np.ndarray, count: int, seed: int, exclude: np.ndarray | None = None,
                     k: int = 10) -> Queries:
    """Two disjoint seeded query sets of up to ``count`` rows each, outside ``exclude`` (a training sample)."""
    rng = np.random.default_rng(seed + 1)
    pool = np.arange(len(x))
    if exclude is not None and len(exclude) < len(x):
        pool = np.setdiff1d(pool, exclude)
    pool = rng.permutation(pool)
    per_set = max(1, min(count, len(pool) // 2))
    tune, report = np.sort(pool[:per_set]), np.sort(pool[per_set: 2 * per_set])
    if len(report) == 0:
        report = tune
    import faiss

    flat = faiss.IndexFlatIP(x.shape[1])
    flat.add(x)
    tune_exact, _ = exact_neighbours(x, tune, k, flat)
    report_exact, qps = exact_neighbours(x, report, k, flat)
    return Queries(tune, report, tune_exact, report_exact, qps)


def recall(found: np.ndarray, exact: np.ndarray, k: int) -> float:
    """Share of the exact top-k found in the approximate top-k (recall@1: the same first neighbour)."""
    if len(found) == 0:
        return float("nan")
    hits = [len(set(f[:k]) & set(e[:k]) - {-1}) / max(1, len(set(e[:k]) - {-1})) for f, e in zip(found, exact,
                                                                                             strict=True)]
    return float(np.mean(hits))


def search_rows(index: Any, x: np.ndarray, rows: np.ndarray, k: int, nprobe: int | None = None
                ) -> tuple[np.ndarray, float]:
    """Top-k of x[rows] (own row excluded) through the index; and queries per second."""
    if nprobe is not None:
        index.nprobe = nprobe
    t0 = time.perf_counter()
    _, found = index.search(x[rows], k + 1)
    qps = len(rows) / max(time.perf_counter() - t0, 1e-9)
    return drop_self(found, rows, k), qps


def _train_ivf(x: np.ndarray, nlist: int, codes: str, sample: np.ndarray, kmeans_iters: int, seed: int) -> Any:
    import faiss

    index = faiss.index_factory(x.shape[1], f"IVF{nlist},{codes}", faiss.METRIC_INNER_PRODUCT)
    ivf = faiss.extract_index_ivf(index)
    ivf.cp.niter = kmeans_iters
    ivf.cp.seed = seed
    ivf.cp.max_points_per_centroid = max(256, math.ceil(len(sample) / nlist))  # use the whole sample
    index.train(x[sample])
    return index


def cell_similarity(index: Any, x: np.ndarray, limit: int = 20_000, seed: int = 0) -> float:
    """Mean inner product of (a sample of) the vectors with their best coarse cell: falls when data drifts."""
    import faiss

    rows = np.arange(len(x)) if len(x) <= limit else np.random.default_rng(seed).choice(len(x), limit, replace=False)
    quantizer = faiss.extract_index_ivf(index).quantizer
    sims, _ = quantizer.search(x[np.sort(rows)], 1)
    return round(float(sims.mean()), 5)


def tune_nprobe(index: Any, x: np.ndarray, q: Queries, target: float, nprobe_max: int, k: int = 10
                ) -> tuple[int, float]:
    """The smallest power-of-two nprobe reaching ``target`` recall@k on the tuning queries (else nprobe_max)."""
    import faiss

    nlist = faiss.extract_index_ivf(index).nlist
    nprobe, best = 1, 0.0
    while True:
        found, _ = search_rows(index, x, q.tune, k, nprobe)
        best = recall(found, q.tune_exact, k)
        if best >= target or nprobe >= min(nprobe_max, nlist):
            return nprobe, best
        nprobe = min(nprobe * 2, nprobe_max, nlist)


def build_index(x: np.ndarray, conf, q_count: int | None = None) -> tuple[Build, Queries]:
    """A new index for x per the configuration (``adlake.config.IndexConf``), with its held-out queries."""
    import faiss

    set_threads(conf.threads)
    n, d = x.shape
    k = 10
    if n < max(conf.exact_below, 1) or n < 16 * 39:
        t0 = time.perf_counter()
        index = faiss.IndexFlatIP(d)
        index.add(x)
        build = Build(index, "flat", "Flat", add_s=round(time.perf_counter() - t0, 3))
        return build, held_out_queries(x, q_count or conf.eval_queries, conf.seed, k=k)
    nlist = nlist_for(n, conf.nlist_per_sqrt_n)
    rng = np.random.default_rng(conf.seed)
    order = rng.permutation(n)
    biggest = min(n, max(conf.train_points_per_list) * nlist)
    # the queries stay outside every training sample tried
    queries = held_out_queries(x, q_count or conf.eval_queries, conf.seed, exclude=order[:biggest], k=k)
    build = None
    tried = []
    for per_list in conf.train_points_per_list:
        size = min(n, per_list * nlist)
        sample = np.sort(order[:size])
        t0 = time.perf_counter()
        index = _train_ivf(x, nlist, conf.ivf_codes, sample, conf.kmeans_iters, conf.seed)
        train_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        index.add(x)
        add_s = time.perf_counter() - t0
        if conf.nprobe:
            nprobe, tuned = conf.nprobe, recall(search_rows(index, x, queries.tune, k, conf.nprobe)[0],
                                                queries.tune_exact, k)
        else:
            nprobe, tuned = tune_nprobe(index, x, queries, conf.target_recall_at_10, conf.nprobe_max, k)
        tried.append({"train_size": size, "nprobe": nprobe, "tune_recall_at_10": round(tuned, 4),
                      "train_s": round(train_s, 2), "add_s": round(add_s, 2)})
        faiss.extract_index_ivf(index).nprobe = nprobe
        build = Build(index, "ivf", f"IVF{nlist},{conf.ivf_codes}", nlist, nprobe, size, round(train_s, 3),
                      round(add_s, 3), time.time(), cell_similarity(index, x[sample], seed=conf.seed), tried)
        if tuned >= conf.target_recall_at_10 or conf.nprobe or size >= n:
            break
    return build, queries


def refill(index: Any, x: np.ndarray, conf) -> tuple[Any, float, float]:
    """The trained index emptied and filled with x (ids 0..n-1); the add time and the vectors' cell similarity."""
    set_threads(conf.threads)
    index.reset()
    t0 = time.perf_counter()
    index.add(x)
    return index, round(time.perf_counter() - t0, 3), cell_similarity(index, x, seed=conf.seed)


def measure(index: Any, x: np.ndarray, q: Queries, k: int = 10) -> dict[str, float]:
    """recall@1 and @10 against exact search on the report queries, and queries per second both ways."""
    found, qps = search_rows(index, x, q.report, k)
    return {"recall_at_1": round(recall(found, q.report_exact, 1), 4),
            "recall_at_10": round(recall(found, q.report_exact, k), 4),
            "qps": round(qps, 1), "exact_qps": round(q.exact_qps, 1),
            "speedup_over_exact": round(qps / q.exact_qps, 2) if q.exact_qps else None,
            "queries": len(q.report)}


def index_bytes(index: Any) -> int:
    import faiss

    return int(faiss.serialize_index(index).nbytes)
