"""Scoring predictions on the VC-LLM benchmark (``gold.benchmark``), beside baselines in the same report.

A predictions file is JSONL, one line per benchmark sample::

    {"sample_id": "vc_llm:ad00012", "clips": ["C3", "C1"], "scripts": ["…", "…"], "subtitles": [["…"], ["…"]]}

``clips`` names candidates by label (``C3``) or clip id, in playing order; ``scripts`` and ``subtitles``
(one list per predicted clip) are optional, and their metrics are reported as not computed without them.
Baselines: random selection and order (seeded), and an embedding baseline that keeps the candidates
closest to the candidate set's largest cluster and orders them greedily by how similar one clip's last
frame is to the next clip's first frame.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from adlake.evaluate import metrics as M


@dataclass
class BenchmarkSample:
    sample_id: str
    k: int
    candidates: list[dict[str, Any]]  # label, clip_id, duration_s
    truth: list[dict[str, Any]]  # clip_id, script, subtitles, duration_s, in order

    @property
    def truth_ids(self) -> list[str]:
        return [t["clip_id"] for t in self.truth]

    def resolve(self, names: list[str]) -> list[str]:
        """Labels or clip ids → clip ids; unknown names stay as given (they count as wrong picks)."""
        by_label = {c["label"]: c["clip_id"] for c in self.candidates}
        return [by_label.get(n, n) for n in names]


def load_benchmark(rows: list[dict[str, Any]]) -> list[BenchmarkSample]:
    return [BenchmarkSample(r["sample_id"], int(r["k"]), json.loads(r["candidates"]), json.loads(r["truth"]))
            for r in sorted(rows, key=lambda r: r["sample_id"])]


def read_predictions(path: Path) -> dict[str, dict[str, Any]]:
    out = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            out[str(record["sample_id"])] = record
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ValueError(f"{path}:{n}: not a prediction record ({e})") from None
    return out


def score_sample(sample: BenchmarkSample, prediction: dict[str, Any] | None, words_per_second: float
                 ) -> dict[str, Any]:
    """Every metric of one sample; a missing prediction scores as an empty one."""
    predicted = sample.resolve(list((prediction or {}).get("clips") or []))
    truth = sample.truth_ids
    prf = M.shot_selection_prf(predicted, truth)
    row: dict[str, Any] = {
        "sample_id": sample.sample_id, "predicted": predicted, "missing": prediction is None,
        "SRA": M.sequence_remix_accuracy(predicted, truth), "CSA": M.clip_selection_accuracy(predicted, truth),
        "CRA": M.clip_order_accuracy(predicted, truth), "kendall_tau": M.kendall_tau(predicted, truth),
        "pairwise_order": M.pairwise_order_accuracy(predicted, truth),
        "shot_precision": prf["precision"], "shot_recall": prf["recall"], "shot_f1": prf["f1"]}
    scripts = (prediction or {}).get("scripts")
    duration = {c["clip_id"]: c["duration_s"] for c in sample.candidates}
    if scripts:
        row["WCD"] = M.mean_or_none([M.word_count_deviation(s or "", duration.get(c, 0.0), words_per_second)
                                     for c, s in zip(predicted, scripts, strict=False)])
        subtitles = (prediction or {}).get("subtitles")
        row["SSA"] = M.subtitle_segmentation_accuracy(list(zip(scripts, subtitles, strict=False))) \
            if subtitles else None
    else:
        row["WCD"] = row["SSA"] = None
    return row


METRICS = ("SRA", "CSA", "CRA", "kendall_tau", "pairwise_order", "shot_precision", "shot_recall", "shot_f1",
           "WCD", "SSA")


def aggregate(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"samples": len(rows), "missing_predictions": sum(r["missing"] for r in rows)}
    for m in METRICS:
        value = M.mean_or_none([r.get(m) for r in rows])
        out[m] = None if value is None else round(value, 4)
    return out


def random_baseline(bench: list[BenchmarkSample], seed: int) -> dict[str, dict[str, Any]]:
    out = {}
    for s in bench:
        rng = random.Random(f"{seed}:{s.sample_id}")
        labels = [c["label"] for c in s.candidates]
        out[s.sample_id] = {"sample_id": s.sample_id, "clips": rng.sample(labels, min(s.k, len(labels)))}
    return out


def _largest_cluster_centre(x: np.ndarray, seed: int) -> np.ndarray:
    import faiss

    if len(x) < 4:
        return x.mean(axis=0)
    km = faiss.Kmeans(x.shape[1], 2, niter=20, seed=seed, spherical=True, verbose=False, min_points_per_centroid=1)
    km.train(np.ascontiguousarray(x, np.float32))
    _, assign = km.index.search(np.ascontiguousarray(x, np.float32), 1)
    biggest = np.bincount(assign[:, 0], minlength=2).argmax()
    return x[assign[:, 0] == biggest].mean(axis=0)


def greedy_order(ids: list[str], first_last: dict[str, tuple[np.ndarray, np.ndarray]]) -> list[str]:
    """Start with the clip whose first frame follows no other clip's last frame well, then chain by similarity."""
    if len(ids) < 2:
        return list(ids)
    first = np.stack([first_last[i][0] for i in ids])
    last = np.stack([first_last[i][1] for i in ids])
    follows = last @ first.T  # [a, b]: how well b's first frame follows a's last frame
    np.fill_diagonal(follows, -np.inf)
    order = [int(np.argmin(follows.max(axis=0)))]
    while len(order) < len(ids):
        scores = follows[order[-1]].copy()
        scores[order] = -np.inf
        order.append(int(np.argmax(scores)))
    return [ids[i] for i in order]


