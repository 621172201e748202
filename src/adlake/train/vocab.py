"""The LLM's tokenizer: a base tokenizer extended with exactly the pinned tokenizer versions' vocabulary files,
and the embedding rows the new tokens get.

The base is the model folder's own tokenizer (a Qwen3's) or, for the tiny test model, a byte-level BPE trained
on the training text with every code token and marker taken out. Code tokens are added as plain tokens, the
markers as special tokens; adding a token the base already has is an error, so the count added is exact.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch

from adlake.errors import AdlakeError

CHAT_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")  # the tiny BPE's own specials (as Qwen3's)
_ADDED = re.compile(r"<[va]_\d+_\d+>|<\|[a-z_]+\|>")


class VocabularyError(AdlakeError):
    """A vocabulary file cannot extend this tokenizer (a token it already has, modalities that clash)."""


@dataclass
class Extension:
    first_id: int  # ids first_id.. are new
    code_tokens: list[str]
    special_tokens: list[str]
    expected: int  # levels × codes × modalities + specials, from the vocabulary files

    @property
    def added(self) -> int:
        return len(self.code_tokens) + len(self.special_tokens)


def plain_text(text: str) -> str:
    """Text with every code token and marker taken out (what the base BPE is trained on)."""
    return _ADDED.sub(" ", text)


def tiny_base_tokenizer(texts: Iterable[str], vocab_size: int):
    """A byte-level BPE (Hugging Face ``tokenizers``) trained on ``texts``; deterministic for the same texts."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(CHAT_SPECIALS), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator((plain_text(t) for t in texts), trainer)
    return PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   clean_up_tokenization_spaces=False)


def extend(tokenizer, vocabularies: list[dict]) -> Extension:
    """Add every code token of ``vocabularies`` (one per modality) and their markers, exactly once each."""
    from tokenizers import AddedToken

    modalities = [v["modality"] for v in vocabularies]
    if len(set(modalities)) != len(modalities):
        raise VocabularyError(f"two vocabularies of one modality: {modalities}")
    codes = [t for v in vocabularies for t in v["code_tokens"]]
    specials = list(dict.fromkeys(t for v in vocabularies for t in v["special_tokens"]))
    expected = sum(v["levels"] * v["codebook_size"] for v in vocabularies) + len(specials)
    present = sorted(t for t in (*codes, *specials) if t in tokenizer.get_vocab())
    if present:
        raise VocabularyError(f"the base tokenizer already has {len(present)} of the tokens to add, e.g. {present[:3]}")
    first = len(tokenizer)
    n_codes = tokenizer.add_tokens([AddedToken(t, normalized=False, special=False) for t in codes])
    n_special = tokenizer.add_special_tokens({"additional_special_tokens": specials},
                                             replace_additional_special_tokens=False)
    ext = Extension(first, codes, specials, expected)
    if n_codes + n_special != expected or len(tokenizer) != first + expected:
        raise VocabularyError(f"added {n_codes + n_special} tokens, the vocabulary files list {expected}")
    return ext


def code_directions(rqvae, modality_prefix: str) -> dict[str, np.ndarray]:
    """Each code token's decoded direction in the encoder's space: decoder(codebook vector) − decoder(0)."""
    with torch.no_grad():
        books = rqvae.quantizer.codebooks.detach().float()  # levels × codes × code_dim
        zero = rqvae.decoder(torch.zeros(1, books.shape[-1]))
        out = {}
        for level in range(books.shape[0]):
            vecs = (rqvae.decoder(books[level]) - zero).numpy()
            for code, v in enumerate(vecs):
                out[f"<{modality_prefix}_{level}_{code}>"] = v
    return out


def init_new_rows(model, ext: Extension, how: str, directions: dict[str, np.ndarray] | None, seed: int) -> dict:
    """Set the new rows of the input embeddings (and of an untied output layer): the mean of the old rows, or —
    ``how="codes"`` — the mean plus each code's decoded direction, projected to the width by a fixed random
    projection and scaled to the old rows' spread. Markers get the mean either way."""
    width = model.get_input_embeddings().weight.shape[1]
    rng = np.random.default_rng(seed)
    projections: dict[int, np.ndarray] = {}
    layers = [model.get_input_embeddings().weight]
    out_layer = model.get_output_embeddings()
    if out_layer is not None and out_layer.weight.data_ptr() != layers[0].data_ptr():
        layers.append(out_layer.weight)
    coded = 0
    with torch.no_grad():
        for w in layers:
            old = w[: ext.first_id].float()
            mean, spread = old.mean(0), float(old.std(0).norm())
            w[ext.first_id:] = mean.to(w.dtype)
            if how != "codes" or not directions:
                continue
            for i, token in enumerate(ext.code_tokens):
                v = directions.get(token)
                if v is None:
                    continue
                p = projections.setdefault(len(v), rng.standard_normal((len(v), width)).astype(np.float32))
                row = v @ p
                row = row / max(float(np.linalg.norm(row)), 1e-12) * spread
                w[ext.first_id + i] = (mean + torch.from_numpy(row)).to(w.dtype)
                coded += 1
    return {"init": how, "rows": ext.added, "rows_from_codes": coded // len(layers), "layers": len(layers)}
