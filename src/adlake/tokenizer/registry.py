"""Registered tokenizers: the MLflow registered model per modality, its ``production`` alias, loading a version."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from typing import Any

import numpy as np

from adlake.provenance import RunContext
from adlake.registry import PRODUCTION as PRODUCTION  # re-exported: the alias consumers load
from adlake.registry import GatedRegistry, NoVersion

MODEL_NAMES = {"video": "adlake-rqvae-video", "audio": "adlake-rqvae-audio"}


def registry(ctx: RunContext, modality: str) -> GatedRegistry:
    return GatedRegistry(ctx, MODEL_NAMES[modality], "adlake RQ-VAE tokenizer; alias production = gated")


def production_version(ctx: RunContext, modality: str) -> str | None:
    """The registered version the ``production`` alias points at, or None when there is none yet.
    Raises ServiceUnavailable when MLflow does not answer."""
    mv = registry(ctx, modality).production()
    return None if mv is None else str(mv.version)


def tokenizer_id(modality: str, version: str | int) -> str:
    return f"{MODEL_NAMES[modality]}/{version}"


@dataclass
class Tokenizer:
    """One registered tokenizer version: vectors → codes → token strings, and codes → vectors."""

    modality: str
    version: str
    model: Any  # adlake.tokenizer.rqvae.Rqvae
    encoder_id: str
    meta: dict

    @property
    def tokenizer_id(self) -> str:
        return tokenizer_id(self.modality, self.version)

    @property
    def levels(self) -> int:
        return self.model.cfg.levels

    def encode(self, vectors: np.ndarray) -> np.ndarray:
        return self.model.encode(vectors)

    def tokens(self, codes: np.ndarray) -> list[str]:
        from adlake.tokenizer.vocab import code_tokens

        return [code_tokens(self.modality, c) for c in codes]

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Codes (N × levels) → L2-normalised vectors in the encoder's space, for retrieval."""
        return self.model.decode(codes)

    def decode_tokens(self, text: str) -> np.ndarray:
        from adlake.tokenizer.vocab import parse_code_tokens

        modality, codes = parse_code_tokens(text, self.levels)
        if modality != self.modality:
            raise ValueError(f"{modality} tokens given to the {self.modality} tokenizer")
        return self.decode(codes)


def load_tokenizer(ctx: RunContext, modality: str, version: str | int | None = None) -> Tokenizer:
    """A registered version (default: the one ``production`` points at), from its MLflow run's artifacts."""
    from adlake.tokenizer.rqvae import Rqvae

    reg = registry(ctx, modality)
    mv = reg.production() if version is None else reg.get(version)
    if mv is None:
        wanted = "production version yet (run train_tokenizer)" if version is None else f"version {version}"
        raise NoVersion(f"{reg.name} has no {wanted}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = reg.download(mv, "tokenizer", tmp)
        meta = json.loads((folder / "tokenizer.json").read_text())
        model = Rqvae.load(folder / "model.pt")
    return Tokenizer(modality, str(mv.version), model, meta["encoder_id"], meta)
