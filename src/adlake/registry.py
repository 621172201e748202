"""The gated model registry: one MLflow registered model (a tokenizer's, an index's) whose ``production``
alias only ever points at a version that passed its quality gate.

A version is registered from an artifact folder of its run, tagged ``gate=passed|failed``; production moves
to it only when it passed. Rollback moves production back to an older passing version; pruning deletes the
files of versions that no rollback will reach and tags them ``pruned``.

MLflow saying "not found" (no such registered model, version or alias) is an answer: None or []. Anything
else that goes wrong talking to MLflow (a server down or failing) raises
:class:`adlake.errors.ServiceUnavailable`, never "nothing registered yet".
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from adlake.errors import AdlakeError
from adlake.provenance import RunContext
from adlake.tracking import NOT_FOUND, configure, ensure_registered_model, mlflow_code, service_errors

PRODUCTION = "production"  # the alias that consumers load
GATE = "gate"  # a version tag: passed or failed
PRUNED = "pruned"  # a version tag: its prunable files are deleted, the rest of its run remains


class NoVersion(AdlakeError):
    """No such version, or none that the operation may use (rollback targets)."""


class GatedRegistry:
    """One registered model: ``GatedRegistry(ctx, "adlake-index-clips")``."""

    def __init__(self, ctx: RunContext, name: str, description: str = ""):
        from mlflow import MlflowClient

        configure(ctx)
        self.name = name
        self.description = description
        self.uri = ctx.settings.mlflow.tracking_uri
        self.client = MlflowClient()

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        with service_errors(self.uri):
            return getattr(self.client, method)(*args, **kwargs)

    def _find(self, method: str, *args: Any) -> Any:
        """The call's answer, or None when MLflow says there is no such thing."""
        try:
            return self._call(method, *args)
        except Exception as e:
            if mlflow_code(e) == NOT_FOUND:
                return None
            raise

    # reading

    def get(self, version: str | int) -> Any:
        """One version (an MLflow ModelVersion), or None."""
        if not str(version).isdigit():
            return None
        return self._find("get_model_version", self.name, str(version))

    def production(self) -> Any:
        """The version ``production`` points at, or None when there is none yet."""
        model = self._find("get_registered_model", self.name)
        version = None if model is None else model.aliases.get(PRODUCTION)
        return None if version is None else self.get(version)

    def versions(self) -> list[Any]:
        """Every version, oldest first."""
        found = self._find("search_model_versions", f"name = '{self.name}'") or []
        return sorted(found, key=lambda v: int(v.version))

    def download(self, mv: Any, path: str, dst: str | Path) -> Path:
        """A file or folder of the version's run, downloaded into ``dst``."""
        return Path(self._call("download_artifacts", mv.run_id, path, str(dst)))

    def read_json(self, mv: Any, path: str) -> dict:
        with tempfile.TemporaryDirectory() as tmp:
            return json.loads(self.download(mv, path, tmp).read_text())

    # writing

    def register(self, run_id: str, artifact_path: str, *, passed: bool, tags: dict[str, str],
                 description: str = "") -> Any:
        """Register the run's ``artifact_path`` as a new version tagged with its gate; production moves to it
        only when it passed. Returns the new ModelVersion."""
        ensure_registered_model(self.client, self.name, self.description)
        source = f"{self._call('get_run', run_id).info.artifact_uri.rstrip('/')}/{artifact_path}"
        mv = self._call("create_model_version", self.name, source=source, run_id=run_id,
                        tags={**tags, GATE: "passed" if passed else "failed"}, description=description)
        if passed:
            self.promote(mv.version)
        return mv

    def promote(self, version: str | int) -> None:
        self._call("set_registered_model_alias", self.name, PRODUCTION, str(version))

    def set_tag(self, version: str | int, key: str, value: Any) -> None:
        self._call("set_model_version_tag", self.name, str(version), key, str(value))

    def rollback(self, to: str | int | None = None) -> dict[str, Any]:
        """Point production at ``to``, or at the newest gate-passing version older than the current one.
        Failed and pruned versions are refused (:class:`NoVersion`)."""
        current = self.production()
        found = self.versions()
        if to is None:
            if current is None:
                raise NoVersion(f"{self.name}: no production version to roll back from")
            older = [v for v in found if v.tags.get(GATE) == "passed" and not v.tags.get(PRUNED)
                     and int(v.version) < int(current.version)]
            if not older:
                raise NoVersion(f"{self.name} v{current.version} has no older gate-passing version to roll back to")
            target = older[-1]
        else:
            target = next((v for v in found if str(v.version) == str(to)), None)
            if target is None:
                raise NoVersion(f"{self.name} has no version {to}")
            if target.tags.get(GATE) != "passed":
                raise NoVersion(f"{self.name} v{to} did not pass its gate; production only points at passing "
                                "versions")
            if target.tags.get(PRUNED):
                raise NoVersion(f"{self.name} v{to}: its files were pruned; build it again instead")
        self.promote(target.version)
        if current is not None:
            self.set_tag(target.version, "rolled_back_from", current.version)
        return {"model": self.name, "production": str(target.version),
                "previous_production": None if current is None else str(current.version)}

    def prune(self, keep: int, files: Sequence[str]) -> list[Any]:
        """Delete ``files`` (artifact paths) from the runs of versions that no rollback will reach. Kept:
        production, the newest ``keep`` gate-passing versions and the newest version whatever its gate (for a
        post-mortem). A pruned version keeps its registry entry and the rest of its run, and is tagged
        ``pruned``. Idempotent. Returns the versions pruned now."""
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        found = self.versions()
        if not found:
            return []
        current = self.production()
        passing = [v for v in found if v.tags.get(GATE) == "passed"]
        kept = {str(v.version) for v in (passing[-keep:] if keep > 0 else [])} | {str(found[-1].version)}
        if current is not None:
            kept.add(str(current.version))
        pruned = []
        for mv in found:
            if str(mv.version) in kept or mv.tags.get(PRUNED):
                continue
            repo = get_artifact_repository(self._call("get_run", mv.run_id).info.artifact_uri)
            with service_errors(self.uri):
                for path in files:
                    repo.delete_artifacts(path)
            self.set_tag(mv.version, PRUNED, "true")  # after the files: an interrupted prune is finished next time
            pruned.append(mv)
        return pruned