def embedding_baseline(bench: list[BenchmarkSample], clip_vectors: dict[str, np.ndarray],
                       first_last: dict[str, tuple[np.ndarray, np.ndarray]], seed: int) -> dict[str, dict[str, Any]]:
    out = {}
    for s in bench:
        ids = [c["clip_id"] for c in s.candidates if c["clip_id"] in clip_vectors]
        if not ids:
            out[s.sample_id] = {"sample_id": s.sample_id, "clips": []}
            continue
        x = np.stack([clip_vectors[i] for i in ids])
        centre = _largest_cluster_centre(x, seed)
        chosen = [ids[i] for i in np.argsort(-(x @ centre), kind="stable")[: s.k]]
        out[s.sample_id] = {"sample_id": s.sample_id, "clips": greedy_order(chosen, first_last)}
    return out


def score(bench: list[BenchmarkSample], predictions: dict[str, dict[str, Any]], words_per_second: float
          ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    rows = [score_sample(s, predictions.get(s.sample_id), words_per_second) for s in bench]
    summary = aggregate(rows)
    summary["unknown_predictions"] = sorted(set(predictions) - {s.sample_id for s in bench})[:20]
    return summary, rows


HIGHER_IS_BETTER = ("SRA", "CSA", "CRA", "kendall_tau", "pairwise_order", "shot_precision", "shot_recall",
                    "shot_f1", "SSA")  # WCD: lower is better


def _quantiles(means: np.ndarray, confidence: float) -> list[float]:
    tail = (1 - confidence) / 2
    return [round(float(np.quantile(means, tail)), 4), round(float(np.quantile(means, 1 - tail)), 4)]


def bootstrap_ci(values: list[float | None], resamples: int, confidence: float, seed: int) -> list[float] | None:
    """The percentile bootstrap interval of the mean over samples (None: no sample has the figure)."""
    v = np.asarray([x for x in values if x is not None], np.float64)
    if not len(v):
        return None
    rng = np.random.default_rng(seed)
    return _quantiles(v[rng.integers(0, len(v), (resamples, len(v)))].mean(axis=1), confidence)


def paired_difference(a: list[dict[str, Any]], b: list[dict[str, Any]], metric: str, resamples: int,
                      confidence: float, seed: int) -> dict[str, Any]:
    """Mean of a − b over the samples both score, with its paired bootstrap interval; ``separable`` when the
    interval leaves out 0."""
    by_id = {r["sample_id"]: r.get(metric) for r in b}
    d = np.asarray([r[metric] - by_id[r["sample_id"]] for r in a
                    if r.get(metric) is not None and by_id.get(r["sample_id"]) is not None], np.float64)
    if not len(d):
        return {"metric": metric, "samples": 0, "difference": None, "ci": None, "separable": False}
    rng = np.random.default_rng(seed)
    ci = _quantiles(d[rng.integers(0, len(d), (resamples, len(d)))].mean(axis=1), confidence)
    return {"metric": metric, "samples": int(len(d)), "difference": round(float(d.mean()), 4), "ci": ci,
            "separable": bool(ci[0] > 0 or ci[1] < 0)}


def add_intervals(systems: dict[str, dict[str, Any]], per_sample: dict[str, list[dict[str, Any]]], resamples: int,
                  confidence: float, seed: int) -> None:
    """Each system's figures gain ``ci``: metric → [low, high], the bootstrap interval of its mean."""
    for name, rows in per_sample.items():
        systems[name]["ci"] = {m: bootstrap_ci([r.get(m) for r in rows], resamples, confidence, seed)
                               for m in METRICS}


def ranking(systems: dict[str, dict[str, Any]], per_sample: dict[str, list[dict[str, Any]]], metric: str,
            baselines: tuple[str, ...], resamples: int, confidence: float, seed: int) -> dict[str, Any]:
    """Systems in order of ``metric`` — given only when every neighbour in that order is separable by its paired
    bootstrap interval; else ``order`` is None and ``statement`` says which could not be told apart. Each
    non-baseline system is also compared with the best baseline."""
    scored = [n for n in systems if systems[n].get(metric) is not None]
    order = sorted(scored, key=lambda n: -systems[n][metric])
    pairs = [{"a": a, "b": b, **paired_difference(per_sample[a], per_sample[b], metric, resamples, confidence, seed)}
             for a, b in zip(order, order[1:], strict=False)]
    best_base = max((n for n in scored if n in baselines), key=lambda n: systems[n][metric], default=None)
    versus = {n: paired_difference(per_sample[n], per_sample[best_base], metric, resamples, confidence, seed)
              for n in scored if n not in baselines and best_base is not None}
    together = [f"{p['a']} vs {p['b']} (difference {p['difference']}, {confidence:.0%} interval {p['ci']})"
                for p in pairs if not p["separable"]]
    samples = max((systems[n].get("samples", 0) for n in systems), default=0)
    if together:
        statement = (f"not ranked: the {samples}-sample benchmark is too small to separate " + "; ".join(together)
                     + f" on {metric}")
    else:
        statement = f"ranked on {metric}: " + " > ".join(order) + f" (every neighbour separable at {confidence:.0%})"
    return {"metric": metric, "order": None if together else order, "neighbours": pairs,
            "best_baseline": best_base, "versus_best_baseline": versus, "statement": statement}


def cell(figures: dict[str, Any], metric: str) -> str:
    """A figure with its interval when it has one; "not computed" without it."""
    if figures.get(metric) is None:
        return "not computed"
    ci = (figures.get("ci") or {}).get(metric)
    return f"{figures[metric]:.3f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")


