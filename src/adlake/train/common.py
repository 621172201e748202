"""What the editor jobs share: the benchmark they answer, where their predictions go, loss plots, the
training key that makes a rerun on the same inputs a no-op."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from adlake.evaluate.benchmark import load_benchmark, score
from adlake.lake import Lake
from schemas.registry import BENCHMARK

SYSTEMS = ("llm", "ssmp_greedy", "ssmp_self_correct")  # the prediction files a train_editor run writes


def predictions_dir(lake: Lake) -> Path:
    """``reports/benchmark/v<N>-editor/predictions``: one JSONL per system, for the pinned benchmark version."""
    return Path(lake.settings.home) / "reports" / "benchmark" / f"v{lake.version(BENCHMARK)}-editor" / "predictions"


def write_predictions(lake: Lake, system: str, predictions: dict[str, dict[str, Any]]) -> Path:
    out = predictions_dir(lake)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{system}.jsonl"
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps({"sample_id": k, **v}, ensure_ascii=False, sort_keys=True) + "\n"
                           for k, v in sorted(predictions.items())))
    tmp.replace(path)  # whole or absent
    return path


def scores_against_baselines(lake: Lake, rows: list[dict[str, Any]], systems: dict[str, dict[str, dict[str, Any]]]
                             ) -> dict[str, dict[str, Any]]:
    """Each system's figures and the random and embedding baselines' (computed once), on the same benchmark
    rows, by the same code as the report."""
    from adlake.evaluate.report import baseline_predictions

    bench = load_benchmark(rows)
    wps = lake.settings.evaluate.words_per_second
    source = json.loads(rows[0]["source_versions"])
    everything = {**systems, **baseline_predictions(lake, bench, source)}
    return {name: score(bench, preds, wps)[0] for name, preds in everything.items()}


def numeric(figures: dict[str, dict[str, Any]]) -> dict[str, float]:
    """``benchmark.<system>.<metric>`` for every number among the figures (MLflow metrics)."""
    return {f"benchmark.{name}.{k}": v for name, f in figures.items() for k, v in f.items()
            if isinstance(v, int | float) and not isinstance(v, bool)}


def training_key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def loss_plot(path: Path, curves: dict[str, list[float]], title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, values in curves.items():
        ax.plot(range(1, len(values) + 1), values, label=name)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
