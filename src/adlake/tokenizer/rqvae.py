"""The RQ-VAE tokenizer (AutoCut): MLP encoder → vector-quantize-pytorch ResidualVQ → MLP decoder.

Choices, each measured on demo-corpus embeddings (README, issue 5):

* Encoder and decoder are a linear path plus a GELU MLP branch whose last layer starts at zero; the
  linear paths start as the training set's PCA (project to ``code_dim``, and back), so training starts
  from a well-conditioned latent rather than a random one.
* Codebooks are Euclidean by default. With ``use_cosine_sim`` every level emits a unit-norm code, so
  the residual cannot shrink from level to level (held-out cosine 0.957 against 0.976 Euclidean).
* k-means initialisation sees the whole training set (up to ``kmeans_init_vectors``): the library runs
  it on the first batch it is given, so the first forward pass is one pass over that sample.
* Dead-code replacement is on (the library leaves it off). Its threshold compares a code's moving
  average of assignments per batch, so it is set relative to the expected count per code.
* The loss is ``1 - cos(reconstruction, input)`` per vector, averaged over the batch, plus the
  commitment terms (weighted); neither is averaged over input dimensions, so commitment cannot dominate.
* A last phase freezes the codes and fine-tunes the decoder on them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class RqvaeConfig:
    input_dim: int
    levels: int = 8
    codebook_size: int = 256
    code_dim: int = 64  # the latent the residual quantizer works in
    hidden_dim: int = 512  # the MLP branches of encoder and decoder
    use_cosine_sim: bool = False
    kmeans_iters: int = 25
    kmeans_init_vectors: int = 50_000
    dead_code_threshold: float = 1.0  # × the expected assignments per code and batch (batch / codebook_size)
    decay: float = 0.8  # codebook moving averages
    commitment_weight: float = 0.1
    rotation_trick: bool = True
    epochs: int = 150
    decoder_epochs: int = 100  # codes frozen, decoder fine-tuned
    batch_size: int = 4096  # 0: the whole training set per step
    lr: float = 3e-3
    decoder_lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0


class _LinearPlusMlp(nn.Module):
    """A linear path (PCA-initialised) plus a GELU MLP branch that starts at zero."""

    def __init__(self, d_in: int, d_out: int, hidden: int):
        super().__init__()
        self.linear = nn.Linear(d_in, d_out)
        self.mlp = nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(), nn.Linear(hidden, d_out))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x) + self.mlp(x)


class Rqvae(nn.Module):
    def __init__(self, cfg: RqvaeConfig):
        from vector_quantize_pytorch import ResidualVQ

        super().__init__()
        self.cfg = cfg
        self.encoder = _LinearPlusMlp(cfg.input_dim, cfg.code_dim, cfg.hidden_dim)
        self.decoder = _LinearPlusMlp(cfg.code_dim, cfg.input_dim, cfg.hidden_dim)
        self.quantizer = ResidualVQ(
            dim=cfg.code_dim, num_quantizers=cfg.levels, codebook_size=cfg.codebook_size,
            use_cosine_sim=cfg.use_cosine_sim, kmeans_init=True, kmeans_iters=cfg.kmeans_iters,
            threshold_ema_dead_code=cfg.dead_code_threshold,  # rescaled to the batch in set_batch_size
            decay=cfg.decay, commitment_weight=cfg.commitment_weight, rotation_trick=cfg.rotation_trick)

    def init_pca(self, x: np.ndarray) -> None:
        """Linear paths := the PCA of ``x`` (the encoder projects onto the top axes, the decoder maps back)."""
        mean = x.mean(0)
        _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
        axes = np.zeros((self.cfg.code_dim, x.shape[1]), np.float32)
        k = min(self.cfg.code_dim, len(vt))  # fewer vectors than latent dims: the rest start at zero
        axes[:k] = vt[:k]
        with torch.no_grad():
            self.encoder.linear.weight.copy_(torch.from_numpy(axes))
            self.encoder.linear.bias.copy_(torch.from_numpy(-(axes @ mean).astype(np.float32)))
            self.decoder.linear.weight.copy_(torch.from_numpy(axes.T.copy()))
            self.decoder.linear.bias.copy_(torch.from_numpy(mean.astype(np.float32)))

    def set_batch_size(self, batch: int) -> None:
        """Dead-code threshold in assignments per batch: ``dead_code_threshold`` × batch / codebook_size."""
        threshold = max(self.cfg.dead_code_threshold * batch / self.cfg.codebook_size, 1e-6)
        for layer in self.quantizer.layers:
            layer._codebook.threshold_ema_dead_code = threshold
            layer._codebook.reset_cluster_size = threshold

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        quantized, codes, commit = self.quantizer(self.encoder(x).unsqueeze(1))
        return self.decoder(quantized.squeeze(1)), codes.squeeze(1), commit.sum()

    def save(self, path) -> None:
        torch.save({"config": asdict(self.cfg), "state_dict": self.state_dict()}, path)

    @classmethod
    def load(cls, path) -> Rqvae:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        model = cls(RqvaeConfig(**blob["config"]))
        model.load_state_dict(blob["state_dict"])
        return model.eval()

    @torch.inference_mode()
    def encode(self, x: np.ndarray, batch: int = 65_536) -> np.ndarray:
        """Vectors (N × input_dim) → codes (N × levels)."""
        self.eval()
        out = []
        for i in range(0, len(x), batch):
            z = self.encoder(torch.from_numpy(np.asarray(x[i: i + batch], np.float32))).unsqueeze(1)
            out.append(self.quantizer(z)[1].squeeze(1).cpu().numpy())
        return np.concatenate(out).astype(np.int16) if out else np.zeros((0, self.cfg.levels), np.int16)

    def quantized(self, codes: np.ndarray) -> torch.Tensor:
        idx = torch.from_numpy(np.asarray(codes, np.int64)).unsqueeze(1)
        return self.quantizer.get_output_from_indices(idx).squeeze(1)

    @torch.inference_mode()
    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Codes (N × levels) → L2-normalised vectors in the input space, for retrieval."""
        self.eval()
        out = self.decoder(self.quantized(codes)).cpu().numpy()
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return (a * b).sum(axis=1)


