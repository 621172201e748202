"""SSMP: a shot-sequence model that selects and orders an ad's clips from clip vectors alone.

A bidirectional Transformer encoder reads a context token (the normalised mean of the candidate
clips) and k clip slots in playing order, some of them masked, and predicts a vector for every slot.
Training masks a self-paced share of the slots and scores each masked prediction against the ad's
own clips plus distractor clips of other ads (cross-entropy over cos / temperature). Decoding starts
with every slot masked and fills them greedily, optionally followed by self-correction rounds that
re-mask and re-fill the least confident slots.

Pure torch/numpy; clip vectors are L2-normalised on the way in. The same seed on the same device
and thread count gives bit-identical weights.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class SSMPConfig:
    """Model size, training and decoding settings (the `train.ssmp` config section)."""

    width: int = 128
    layers: int = 3
    heads: int = 4
    ffn_mult: float = 2.0  # feed-forward hidden size = int(width * ffn_mult)
    max_len: int = 16  # longer sequences are truncated
    steps: int = 300
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.01
    seed: int = 0
    temperature: float = 0.1  # logits = cos / temperature
    distractor_ratio: float = 1.0  # training distractors per clip of the ad
    mask_ratio_init: float = 0.3
    mask_ratio_min: float = 0.15
    mask_ratio_max: float = 0.9
    momentum: float = 0.9  # of both the mask ratio (mu_t) and the accuracy (mu_a)
    target_accuracy: float = 0.6  # above it (mu_a) the mask ratio rises, below it it falls
    ratio_step: float = 0.05
    correction_iters: int = 4  # self-correction rounds after the greedy fill


# --------------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------------


def _rope_tables(n: int, head_dim: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """cos and sin of the rotary angles for positions 0..n-1, each [n, head_dim / 2]."""
    freqs = 10000.0 ** (-torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim)
    angles = torch.arange(n, device=device, dtype=torch.float32)[:, None] * freqs[None]
    return angles.cos(), angles.sin()


def _rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate pairs (first half, second half) of the last dimension of x [B, H, N, D] by position."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class _Block(nn.Module):
    """Pre-norm block: full self-attention with RoPE, then a SwiGLU feed-forward."""

    def __init__(self, width: int, heads: int, hidden: int) -> None:
        super().__init__()
        self.heads = heads
        self.attn_norm = nn.RMSNorm(width)
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.attn_out = nn.Linear(width, width, bias=False)
        self.ffn_norm = nn.RMSNorm(width)
        self.gate_up = nn.Linear(width, 2 * hidden, bias=False)
        self.down = nn.Linear(hidden, width, bias=False)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, allowed: Tensor) -> Tensor:
        b, n, width = x.shape
        q, k, v = self.qkv(self.attn_norm(x)).view(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        q, k = _rope(q, cos, sin), _rope(k, cos, sin)
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
        x = x + self.attn_out(attended.transpose(1, 2).reshape(b, n, width))
        gate, up = self.gate_up(self.ffn_norm(x)).chunk(2, dim=-1)
        return x + self.down(F.silu(gate) * up)


class ShotEncoder(nn.Module):
    """Bidirectional encoder over [context token, slot 1..k]; predicts an L2-normalised vector per slot."""

    def __init__(
        self, dim: int, width: int = 128, layers: int = 3, heads: int = 4, ffn_mult: float = 2.0
    ) -> None:
        super().__init__()
        if width % heads or (width // heads) % 2:
            raise ValueError(f"width {width} must split into {heads} heads of even size")
        self.dim, self.head_dim = dim, width // heads
        self.in_proj = nn.Linear(dim, width)
        self.mask = nn.Parameter(torch.randn(width) * 0.02)  # the input of a masked slot
        self.context_type = nn.Parameter(torch.randn(width) * 0.02)  # added to the context token
        self.blocks = nn.ModuleList(_Block(width, heads, int(width * ffn_mult)) for _ in range(layers))
        self.norm = nn.RMSNorm(width)
        self.out_proj = nn.Linear(width, dim)

    def forward(self, context: Tensor, slots: Tensor, masked: Tensor, pad: Tensor) -> Tensor:
        """context [B, dim], slots [B, K, dim], masked and pad [B, K] bool → predictions [B, K, dim]."""
        x_slots = torch.where(masked[..., None], self.mask, self.in_proj(slots))
        x = torch.cat([(self.in_proj(context) + self.context_type)[:, None], x_slots], dim=1)
        cos, sin = _rope_tables(x.shape[1], self.head_dim, x.device)
        keep = torch.cat([torch.zeros_like(pad[:, :1]), pad], dim=1).logical_not()
        for block in self.blocks:
            x = block(x, cos, sin, keep[:, None, None, :])
        return F.normalize(self.out_proj(self.norm(x[:, 1:])), dim=-1)


# --------------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------------


class MaskSchedule:
    """The self-paced mask ratio with momentum on the ratio (mu_t) and on the accuracy (mu_a).

    Starts at ratio = mu_t = mask_ratio_init and mu_a = 0, so the ratio first falls until the
    accuracy average has climbed past the target. Each update(accuracy):
        mu_a  = momentum * mu_a + (1 - momentum) * accuracy
        ratio = clip(ratio + step if mu_a > target else ratio - step, minimum, maximum)
        mu_t  = momentum * mu_t + (1 - momentum) * ratio
    and returns mu_t, the ratio the next step masks with.
    """

    def __init__(
        self, init: float, minimum: float, maximum: float, momentum: float, target: float, step: float
    ) -> None:
        self.minimum, self.maximum, self.momentum = minimum, maximum, momentum
        self.target, self.step = target, step
        self.ratio = self.mu_t = init
        self.mu_a = 0.0

    @classmethod
    def from_config(cls, conf: SSMPConfig) -> MaskSchedule:
        return cls(conf.mask_ratio_init, conf.mask_ratio_min, conf.mask_ratio_max, conf.momentum,
                   conf.target_accuracy, conf.ratio_step)

    def update(self, accuracy: float) -> float:
        self.mu_a = self.momentum * self.mu_a + (1 - self.momentum) * accuracy
        raw = self.ratio + self.step if self.mu_a > self.target else self.ratio - self.step
        self.ratio = min(self.maximum, max(self.minimum, raw))
        self.mu_t = self.momentum * self.mu_t + (1 - self.momentum) * self.ratio
        return self.mu_t


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _batch(rng: np.random.Generator, seqs: list[np.ndarray], starts: np.ndarray, pool: np.ndarray,
           conf: SSMPConfig, ratio: float) -> dict[str, np.ndarray]:
    """A training batch: random slots masked, candidates = the ad's clips (first) + other ads' clips."""
    picks = rng.choice(len(seqs), size=min(conf.batch_size, len(seqs)), replace=False)
    rows = []
    for i in picks:
        k = len(seqs[i])
        masked = np.zeros(k, dtype=bool)
        masked[rng.choice(k, size=min(k, max(1, round(ratio * k))), replace=False)] = True
        n_other = min(round(conf.distractor_ratio * k), len(pool) - k)
        other = rng.choice(len(pool) - k, size=n_other, replace=False)
        other = other + k * (other >= starts[i])  # skip over the ad's own clips in the pool
        rows.append((seqs[i], masked, np.concatenate([seqs[i], pool[other]])))
    b, dim = len(rows), pool.shape[1]
    k_max, c_max = max(len(r[0]) for r in rows), max(len(r[2]) for r in rows)
    out = {"slots": np.zeros((b, k_max, dim), np.float32), "masked": np.zeros((b, k_max), bool),
           "pad": np.ones((b, k_max), bool), "cands": np.zeros((b, c_max, dim), np.float32),
           "cand_pad": np.ones((b, c_max), bool), "context": np.zeros((b, dim), np.float32)}
    for j, (clips, masked, cands) in enumerate(rows):
        k, c = len(clips), len(cands)
        out["slots"][j, :k], out["masked"][j, :k], out["pad"][j, :k] = clips, masked, False
        out["cands"][j, :c], out["cand_pad"][j, :c] = cands, False
        out["context"][j] = _normalise(cands.mean(axis=0))
    return out


def train_ssmp(
    sequences: list[np.ndarray],
    conf: SSMPConfig,
    device: str = "cpu",
    on_step: Callable[[int, dict], None] | None = None,
) -> tuple[ShotEncoder, dict]:
    """Train on ads given as [k_i, dim] clip vectors in playing order; returns (model in eval mode, history).

    Sequences of fewer than 2 clips are skipped, longer than max_len truncated; both are counted.
    """
    started = time.perf_counter()
    seqs = [_normalise(s)[: conf.max_len] for s in sequences if len(s) >= 2]
    skipped = sum(len(s) < 2 for s in sequences)
    truncated = sum(len(s) > conf.max_len for s in sequences)
    if not seqs:
        raise ValueError("no sequence has 2 or more clips")
    if any(s.ndim != 2 for s in seqs) or len({s.shape[1] for s in seqs}) > 1:
        raise ValueError("each sequence must be a [k, dim] array, with the same dim for all")
    pool = np.concatenate(seqs)
    starts = np.cumsum([0] + [len(s) for s in seqs[:-1]])
    rng = np.random.default_rng(conf.seed)
    with torch.random.fork_rng(devices=[]):  # seeded init without touching the caller's RNG
        torch.manual_seed(conf.seed)
        model = ShotEncoder(pool.shape[1], conf.width, conf.layers, conf.heads, conf.ffn_mult)
    model.to(device).train()
    optimiser = torch.optim.AdamW(model.parameters(), lr=conf.lr, weight_decay=conf.weight_decay)
    schedule = MaskSchedule.from_config(conf)
    ratio = schedule.mu_t
    history: dict = {"loss": [], "accuracy": [], "mask_ratio": []}
    for step in range(conf.steps):
        arrays = _batch(rng, seqs, starts, pool, conf, ratio)
        batch = {name: torch.from_numpy(a).to(device) for name, a in arrays.items()}
        pred = model(batch["context"], batch["slots"], batch["masked"], batch["pad"])
        logits = torch.einsum("bkd,bcd->bkc", pred, batch["cands"]) / conf.temperature
        logits = logits.masked_fill(batch["cand_pad"][:, None, :], float("-inf"))[batch["masked"]]
        target = torch.arange(pred.shape[1], device=device).expand_as(batch["masked"])[batch["masked"]]
        loss = F.cross_entropy(logits, target)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        accuracy = float((logits.argmax(-1) == target).float().mean())
        record = {"loss": loss.item(), "accuracy": accuracy, "mask_ratio": ratio}
        for name, value in record.items():
            history[name].append(value)
        if on_step is not None:
            on_step(step, record)
        ratio = schedule.update(record["accuracy"])
    history.update(skipped_short=skipped, truncated=truncated, sequences=len(seqs), steps=conf.steps,
                   seconds=time.perf_counter() - started)
    return model.eval(), history


# --------------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------------


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters(), torch.empty(0)).device


def _predict(model: nn.Module, cands: Tensor, rows: list[list[int]]) -> Tensor:
    """Predictions [B, K, dim] for assignments of candidate indices to slots (-1: masked)."""
    index = torch.tensor(rows, device=cands.device)
    context = F.normalize(cands.mean(dim=0), dim=-1).expand(len(rows), -1)
    return model(context, cands[index.clamp(min=0)], index < 0, torch.zeros_like(index, dtype=torch.bool))


def _fill(model: nn.Module, cands: Tensor, assignment: list[int], temperature: float) -> list[int]:
    """Fill the masked slots (-1) one at a time with the most confident (slot, unused candidate) pair."""
    assignment = list(assignment)
    while -1 in assignment:
        pred = _predict(model, cands, [assignment])[0]
        open_slots = [i for i, a in enumerate(assignment) if a < 0]
        free = [j for j in range(len(cands)) if j not in assignment]
        probs = torch.softmax(pred[open_slots] @ cands[free].T / temperature, dim=-1).cpu().numpy()
        slot, cand = divmod(int(np.argmax(probs)), len(free))  # ties: the first slot, then candidate
        assignment[open_slots[slot]] = free[cand]
    return assignment


def _log_confidence(model: nn.Module, cands: Tensor, assignment: list[int], temperature: float) -> np.ndarray:
    """Per slot: log p(chosen candidate) with that slot masked, the others visible, and the choice made
    among the candidates the other slots do not use."""
    rows = [[-1 if s == i else a for s, a in enumerate(assignment)] for i in range(len(assignment))]
    pred = _predict(model, cands, rows)
    out = np.zeros(len(assignment))
    for i, chosen in enumerate(assignment):
        free = [j for j in range(len(cands)) if j == chosen or j not in assignment]
        logp = torch.log_softmax(pred[i, i] @ cands[free].T / temperature, dim=-1)
        out[i] = float(logp[free.index(chosen)])
    return out


@torch.no_grad()
def slot_confidence(model: nn.Module, candidates: np.ndarray, assignment: list[int],
                    temperature: float = 0.1) -> np.ndarray:
    """The probability the model gives each slot's chosen candidate with all other slots visible."""
    model.eval()
    cands = torch.from_numpy(_normalise(candidates)).to(_device(model))
    return np.exp(_log_confidence(model, cands, list(assignment), temperature))


