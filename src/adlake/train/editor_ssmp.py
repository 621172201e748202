"""train_ssmp: the SSMP shot-sequence model on the training ads' clip vectors, and its benchmark answers.

Trains on each training ad's clips in playing order (the mean of their 1 fps frame vectors, at the
benchmark's source versions), decodes every benchmark sample from its candidates' vectors alone — greedy
and self-corrective, side by side as in the seed's ablation — and logs one MLflow run (experiment
``adlake/train_editor``) with the loss, accuracy and mask-ratio curves, the model and both answers' figures.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from adlake.errors import NothingToDo
from adlake.lake import Lake
from adlake.train import common
from adlake.train.data import read_editor_inputs
from schemas.registry import BENCHMARK, SPLIT_ASSIGNMENTS

DECODERS = {"ssmp_greedy": "greedy", "ssmp_self_correct": "self_correct"}


def ssmp_answers(model, rows: list[dict[str, Any]], clip_vectors: dict[str, np.ndarray], cfg
                 ) -> tuple[dict[str, dict[str, dict[str, Any]]], int]:
    """Each decoder's answers (labels in order), from the candidates with a vector; the candidates without one."""
    from adlake.train.ssmp import decode

    out: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in DECODERS}
    unseen = 0
    for row in sorted(rows, key=lambda r: r["sample_id"]):
        cands = [c for c in json.loads(row["candidates"]) if c["clip_id"] in clip_vectors]
        unseen += len(json.loads(row["candidates"])) - len(cands)
        x = np.stack([clip_vectors[c["clip_id"]] for c in cands]) if cands else np.zeros((0, 1), np.float32)
        for name, method in DECODERS.items():
            picks = decode(model, x, int(row["k"]), method, cfg) if cands else []
            out[name][row["sample_id"]] = {"clips": [cands[i]["label"] for i in picks]}
    return out, unseen


def train_ssmp_model(lake: Lake, force: bool = False) -> dict[str, Any]:
    import torch

    from adlake.datasets.build import clip_frame_vectors, fps1_frames
    from adlake.tracking import job_run
    from adlake.train.llm import device_and_dtype
    from adlake.train.ssmp import SSMPConfig, train_ssmp

    settings = lake.settings
    inputs = read_editor_inputs(lake)
    versions = inputs.versions
    dev, _ = device_and_dtype(settings.train.device, "fp32")
    cfg = SSMPConfig(**settings.train.ssmp.model_dump(), seed=settings.train.seed)
    key = common.training_key("ssmp/1", versions, asdict(cfg), str(dev))
    folder = common.predictions_dir(lake)
    marker = folder / "ssmp.json"
    if not force and marker.exists() and json.loads(marker.read_text()).get("training_key") == key \
            and all((folder / f"{n}.jsonl").exists() for n in DECODERS):
        return {**json.loads(marker.read_text()), "skipped": "already trained from these inputs and settings "
                "(--force trains again)"}

    clip_vectors, _ = clip_frame_vectors(lake, fps1_frames(lake, versions["source.silver.frames"]),
                                         versions["source.silver.embeddings"], versions["source.encoder.video"])
    sequences, incomplete = [], 0
    for clips in inputs.clip_order.values():
        if all(c in clip_vectors for c in clips):
            sequences.append(np.stack([clip_vectors[c] for c in clips]))
        else:
            incomplete += 1
    if not sum(len(s) >= 2 for s in sequences):
        raise NothingToDo(f"no training ad with 2 or more embedded clips ({incomplete} without every clip's vector)")
    params = {**{f"ssmp.{k}": v for k, v in asdict(cfg).items()}, "device": str(dev),
              **{k: v for k, v in versions.items() if k.startswith("source.")}}
    tables = {BENCHMARK.name: versions[BENCHMARK.name], SPLIT_ASSIGNMENTS.name: versions[SPLIT_ASSIGNMENTS.name]}
    with job_run(lake.ctx, experiment="train_editor", params={**params, "stage": "ssmp"}, inputs=tables) as run, \
            tempfile.TemporaryDirectory() as tmp:
        model, history = train_ssmp(sequences, cfg, str(dev))
        for step, (loss, acc, ratio) in enumerate(zip(history["loss"], history["accuracy"], history["mask_ratio"],
                                                      strict=True)):
            run.metrics({"loss": loss, "accuracy": acc, "mask_ratio": ratio}, step=step)
        out = Path(tmp)
        run.artifact(common.loss_plot(out / "ssmp_loss.png", {"loss": history["loss"]}, "SSMP masked prediction"),
                     "plots")
        run.artifact(common.loss_plot(out / "ssmp_schedule.png", {"mask ratio (mu_t)": history["mask_ratio"],
                                                                  "accuracy": history["accuracy"]},
                                      "SSMP self-paced mask ratio"), "plots")
        answers, unseen = ssmp_answers(model, inputs.bench_rows, clip_vectors, cfg)
        paths = {name: common.write_predictions(lake, name, preds) for name, preds in answers.items()}
        benchmark = common.scores_against_baselines(lake, inputs.bench_rows, answers)
        run.metrics(common.numeric(benchmark))
        torch.save({"config": asdict(cfg), "state_dict": model.state_dict()}, out / "ssmp.pt")
        run.artifact(out / "ssmp.pt", "model")
        for p in paths.values():
            run.artifact(p, "predictions")
        summary = {"model": "ssmp", "training_key": key, "run_id": run.run_id, "sequences": history["sequences"],
                   "incomplete_ads": incomplete, "skipped_short": history["skipped_short"],
                   "truncated": history["truncated"], "unembedded_candidates": unseen, "steps": history["steps"],
                   "seconds": round(history["seconds"], 1), "final_loss": history["loss"][-1],
                   "final_accuracy": history["accuracy"][-1], "final_mask_ratio": history["mask_ratio"][-1],
                   "benchmark": benchmark, "predictions": {k: str(v) for k, v in paths.items()}}
        run.summary(summary)
    marker.write_text(json.dumps(summary, indent=1, default=str))
    return summary
