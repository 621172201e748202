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

MODEL_NAMES = {"clips": "adlake-index-clips", "bgm": "adlake-index-bgm"}
PRODUCTION = "production"
PRUNED = "pruned"  # a version tag: its index files are deleted, its index.json and figures remain
PRUNABLE_FILES = ("index/index.faiss", "index/ids.parquet")


class NoIndex(RuntimeError):
    pass


def registry_client(ctx: RunContext):
    from mlflow import MlflowClient

    from adlake.tracking import configure

    configure(ctx)
    return MlflowClient()


def production_model_version(ctx: RunContext, kind: str):
    """The registered version ``production`` points at (an MLflow ModelVersion), or None."""
    from mlflow.exceptions import MlflowException

    try:
        return registry_client(ctx).get_model_version_by_alias(MODEL_NAMES[kind], PRODUCTION)
    except MlflowException:
        return None


def versions(ctx: RunContext, kind: str) -> list[Any]:
    """Every registered version of the kind, oldest first."""
    from mlflow.exceptions import MlflowException

    try:
        found = registry_client(ctx).search_model_versions(f"name = '{MODEL_NAMES[kind]}'")
    except MlflowException:
        return []
    return sorted(found, key=lambda v: int(v.version))


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
            folder = Path(registry_client(ctx).download_artifacts(mv.run_id, "index", tmp))
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
    with tempfile.TemporaryDirectory() as tmp:
        return json.loads(Path(registry_client(ctx).download_artifacts(mv.run_id, "index/index.json", tmp)).read_text())


def load_index(ctx: RunContext, kind: str, version: str | int | None = None) -> LoadedIndex:
    """A registered version (default: production), from its MLflow run's artifacts."""
    from mlflow.exceptions import MlflowException

    if version is None:
        mv = production_model_version(ctx, kind)
        if mv is None:
            raise NoIndex(f"no production {kind} index yet: run `adlake run index_refresh`")
    else:
        try:
            mv = registry_client(ctx).get_model_version(MODEL_NAMES[kind], str(version))
        except MlflowException:
            raise NoIndex(f"{MODEL_NAMES[kind]} has no version {version}") from None
    if mv.tags.get(PRUNED):
        raise NoIndex(f"{MODEL_NAMES[kind]} v{mv.version}: its index files were pruned (index.keep_versions); "
                      "its figures remain in `adlake index show`")
    return load_files(_cached_folder(ctx, kind, mv), kind, str(mv.version))


def rollback(ctx: RunContext, kind: str, to: str | int | None = None) -> dict[str, Any]:
    """Point ``production`` at ``to``, or at the newest gate-passing version older than the current one."""
    current = production_model_version(ctx, kind)
    passed = [v for v in versions(ctx, kind) if v.tags.get("gate") == "passed"]
    if to is None:
        if current is None:
            raise NoIndex(f"no production {kind} index to roll back from")
        older = [v for v in passed if int(v.version) < int(current.version) and not v.tags.get(PRUNED)]
        if not older:
            raise NoIndex(f"{MODEL_NAMES[kind]} v{current.version} has no older gate-passing version to roll back to")
        target = older[-1]
    else:
        target = next((v for v in versions(ctx, kind) if str(v.version) == str(to)), None)
        if target is None:
            raise NoIndex(f"{MODEL_NAMES[kind]} has no version {to}")
        if target.tags.get("gate") != "passed":
            raise NoIndex(f"{MODEL_NAMES[kind]} v{to} did not pass its gate; production only points at passing "
                          "versions")
        if target.tags.get(PRUNED):
            raise NoIndex(f"{MODEL_NAMES[kind]} v{to}: its index files were pruned (index.keep_versions); "
                          "rebuild with `adlake index build --force` instead")
    client = registry_client(ctx)
    client.set_registered_model_alias(MODEL_NAMES[kind], PRODUCTION, str(target.version))
    if current is not None:
        client.set_model_version_tag(MODEL_NAMES[kind], str(target.version), "rolled_back_from", str(current.version))
    return {"kind": kind, "model": MODEL_NAMES[kind], "production": str(target.version),
            "previous_production": None if current is None else str(current.version)}


def prune(ctx: RunContext, kind: str, keep: int | None = None) -> list[str]:
    """Delete the index files of versions that no rollback will reach, so that nightly builds do not pile up
    (about 1 GB a version at 1M vectors). Kept: production, the newest ``keep`` gate-passing versions
    (default ``index.keep_versions``) and the newest version whatever its gate (for a post-mortem). A pruned
    version keeps its registry entry, run, figures and index.json, and is tagged ``pruned``. Idempotent."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    keep = ctx.settings.index.keep_versions if keep is None else keep
    found = versions(ctx, kind)
    if not found:
        return []
    current = production_model_version(ctx, kind)
    passing = [v for v in found if v.tags.get("gate") == "passed"]
    kept = {str(v.version) for v in passing[-keep:]} | {str(found[-1].version)}
    if current is not None:
        kept.add(str(current.version))
    client = registry_client(ctx)
    pruned = []
    for mv in found:
        if str(mv.version) in kept or mv.tags.get(PRUNED):
            continue
        repo = get_artifact_repository(client.get_run(mv.run_id).info.artifact_uri)
        for path in PRUNABLE_FILES:
            repo.delete_artifacts(path)
        # tagged after the files are gone: an interrupted prune is finished by the next one
        client.set_model_version_tag(MODEL_NAMES[kind], str(mv.version), PRUNED, "true")
        shutil.rmtree(_cache_path(ctx, kind, mv), ignore_errors=True)
        pruned.append(str(mv.version))
    return pruned
