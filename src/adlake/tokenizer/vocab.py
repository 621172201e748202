"""Token strings and the vocabulary an LLM tokenizer is extended with (the contract's Tokens section).

Video codes are ``<v_{level}_{code}>``, audio codes ``<a_{level}_{code}>``; markers are special tokens.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

PREFIX = {"video": "v", "audio": "a"}
MODALITY_OF_PREFIX = {v: k for k, v in PREFIX.items()}

# Every marker a sequence may contain; a vocabulary file lists all of them.
SPECIAL_TOKENS: tuple[str, ...] = (
    "<|ad_start|>", "<|ad_end|>",
    "<|clip_start|>", "<|clip_end|>",
    "<|text_start|>", "<|text_end|>",
    "<|video_start|>", "<|video_end|>",
    "<|frame_start|>", "<|frame_end|>",
    "<|audio_start|>", "<|audio_end|>",
)
SPECIAL = {t.strip("<|>"): t for t in SPECIAL_TOKENS}  # e.g. SPECIAL["frame_start"]

_CODE_TOKEN = re.compile(r"<([va])_(\d+)_(\d+)>")


def code_tokens(modality: str, codes: np.ndarray | list[int]) -> str:
    """One vector's codes → its token string, level by level."""
    p = PREFIX[modality]
    return "".join(f"<{p}_{level}_{int(code)}>" for level, code in enumerate(codes))


def parse_code_tokens(text: str, levels: int) -> tuple[str, np.ndarray]:
    """Token string → (modality, codes N × levels); raises ValueError on anything but whole code tuples."""
    found = _CODE_TOKEN.findall(text)
    if not found or _CODE_TOKEN.sub("", text).strip():
        raise ValueError(f"not a string of code tokens: {text[:80]!r}")
    prefixes = {p for p, _, _ in found}
    if len(prefixes) != 1:
        raise ValueError(f"mixed modalities in one token string: {sorted(prefixes)}")
    level_seq = [int(lv) for _, lv, _ in found]
    if len(found) % levels or level_seq != list(range(levels)) * (len(found) // levels):
        raise ValueError(f"code tokens must come in whole tuples of levels 0..{levels - 1}")
    codes = np.array([int(c) for _, _, c in found], np.int64).reshape(-1, levels)
    return MODALITY_OF_PREFIX[prefixes.pop()], codes


def vocabulary(modality: str, levels: int, codebook_size: int) -> dict:
    """The tokens one tokenizer version adds: exactly levels × codes code tokens, plus every special token."""
    p = PREFIX[modality]
    return {"modality": modality, "levels": levels, "codebook_size": codebook_size,
            "code_tokens": [f"<{p}_{lv}_{c}>" for lv in range(levels) for c in range(codebook_size)],
            "special_tokens": list(SPECIAL_TOKENS)}


def write_vocabulary(path: Path, modality: str, levels: int, codebook_size: int) -> Path:
    path.write_text(json.dumps(vocabulary(modality, levels, codebook_size), indent=1))
    return path
