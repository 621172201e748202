"""Shared fixtures: an isolated ADLAKE_HOME per test, one synthetic corpus per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("ADLAKE_ENV", "test")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh ADLAKE_HOME for one test."""
    from adlake.config import get_settings

    monkeypatch.setenv("ADLAKE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ADLAKE_ENV", "test")
    get_settings.cache_clear()
    yield tmp_path / "home"
    get_settings.cache_clear()


@pytest.fixture
def ctx(home: Path):
    from adlake.provenance import RunContext

    return RunContext.create("test", run_id="run-1")


@pytest.fixture
def lake(ctx):
    from adlake.lake import Lake

    return Lake(ctx)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small real corpus (4 good ads plus the bad inputs), made once per session."""
    from adlake.synth import generate

    out = tmp_path_factory.mktemp("corpus")
    generate(out, n=4, seed=11)
    return out
