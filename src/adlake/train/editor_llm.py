"""train_llm: the editor LLM's vocabulary extension and two training stages, scored on the benchmark, gated.

Stage 1 (alignment) trains only the new token rows on the training ads' ``gold.ad_sequences``, next-token
loss; stage 2 fine-tunes every weight on the AutoCut and VC-LLM training samples, loss on the answers. Each
stage is one MLflow run (experiment ``adlake/train_editor``). The model is registered as
``adlake-editor-llm``; ``production`` moves only when its benchmark figure ``train.llm.gate_metric`` beats
the best baseline's by ``train.llm.promote_margin``. A rerun on the same inputs and settings trains nothing.
"""

from __future__ import annotations

import copy
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from adlake.lake import Lake
from adlake.registry import GatedRegistry
from adlake.train import common
from adlake.train.data import EditorInputs, as_text, encode_samples, encode_sequences, read_editor_inputs
from adlake.train.llm import device_and_dtype, load_model, tiny_model, train_stage
from adlake.train.vocab import code_directions, extend, init_new_rows, tiny_base_tokenizer
from schemas.registry import AD_SEQUENCES, BENCHMARK, SAMPLES

MODEL_NAME = "adlake-editor-llm"
log = logging.getLogger(__name__)


def registry(lake: Lake) -> GatedRegistry:
    return GatedRegistry(lake.ctx, MODEL_NAME, "adlake editor LLM (extended vocabulary, two stages); production = "
                                               "beats the best baseline on the benchmark by train.llm.promote_margin")


def pinned_tokenizers(lake: Lake, versions: dict[str, Any]) -> list[tuple[Any, dict]]:
    """The tokenizer versions the training sets were built with: (Tokenizer, vocabulary file) per modality."""
    from adlake.tokenizer.registry import load_tokenizer
    from adlake.tokenizer.registry import registry as tok_registry

    out = []
    for modality in ("video", "audio"):
        tid = versions.get(f"source.tokenizer.{modality}")
        if tid:
            version = tid.rsplit("/", 1)[1]
            reg = tok_registry(lake.ctx, modality)
            out.append((load_tokenizer(lake.ctx, modality, version), reg.read_json(reg.get(version),
                                                                                 "tokenizer/vocab.json")))
    return out


def build(settings, inputs: EditorInputs, tokenizers: list[tuple[Any, dict]], dtype):
    """The base model and tokenizer, the tokenizer extended; embeddings resized (new rows not yet set)."""
    lc = settings.train.llm
    if lc.model_path:
        model, tok = load_model(lc.model_path, dtype)
    else:
        texts = [t for s in inputs.samples for t in as_text(s["messages"], inputs)[:2]] + inputs.sequences
        tok = tiny_base_tokenizer(texts, lc.tiny.base_vocab)
        model = tiny_model(lc.tiny, len(tok), lc.seq_len, settings.train.seed)
    ext = extend(tok, [v for _, v in tokenizers])
    model.resize_token_embeddings(len(tok), mean_resizing=False)
    directions = {}
    for t, _ in tokenizers:
        directions.update(code_directions(t.model, "v" if t.modality == "video" else "a"))
    return model, tok, ext, directions


def benchmark_answers(model, tok, inputs: EditorInputs, max_script_tokens: int, dev) -> dict[str, dict[str, Any]]:
    from adlake.train.generate import answer

    out = {}
    for row in sorted(inputs.bench_rows, key=lambda r: r["sample_id"]):
        prompt, _, _ = as_text(row["messages"], inputs)
        labels = [c["label"] for c in json.loads(row["candidates"])]
        out[row["sample_id"]] = answer(model, tok, prompt, labels, int(row["k"]), max_script_tokens, dev)
    return out


def _log_stage(run, result, curves: dict[str, list[float]], out: Path, extra: dict[str, Any]) -> None:
    for step, value in enumerate(result.loss):
        run.metrics({"loss": value}, step=step)
    run.metrics({k: v for k, v in result.as_dict().items() if isinstance(v, int | float) and v is not None})
    run.artifact(common.loss_plot(out / f"{result.stage}_loss.png", curves, f"{result.stage} loss"), "plots")
    run.summary({**result.as_dict(), **extra})


