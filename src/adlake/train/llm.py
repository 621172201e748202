"""The editor LLM: a causal LM from a local folder or the tiny Qwen3-style test model, and its two training
stages — alignment (only the new token rows train, everything else frozen) and fine-tuning (all weights)."""

from __future__ import annotations

import hashlib
import logging
import math
import resource
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from adlake.errors import AdlakeError

log = logging.getLogger(__name__)


class FreezeViolated(AdlakeError):
    """Stage 1 changed a weight it must not (anything but the new token rows)."""


def device_and_dtype(device: str, precision: str) -> tuple[torch.device, torch.dtype]:
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       ("cpu" if device == "auto" else device))
    bf16 = precision == "bf16" or (precision == "auto" and dev.type == "cuda")
    return dev, torch.bfloat16 if bf16 else torch.float32


def tiny_model(conf, vocab_size: int, seq_len: int, seed: int):
    """A Qwen3 architecture at test size, random weights from ``seed``: honest about being a test model."""
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(seed)
    config = Qwen3Config(vocab_size=vocab_size, hidden_size=conf.hidden_size, intermediate_size=conf.intermediate_size,
                         num_hidden_layers=conf.layers, num_attention_heads=conf.heads,
                         num_key_value_heads=conf.kv_heads, head_dim=conf.hidden_size // conf.heads,
                         max_position_embeddings=seq_len, tie_word_embeddings=False, rope_theta=10000.0,
                         bos_token_id=None, eos_token_id=None, pad_token_id=None)
    config.architectures = ["Qwen3ForCausalLM"]
    return Qwen3ForCausalLM(config)


def load_model(path: str, dtype: torch.dtype):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return (AutoModelForCausalLM.from_pretrained(path, dtype=dtype, local_files_only=True),
            AutoTokenizer.from_pretrained(path, local_files_only=True))


def _row_params(model) -> list[torch.nn.Parameter]:
    """The input embeddings and, when not tied to them, the output layer: the weights with token rows."""
    params = [model.get_input_embeddings().weight]
    out = model.get_output_embeddings()
    if out is not None and out.weight.data_ptr() != params[0].data_ptr():
        params.append(out.weight)
    return params


def fingerprint(model, first_new: int) -> dict[str, str]:
    """A digest of every weight that stage 1 must leave alone (token rows below ``first_new`` included)."""
    rows = {id(p) for p in _row_params(model)}
    out = {}
    for name, p in model.named_parameters():
        t = p.detach()[:first_new] if id(p) in rows else p.detach()
        out[name] = hashlib.blake2b(t.float().cpu().numpy().tobytes(), digest_size=16).hexdigest()
    return out


@dataclass
class StageResult:
    stage: str
    steps: int
    loss: list[float] = field(default_factory=list)
    seconds: float = 0.0
    tokens: int = 0  # non-padding tokens seen
    peak_memory_mb: float = 0.0
    trainable_params: int = 0
    frozen_changed: list[str] = field(default_factory=list)  # stage 1: weights that moved but must not

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "steps": self.steps, "final_loss": self.loss[-1] if self.loss else None,
                "first_loss": self.loss[0] if self.loss else None, "seconds": round(self.seconds, 2),
                "tokens": self.tokens, "tokens_per_s": round(self.tokens_per_s, 1),
                "peak_memory_mb": round(self.peak_memory_mb, 1), "trainable_params": self.trainable_params,
                "frozen_changed": self.frozen_changed}


def _batches(n: int, batch: int, rng: np.random.Generator):
    """Endless batches of indices: seeded permutations, one epoch after another."""
    order: list[int] = []
    while True:
        if len(order) < batch:
            order += list(rng.permutation(n))
        yield [order.pop(0) for _ in range(min(batch, n))]


def _collate(ids: list[np.ndarray], labels: list[np.ndarray], pad_id: int, dev: torch.device):
    width = max(len(i) for i in ids)
    x = np.full((len(ids), width), pad_id, np.int64)
    y = np.full((len(ids), width), -100, np.int64)
    mask = np.zeros((len(ids), width), np.int64)
    for r, (i, lab) in enumerate(zip(ids, labels, strict=True)):
        x[r, : len(i)], y[r, : len(i)], mask[r, : len(i)] = i, lab, 1
    return torch.from_numpy(x).to(dev), torch.from_numpy(y).to(dev), torch.from_numpy(mask).to(dev)


def train_stage(model, data, stage_conf, *, stage: str, first_new: int | None, pad_id: int, dev: torch.device,
                dtype: torch.dtype, seed: int, on_step=None) -> StageResult:
    """One stage. ``first_new`` given: only token rows from it on train (stage 1), checked afterwards by
    digest; None: every weight trains (stage 2). Deterministic for the same seed, data and device."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    result = StageResult(stage, stage_conf.steps)
    hooks = []
    if first_new is not None:
        before = fingerprint(model, first_new)
        params = _row_params(model)
        for p in model.parameters():
            p.requires_grad_(False)
        for p in params:
            p.requires_grad_(True)
            hooks.append(p.register_hook(lambda g: torch.cat([torch.zeros_like(g[:first_new]), g[first_new:]])))
        decay = 0.0  # weight decay would move the frozen rows
    else:
        for p in model.parameters():
            p.requires_grad_(True)
        params, decay = list(model.parameters()), 0.01
    result.trainable_params = sum(p.numel() for p in params) if first_new is None else \
        sum((p.shape[0] - first_new) * p.shape[1] for p in params)
    opt = torch.optim.AdamW(params, lr=stage_conf.lr, weight_decay=decay)
    warm = max(stage_conf.warmup_steps, 1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min((s + 1) / warm, 0.5 * (1 + math.cos(
        math.pi * min(s / max(stage_conf.steps, 1), 1.0)))))
    model.to(dev).train()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    batches = _batches(len(data.ids), stage_conf.batch_size, rng)
    start = time.perf_counter()
    try:
        for step in range(stage_conf.steps):
            opt.zero_grad(set_to_none=True)
            total = 0.0
            for _ in range(stage_conf.grad_accum):
                idx = next(batches)
                x, y, mask = _collate([data.ids[i] for i in idx], [data.labels[i] for i in idx], pad_id, dev)
                with torch.autocast(dev.type, dtype=dtype, enabled=dtype != torch.float32):
                    loss = model(input_ids=x, attention_mask=mask, labels=y).loss / stage_conf.grad_accum
                loss.backward()
                total += float(loss.detach())
                result.tokens += int(mask.sum())
            opt.step()
            sched.step()
            result.loss.append(total)
            if on_step:
                on_step(step, total)
            if step % 20 == 0 or step == stage_conf.steps - 1:
                log.info("%s step %d/%d loss %.4f (%.1f s)", stage, step + 1, stage_conf.steps, total,
                         time.perf_counter() - start)
    finally:
        for h in hooks:
            h.remove()
    result.seconds = time.perf_counter() - start
    result.peak_memory_mb = (torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else
                             resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(True)
    if first_new is not None:
        after = fingerprint(model, first_new)
        result.frozen_changed = sorted(k for k in before if before[k] != after[k])
        if result.frozen_changed:
            raise FreezeViolated(f"stage 1 changed frozen weights: {result.frozen_changed[:5]}")
    return result
