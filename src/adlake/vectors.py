"""Small helpers on embedding vectors and table rows that several stages share (the index, the
training sets, the tokenizer), so that no stage imports another stage's internals."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np


def unit(x: np.ndarray) -> np.ndarray:
    """Rows (or one vector) scaled to unit L2 norm; zero rows stay zero."""
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.where(norms > 0, norms, 1)).astype(np.float32)


def mean_by_group(groups: list[str], vectors: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Groups in sorted order, each with the L2-normalised mean of its rows."""
    order = np.argsort(np.array(groups, dtype=object), kind="stable")
    keys = [groups[i] for i in order]
    starts = [i for i in range(len(keys)) if i == 0 or keys[i] != keys[i - 1]]
    sums = np.add.reduceat(vectors[order].astype(np.float64), starts, axis=0)
    return [keys[i] for i in starts], unit(sums)


def latest_per_key(rows: Iterable[dict[str, Any]], key: str = "ad_id", by: str = "crawl_date"
                   ) -> dict[str, dict[str, Any]]:
    """The row with the greatest `by` for each `key` (an ad's latest crawl), independent of row order."""
    latest: dict[str, dict[str, Any]] = {}
    for row in sorted(rows, key=lambda r: (r[by], r[key])):
        latest[row[key]] = row
    return latest
