"""Narrations placed on clips as SSMP does: a dynamic programme that keeps both orders, puts a narration
only on a clip at least as long as it, and maximises the summed narration–clip similarity."""

from __future__ import annotations

import re

import numpy as np


def place_narrations(similarity: np.ndarray, narration_s: list[float], clip_s: list[float]) -> list[int]:
    """For narrations i (in order) the clips j (increasing) they go on; ``similarity`` is narrations × clips.
    Raises ValueError when no order-keeping placement fits every narration."""
    m, k = similarity.shape
    if m != len(narration_s) or k != len(clip_s):
        raise ValueError("similarity must be narrations × clips")
    neg = -np.inf
    best = np.full((m + 1, k + 1), neg)
    best[0, :] = 0.0
    for i in range(1, m + 1):
        for j in range(i, k + 1):
            skip = best[i, j - 1]
            take = best[i - 1, j - 1] + similarity[i - 1, j - 1] if narration_s[i - 1] <= clip_s[j - 1] else neg
            best[i, j] = max(skip, take)
    if best[m, k] == neg:
        raise ValueError(f"{m} narrations do not fit on {k} clips in order (each needs a clip at least as long)")
    placed, j = [], k
    for i in range(m, 0, -1):
        while best[i, j] == best[i, j - 1]:  # the clip was skipped
            j -= 1
        placed.append(j - 1)
        j -= 1
    return placed[::-1]


def text_similarity(narrations: list[str], scripts: list[str | None]) -> np.ndarray:
    """Word overlap (Jaccard) of each narration with each clip's own script (0 where a clip has none)."""
    def words(text: str | None) -> set[str]:
        return set(re.findall(r"\w+", (text or "").lower()))

    out = np.zeros((len(narrations), len(scripts)))
    for i, n in enumerate(narrations):
        for j, s in enumerate(scripts):
            a, b = words(n), words(s)
            out[i, j] = len(a & b) / len(a | b) if a and b else 0.0
    return out
