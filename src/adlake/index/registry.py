"""Registered indexes: one MLflow registered model per kind, its ``production`` alias, loading, rollback.

An index version's run holds ``index/index.faiss``, ``index/ids.parquet`` (FAISS row → string id and
video) and ``index/index.json`` (parameters, figures, input versions). Loaded versions are cached under
``$ADLAKE_HOME/cache/index`` so that repeated searches do not download them again.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from adlake.provenance import RunContext
from adlake.registry import PRODUCTION as PRODUCTION  # re-exported: the alias search loads
from adlake.registry import PRUNED, GatedRegistry, NoVersion

MODEL_NAMES = {"clips": "adlake-index-clips", "bgm": "adlake-index-bgm"}
PRUNABLE_FILES = ("index/index.faiss", "index/ids.parquet")  # index.json and the figures stay


class NoIndex(NoVersion):
    pass


def registry(ctx: RunContext, kind: str) -> GatedRegistry:
    return GatedRegistry(ctx, MODEL_NAMES[kind], "adlake FAISS index; alias production = gated")


def production_model_version(ctx: RunContext, kind: str):
    """The registered version ``production`` points at (an MLflow ModelVersion), or None.
    Raises ServiceUnavailable when MLflow does not answer."""
    return registry(ctx, kind).production()


def versions(ctx: RunContext, kind: str) -> list[Any]:
    """Every registered version of the kind, oldest first."""
    return registry(ctx, kind).versions()


@dataclass
class Hit:
    rank: int
    id: str
    video_id: str
    score: float


@dataclass
class LoadedIndex:
    kind: str
    version: str
    index: Any
    ids: list[str]
    videos: list[str]
    meta: dict

    @property
    def index_id(self) -> str:
        return f"{MODEL_NAMES[self.kind]}/{self.version}"

    def search(self, vectors: np.ndarray, k: int) -> list[list[Hit]]:
        from adlake.vectors import unit

        scores, rows = self.index.search(unit(np.atleast_2d(vectors).astype(np.float32)), k)
        return [[Hit(r + 1, self.ids[i], self.videos[i], round(float(s), 6))
                 for r, (i, s) in enumerate(zip(found, sc, strict=True)) if i >= 0]
                for found, sc in zip(rows, scores, strict=True)]

    def vector_of(self, entity_id: str) -> np.ndarray:
        """The stored vector of an indexed id (decoded from the index's codes)."""
        import faiss

        try:
            row = self.ids.index(entity_id)
        except ValueError:
            raise KeyError(f"{entity_id!r} is not in {self.index_id}") from None
        ivf = faiss.try_extract_index_ivf(self.index)
        if ivf is not None:
            ivf.make_direct_map()
        return self.index.reconstruct(row)


def _cache_path(ctx: RunContext, kind: str, mv) -> Path:
    return Path(ctx.settings.home) / "cache" / "index" / f"{MODEL_NAMES[kind]}-v{mv.version}-{mv.run_id[:8]}"


def _cached_folder(ctx: RunContext, kind: str, mv) -> Path:
    cache = _cache_path(ctx, kind, mv)
    if not (cache / "index.json").exists():
        cache.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache.parent) as tmp:
            folder = registry(ctx, kind).download(mv, "index", tmp)
            staged = cache.parent / f".{cache.name}.{os.getpid()}"
            shutil.move(str(folder), staged)
            try:
                staged.rename(cache)  # atomic: readers never see a half-written folder
            except OSError:
                shutil.rmtree(staged, ignore_errors=True)  # another process cached it first
    return cache


def load_files(folder: Path, kind: str, version: str) -> LoadedIndex:
    import faiss
    import pyarrow.parquet as pq

    meta = json.loads((folder / "index.json").read_text())
    table = pq.read_table(folder / "ids.parquet")
    rows = table["row"].to_numpy()
    if not np.array_equal(rows, np.arange(len(rows))):
        raise ValueError(f"{folder}: the id table's rows are not 0..n-1")
    index = faiss.read_index(str(folder / "index.faiss"))
    if index.ntotal != len(rows):
        raise ValueError(f"{folder}: the index holds {index.ntotal} vectors but the id table {len(rows)} ids")
    if meta.get("nprobe"):
        faiss.extract_index_ivf(index).nprobe = int(meta["nprobe"])
    return LoadedIndex(kind, version, index, table["id"].to_pylist(), table["video_id"].to_pylist(), meta)


def index_meta(ctx: RunContext, mv) -> dict:
    """A version's index.json alone (parameters and figures), without downloading the index."""
    return GatedRegistry(ctx, mv.name).read_json(mv, "index/index.json")


def load_index(ctx: RunContext, kind: str, version: str | int | None = None) -> LoadedIndex:
    """A registered version (default: production), from its MLflow run's artifacts."""
    if version is None:
        mv = production_model_version(ctx, kind)
        if mv is None:
            raise NoIndex(f"no production {kind} index yet: run `adlake run index_refresh`")
    else:
        mv = registry(ctx, kind).get(version)
        if mv is None:
            raise NoIndex(f"{MODEL_NAMES[kind]} has no version {version}")
    if mv.tags.get(PRUNED):
        raise NoIndex(f"{MODEL_NAMES[kind]} v{mv.version}: its index files were pruned (index.keep_versions); "
                      "its figures remain in `adlake index show`")
    return load_files(_cached_folder(ctx, kind, mv), kind, str(mv.version))


def rollback(ctx: RunContext, kind: str, to: str | int | None = None) -> dict[str, Any]:
    """Point ``production`` at ``to``, or at the newest gate-passing version older than the current one."""
    try:
        return {"kind": kind, **registry(ctx, kind).rollback(to)}
    except NoVersion as e:
        raise NoIndex(str(e)) from None


def prune(ctx: RunContext, kind: str, keep: int | None = None) -> list[str]:
    """Delete the index files of versions that no rollback will reach, so that nightly builds do not pile up
    (about 1 GB a version at 1M vectors). Kept: production, the newest ``keep`` gate-passing versions
    (default ``index.keep_versions``) and the newest version whatever its gate (for a post-mortem). A pruned
    version keeps its registry entry, run, figures and index.json, and is tagged ``pruned``. Idempotent."""
    keep = ctx.settings.index.keep_versions if keep is None else keep
    pruned = registry(ctx, kind).prune(keep, PRUNABLE_FILES)
    for mv in pruned:
        shutil.rmtree(_cache_path(ctx, kind, mv), ignore_errors=True)
    return [str(mv.version) for mv in pruned]