def remask_lowest(confidence: np.ndarray, m: int) -> list[int]:
    """The m slots of lowest confidence (ties: the lower slot index first), in ascending slot order."""
    order = np.argsort(np.asarray(confidence), kind="stable")
    return sorted(int(i) for i in order[: max(0, m)])


@torch.no_grad()
def decode(
    model: nn.Module,
    candidates: np.ndarray,
    k: int,
    method: Literal["greedy", "self_correct"] = "self_correct",
    conf: SSMPConfig | None = None,
) -> list[int]:
    """Pick min(k, n) distinct candidate indices in playing order, starting from all slots masked.

    greedy: fix the single most confident (slot, candidate) pair per round, never revised.
    self_correct: then correction_iters rounds re-mask the m least confident slots (m decays from k/2
    to 1) and re-fill them greedily; a round is kept only if its total log-confidence is not lower.
    """
    conf = conf or SSMPConfig()
    if method not in ("greedy", "self_correct"):
        raise ValueError(f"unknown decode method {method!r}")
    k = min(k, len(candidates))
    if k <= 0:
        return []
    model.eval()
    cands = torch.from_numpy(_normalise(candidates)).to(_device(model))
    assignment = _fill(model, cands, [-1] * k, conf.temperature)
    if method == "greedy":
        return assignment
    log_conf = _log_confidence(model, cands, assignment, conf.temperature)
    for i in range(conf.correction_iters):
        m = max(1, round(k * (1 - i / conf.correction_iters) * 0.5))
        trial = list(assignment)
        for slot in remask_lowest(log_conf, m):
            trial[slot] = -1
        trial = _fill(model, cands, trial, conf.temperature)
        trial_conf = _log_confidence(model, cands, trial, conf.temperature)
        if trial_conf.sum() >= log_conf.sum():
            assignment, log_conf = trial, trial_conf
    return assignment