def markdown(report: dict[str, Any]) -> str:
    systems = report["systems"]
    lines = [f"# Benchmark {report['benchmark']} v{report['benchmark_version']} ({report['samples']} samples)", "",
             f"Source versions: `{json.dumps(report['source_versions'], sort_keys=True)}`", "",
             "| system | " + " | ".join(METRICS) + " |", "|---" * (len(METRICS) + 1) + "|"]
    for name, figures in systems.items():
        lines.append(f"| {name} | " + " | ".join(cell(figures, m) for m in METRICS) + " |")
    if report.get("ranking"):
        lines += ["", f"Intervals: {report['confidence']:.0%} bootstrap over samples. "
                  + report["ranking"]["statement"] + "."]
    lines += ["", "Judged metrics (VSC, Fact, Coh, Logic, SQ): " + report["judge"]["status"], ""]
    for name, figures in systems.items():
        if figures.get("missing_predictions"):
            lines.append(f"- {name}: {figures['missing_predictions']} sample(s) without a prediction scored as empty")
    lines += ["", "SRA: the whole sequence right · CSA: |pred ∩ truth| / max(|pred|, |truth|) · CRA: share of "
                  "positions right · WCD: |words − target words for the clip's duration| (lower is better) · "
                  "SSA: every subtitle segment rule holds", ""]
    return "\n".join(lines)
