"""Tokenization throughput: the RQ-VAE encoder (vectors → 8 codes) against FAISS residual k-means encoding.

Both quantizers get the same 8 × 256 budget and the same frame-like vectors (clustered 1280-d unit
vectors: near-duplicates around shot centres); the FAISS ResidualQuantizer's ``compute_codes`` (beam
search over the residual codebooks) is the baseline measured in the same run. The token-string step
and the full tokenize path (codes → strings → gold.tokens through delta-rs) are timed too.
"""

from __future__ import annotations

import datetime as dt
import os
import time

import numpy as np


def frame_like(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(8, n // 40), dim)).astype(np.float32)
    x = centres[rng.integers(0, len(centres), n)] + 0.35 * rng.normal(size=(n, dim)).astype(np.float32)
    x = np.maximum(x, 0)  # post-ReLU features, as a CNN's pooled output
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def run(vectors: int | None = None) -> None:
    import faiss
    import torch

    from adlake.config import get_settings
    from adlake.tokenizer.rqvae import RqvaeConfig, train
    from adlake.tokenizer.vocab import code_tokens

    n = vectors or int(os.environ.get("ADLAKE_BENCH_VECTORS", "50000"))
    conf = get_settings().tokenizer.model
    dim, n_train = 1280, 4096
    x = frame_like(n + n_train, dim)
    train_x, x = x[:n_train], x[n_train:]
    cfg = RqvaeConfig(input_dim=dim, **{**conf.model_dump(), "epochs": 2, "decoder_epochs": 0})
    model = train(train_x, train_x[:256], cfg).model  # throughput does not depend on how well it trained
    t0 = time.perf_counter()
    codes = model.encode(x)
    rq_vps = n / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    strings = [code_tokens("video", c) for c in codes]
    str_vps = n / (time.perf_counter() - t0)

    rq = faiss.ResidualQuantizer(dim, cfg.levels, int(np.log2(cfg.codebook_size)))
    t0 = time.perf_counter()
    rq.train(train_x[:2048])
    faiss_train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    rq.compute_codes(x)
    faiss_vps = n / (time.perf_counter() - t0)
    print(f"\n== tokenization ({n} frame-like 1280-d vectors, {cfg.levels} x {cfg.codebook_size} codes, CPU, "
          f"{torch.get_num_threads()} threads) {dt.date.today()}")
    print(f"  FAISS ResidualQuantizer.compute_codes (baseline)  {faiss_vps:9.0f} vectors/s  (trained in "
          f"{faiss_train_s:.0f} s on 2048)")
    print(f"  RQ-VAE encode (MLP + ResidualVQ)                   {rq_vps:9.0f} vectors/s   ratio {rq_vps / faiss_vps:.2f}")
    print(f"  codes → token strings                              {str_vps:9.0f} vectors/s   ({len(strings[0])} "
          f"characters per vector)")