@dataclass
class CodeStats:
    reconstruction_cosine: float
    utilization: list[float]  # per level: share of the codebook used on the evaluated vectors
    perplexity: list[float]  # per level: exp(entropy of code usage)
    distinct_tuples: float  # distinct code tuples / vectors

    def as_dict(self) -> dict:
        return asdict(self)


def usage_stats(codes: np.ndarray, codebook_size: int) -> tuple[list[float], list[float], float]:
    utilization, perplexity = [], []
    for level in range(codes.shape[1]):
        counts = np.bincount(codes[:, level].astype(np.int64), minlength=codebook_size)
        p = counts[counts > 0] / counts.sum()
        utilization.append(round(float((counts > 0).mean()), 4))
        perplexity.append(round(float(math.exp(-(p * np.log(p)).sum())), 2))
    distinct = len({tuple(c) for c in codes.tolist()}) / max(len(codes), 1)
    return utilization, perplexity, round(distinct, 4)


def code_stats(model: Rqvae, x: np.ndarray) -> CodeStats:
    codes = model.encode(x)
    utilization, perplexity, distinct = usage_stats(codes, model.cfg.codebook_size)
    return CodeStats(round(float(cosine(model.decode(codes), x).mean()), 4), utilization, perplexity, distinct)


@dataclass
class TrainResult:
    model: Rqvae
    losses: list[float] = field(default_factory=list)  # per epoch, both phases: mean 1 - cos on the training set
    heldout_cosine: list[float] = field(default_factory=list)  # per epoch, both phases