def train_llm(lake: Lake, force: bool = False) -> dict[str, Any]:
    from adlake.tracking import job_run

    settings = lake.settings
    conf, lc = settings.train, settings.train.llm
    inputs = read_editor_inputs(lake)
    versions = inputs.versions
    dev, dtype = device_and_dtype(conf.device, conf.precision)
    key = common.training_key("llm/1", versions, lc.model_dump(), conf.seed, str(dev), str(dtype))
    reg = registry(lake)
    done = None if force else next((v for v in reg.versions() if v.tags.get("training_key") == key), None)
    pred_path = common.predictions_dir(lake) / "llm.jsonl"
    if done is not None and pred_path.exists():
        return {"model": MODEL_NAME, "version": str(done.version), "skipped": "already trained from these inputs "
                "and settings (--force trains again)", "training_key": key, "predictions": str(pred_path)}

    tokenizers = pinned_tokenizers(lake, versions)
    model, tok, ext, directions = build(settings, inputs, tokenizers, dtype)
    stage1 = encode_sequences(tok, inputs.sequences, lc.seq_len, lc.overlong)
    stage2 = encode_samples(tok, inputs.samples, inputs, lc.seq_len, lc.overlong)
    log.info("vocabulary %d + %d added; stage 1 data %s; stage 2 data %s", ext.first_id, ext.added,
             stage1.report(), stage2.report())
    if not stage1.ids or not stage2.ids:
        from adlake.errors import NothingToDo

        raise NothingToDo(f"nothing to train on within train.llm.seq_len={lc.seq_len}: stage 1 "
                          f"{stage1.report()}, stage 2 {stage2.report()}")
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    table_inputs = {SAMPLES.name: versions[SAMPLES.name], AD_SEQUENCES.name: versions[AD_SEQUENCES.name],
                    BENCHMARK.name: versions[BENCHMARK.name]}
    params = {"model_path": lc.model_path or "tiny (random Qwen3-style weights)", "seq_len": lc.seq_len,
              "overlong": lc.overlong, "init": lc.init, "seed": conf.seed, "device": str(dev), "dtype": str(dtype),
              "base_vocab": ext.first_id, "added_tokens": ext.added, "vocab_size": len(tok),
              **{k: v for k, v in versions.items() if k.startswith("source.")}}
    summary: dict[str, Any] = {"model": MODEL_NAME, "training_key": key, "versions": versions,
                               "stage1_data": stage1.report(), "stage2_data": stage2.report(),
                               "stale_samples": inputs.stale_samples, "added_tokens": ext.added}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        curves: dict[str, list[float]] = {}
        if lc.compare_init:  # the other init, stage 1 only: a measurement, not the model kept
            other = "mean" if lc.init == "codes" else "codes"
            twin = copy.deepcopy(model)
            init_new_rows(twin, ext, other, directions, conf.seed)
            curves[f"init={other}"] = train_stage(twin, stage1, lc.stage1, stage="stage1", first_new=ext.first_id,
                                                  pad_id=pad, dev=dev, dtype=dtype, seed=conf.seed).loss
            del twin
        init = init_new_rows(model, ext, lc.init, directions, conf.seed)
        with job_run(lake.ctx, experiment="train_editor", params={**params, "stage": "1-alignment",
                     **{f"stage1.{k}": v for k, v in lc.stage1.model_dump().items()}}, inputs=table_inputs) as run:
            s1 = train_stage(model, stage1, lc.stage1, stage="stage1", first_new=ext.first_id, pad_id=pad, dev=dev,
                             dtype=dtype, seed=conf.seed)
            curves[f"init={lc.init}"] = s1.loss
            run.metrics({f"final_loss.init_{k.split('=')[1]}": v[-1] for k, v in curves.items()})
            _log_stage(run, s1, curves, out, {"init": init, "data": stage1.report()})
            summary["stage1"] = {**s1.as_dict(), "run_id": run.run_id, "init": init,
                                 "final_loss_by_init": {k.split("=")[1]: v[-1] for k, v in curves.items()}}
        with job_run(lake.ctx, experiment="train_editor", params={**params, "stage": "2-finetune",
                     **{f"stage2.{k}": v for k, v in lc.stage2.model_dump().items()}}, inputs=table_inputs) as run:
            s2 = train_stage(model, stage2, lc.stage2, stage="stage2", first_new=None, pad_id=pad, dev=dev,
                             dtype=dtype, seed=conf.seed)
            _log_stage(run, s2, {"stage 2": s2.loss}, out, {"data": stage2.report()})
            start = time.perf_counter()
            predictions = benchmark_answers(model, tok, inputs, lc.max_script_tokens, dev)
            answer_s = time.perf_counter() - start
            log.info("benchmark answers: %d samples in %.1f s", len(predictions), answer_s)
            path = common.write_predictions(lake, "llm", predictions)
            figures = common.scores_against_baselines(lake, inputs.bench_rows, {"llm": predictions})
            m = lc.gate_metric
            best = max((f.get(m) or 0.0) for name, f in figures.items() if name != "llm")
            ours = figures["llm"].get(m)
            passed = ours is not None and ours >= best + lc.promote_margin
            run.metrics(common.numeric(figures))
            run.artifact(path, "predictions")
            bundle = out / "editor"
            model.save_pretrained(bundle)
            tok.save_pretrained(bundle)
            (bundle / "editor.json").write_text(json.dumps({"training_key": key, "versions": versions,
                                                            "benchmark": figures}, indent=1, default=str))
            run.artifacts(bundle, "editor")
            gate = {"metric": m, "model": ours, "best_baseline": best, "margin": lc.promote_margin, "passed": passed}
            mv = reg.register(run.run_id, "editor", passed=passed, tags={
                "training_key": key, **{f"input.{k}.version": str(v) for k, v in table_inputs.items()},
                "tokenizers": ",".join(str(versions.get(f"source.tokenizer.{x}")) for x in ("video", "audio"))},
                description=f"{m} {ours} vs best baseline {best}")
            summary.update({"stage2": {**s2.as_dict(), "run_id": run.run_id}, "benchmark": figures, "gate": gate,
                            "version": str(mv.version), "production_moved": passed, "predictions": str(path),
                            "answer_seconds": round(answer_s, 1)})
            run.summary(summary)
    return summary
