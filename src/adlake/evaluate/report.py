"""`adlake evaluate PREDICTIONS`: a predictions file scored on a pinned benchmark version, with the baselines.

Writes ``report.json`` and ``report.md`` under ``$ADLAKE_HOME/reports/benchmark/…`` and one MLflow run
(experiment ``adlake/evaluate``) with the benchmark version, the source table versions, every
system's figures and both files.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from adlake.evaluate.benchmark import (
    add_intervals,
    embedding_baseline,
    load_benchmark,
    markdown,
    random_baseline,
    ranking,
    read_predictions,
    score,
)
from adlake.lake import Lake
from adlake.lake.sql import sql_literal
from schemas.registry import BENCHMARK


class NoBenchmark(RuntimeError):
    pass


def _judge_items(rows: list[dict[str, Any]], predictions: dict[str, dict[str, Any]]) -> list[dict[str, str]]:
    items = []
    for r in rows:
        p = predictions.get(r["sample_id"])
        if not p or not p.get("scripts"):
            continue
        product = json.loads(r["messages"])["conversations"][0]["value"].split("\n\n", 1)[0]
        video = "\n".join(f"{i + 1}. clip {c}: {s}" for i, (c, s) in enumerate(zip(p.get("clips", []),
                                                                                   p["scripts"], strict=False)))
        items.append({"product": product, "video": video})
    return items


def benchmark_rows(lake: Lake, version: int | None = None) -> tuple[int, list[dict[str, Any]]]:
    """The benchmark's samples at ``version`` (default: the version reads see)."""
    from adlake.datasets.build import BENCHMARK_NAME

    if not lake.exists(BENCHMARK):
        raise NoBenchmark("gold.benchmark does not exist yet: run training_sets first")
    version = lake.version(BENCHMARK) if version is None else version
    rows = lake.read(BENCHMARK, version=version, where=f"benchmark = {sql_literal(BENCHMARK_NAME)}").to_pylist()
    if not rows:
        raise NoBenchmark(f"gold.benchmark@v{version} holds no {BENCHMARK_NAME} samples")
    return version, rows


def baseline_predictions(lake: Lake, bench: list, source: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """The random and embedding baselines' picks for each sample, from the benchmark's own input versions."""
    from adlake.datasets.build import clip_frame_vectors, fps1_frames

    seed = lake.settings.datasets.seed
    clip_vectors, first_last = clip_frame_vectors(lake, fps1_frames(lake, source["silver.frames"]),
                                                  source["silver.embeddings"], source["encoder.video"])
    return {"random": random_baseline(bench, seed),
            "embedding": embedding_baseline(bench, clip_vectors, first_last, seed)}


BASELINES = ("random", "embedding")


def evaluate(lake: Lake, predictions_path: Path | list[Path] | None = None, *, benchmark_version: int | None = None,
             name: str | None = None) -> dict[str, Any]:
    """Score the predictions files (if any; each named by its stem) and the baselines on one benchmark version,
    each figure with its bootstrap interval, ranked only where the benchmark separates the systems; log and
    write the report. ``name`` names the report (default: the files' stems joined by +, or baselines)."""
    from adlake.datasets.build import BENCHMARK_NAME
    from adlake.evaluate.judge import judge
    from adlake.tracking import job_run

    version, rows = benchmark_rows(lake, benchmark_version)
    bench = load_benchmark(rows)
    source = json.loads(rows[0]["source_versions"])
    wps = lake.settings.evaluate.words_per_second
    systems: dict[str, Any] = {}
    per_sample: dict[str, list[dict[str, Any]]] = {}
    paths = [] if predictions_path is None else \
        [predictions_path] if isinstance(predictions_path, Path) else list(predictions_path)
    if len({p.stem for p in paths}) != len(paths) or set(BASELINES) & {p.stem for p in paths}:
        raise ValueError(f"predictions files need distinct names, none of {BASELINES}: {[str(p) for p in paths]}")
    predictions: dict[str, dict[str, dict[str, Any]]] = {}
    for path in paths:
        predictions[path.stem] = read_predictions(path)
        systems[path.stem], per_sample[path.stem] = score(bench, predictions[path.stem], wps)
    name = name or ("+".join(p.stem for p in paths) if paths else None)
    for system, baseline in baseline_predictions(lake, bench, source).items():
        systems[system], per_sample[system] = score(bench, baseline, wps)
    conf = lake.settings.evaluate
    seed = lake.settings.datasets.seed
    add_intervals(systems, per_sample, conf.bootstrap_samples, conf.confidence, seed)
    ranked = ranking(systems, per_sample, conf.rank_metric, BASELINES, conf.bootstrap_samples, conf.confidence, seed)
    judged = next(iter(predictions.values()), {}) if len(predictions) == 1 else {}
    verdict = judge(_judge_items(rows, judged), conf.judge)
    report = {"benchmark": BENCHMARK_NAME, "benchmark_version": version, "samples": len(bench),
              "benchmark_hash": hashlib.sha256(json.dumps([r["sample_id"] for r in rows]).encode()).hexdigest()[:16],
              "source_versions": source, "predictions": ([str(p) for p in paths] if len(paths) > 1 else
                                                         str(paths[0]) if paths else None),
              "systems": systems, "judge": verdict, "confidence": conf.confidence, "ranking": ranked}
    if verdict.get("computed") and judged:
        systems[paths[0].stem].update({m: verdict.get(m) for m in ("VSC", "Fact", "Coh", "Logic", "SQ")})
    out = Path(lake.settings.home) / "reports" / "benchmark" / f"v{version}-{name or 'baselines'}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps({**report, "per_sample": per_sample}, indent=1, sort_keys=True,
                                                ensure_ascii=False) + "\n")
    (out / "report.md").write_text(markdown(report))
    with job_run(lake.ctx, experiment="evaluate", params={
            "benchmark": BENCHMARK_NAME, "predictions": ",".join(str(p) for p in paths) or None,
            "judge_prompt_version": verdict["prompt_version"], "judge_computed": verdict.get("computed", False),
            **{f"source.{k}": v for k, v in source.items()}}, inputs={BENCHMARK.name: version}) as run:
        for system, figures in systems.items():
            run.metrics({f"{system}.{k}": v for k, v in figures.items() if isinstance(v, int | float)
                         and not isinstance(v, bool)})
        run.artifact(out / "report.json", "report")
        run.artifact(out / "report.md", "report")
        report["mlflow_run_id"] = run.run_id
    report["report_dir"] = str(out)
    return report