def train(x_train: np.ndarray, x_heldout: np.ndarray, cfg: RqvaeConfig,
          on_epoch: Callable[[int, float, float], None] | None = None) -> TrainResult:
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    x_train = np.ascontiguousarray(x_train, np.float32)
    data = torch.from_numpy(x_train)
    n = len(data)
    batch = n if cfg.batch_size <= 0 else min(cfg.batch_size, n)
    model = Rqvae(cfg)
    model.init_pca(x_train)
    result = TrainResult(model)

    def record(epoch: int, loss: float) -> None:
        held = round(float(cosine(model.decode(model.encode(x_heldout)), x_heldout).mean()), 5)
        result.losses.append(round(loss, 5))
        result.heldout_cosine.append(held)
        if on_epoch:
            on_epoch(epoch, loss, held)

    # k-means init on (a sample of) the whole training set: the library initialises on the first batch
    model.train()
    init = data if n <= cfg.kmeans_init_vectors else data[torch.from_numpy(
        rng.choice(n, cfg.kmeans_init_vectors, replace=False))]
    model.set_batch_size(len(init))
    with torch.no_grad():
        model(init)
    model.set_batch_size(batch)

    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = max(cfg.epochs * math.ceil(n / batch), 1)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps, pct_start=0.1)
    for epoch in range(cfg.epochs):
        model.train()
        order = torch.from_numpy(rng.permutation(n))
        total = 0.0
        for i in range(0, n, batch):
            x = data[order[i: i + batch]]
            if len(x) < 2:
                continue
            recon, _, commit = model(x)
            reconstruction = (1 - F.cosine_similarity(recon, x, dim=1)).mean()
            opt.zero_grad(set_to_none=True)
            (reconstruction + commit).backward()
            opt.step()
            schedule.step()
            total += float(reconstruction.detach()) * len(x)
        record(epoch, total / n)

    if cfg.decoder_epochs:  # codes frozen: the decoder learns the best vector for each code tuple
        with torch.no_grad():
            frozen = model.quantized(model.encode(x_train))
        opt = torch.optim.AdamW(model.decoder.parameters(), lr=cfg.decoder_lr, weight_decay=cfg.weight_decay)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.decoder_epochs)
        for epoch in range(cfg.decoder_epochs):
            model.decoder.train()
            order = torch.from_numpy(rng.permutation(n))
            total = 0.0
            for i in range(0, n, batch):
                idx = order[i: i + batch]
                loss = (1 - F.cosine_similarity(model.decoder(frozen[idx]), data[idx], dim=1)).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
            schedule.step()
            record(cfg.epochs + epoch, total / n)
    model.eval()
    return result


@dataclass
class Baseline:
    """FAISS residual k-means with the tokenizer's budget, on the same vectors."""
    heldout_cosine: float
    utilization: list[float] | None  # per level, on the training vectors (as the tokenizer's own is measured);
    # None: the codes are not one byte per level (only at 256 codes), so they are not unpacked here


def residual_kmeans_baseline(x_train: np.ndarray, x_heldout: np.ndarray, levels: int, codebook_size: int,
                             seed: int = 0) -> Baseline:
    """The baseline with the same budget: FAISS residual k-means (levels × log2(codebook_size) bits)."""
    import faiss

    x_train = np.ascontiguousarray(x_train, np.float32)
    x_heldout = np.ascontiguousarray(x_heldout, np.float32)
    bits = int(math.log2(codebook_size))
    rq = faiss.ResidualQuantizer(x_train.shape[1], levels, bits)
    rq.cp.seed = seed
    if len(x_train) < x_train.shape[1]:
        # FAISS's default training fits a d × d PCA first and refuses fewer vectors than dimensions:
        # plain residual k-means then (the beam search of the encoding is unchanged)
        rq.train_type = faiss.ResidualQuantizer.Train_default
    rq.train(x_train)
    cos = round(float(cosine(rq.decode(rq.compute_codes(x_heldout)), x_heldout).mean()), 4)
    if bits != 8:  # the packed codes are one byte per level only at 256 codes
        return Baseline(cos, None)
    utilization, _, _ = usage_stats(rq.compute_codes(x_train).astype(np.int64), codebook_size)
    return Baseline(cos, utilization)
