"""Shared fixtures: an isolated ADLAKE_HOME per test, one synthetic corpus per session."""

from __future__ import annotations

import contextlib
import os
import threading
import time
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
    import socket

    from adlake.synth import generate

    with socket.socket() as s:  # a free port for serving it; its URLs are in the manifest
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path_factory.mktemp("corpus")
    generate(out, n=4, seed=11, base_url=f"http://127.0.0.1:{port}")
    return out


@pytest.fixture(scope="session")
def sources_dir() -> Path:
    """The real recordings, fetched once per machine (make test fetches them first; on a bare checkout the
    fixture fetches them, about 165 MB of Debian packages)."""
    from adlake.config import get_settings
    from adlake.synth.sources import fetch

    root = Path(get_settings().synth.sources_dir)
    fetch(root)
    return root


@pytest.fixture(scope="session")
def mixed_corpus(corpus: Path, sources_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test corpus's plan with half its ads cut from real footage, speech and music instead."""
    import json

    from adlake.synth import generate

    out = tmp_path_factory.mktemp("mixed")
    base_url = json.loads((corpus / "ground_truth.json").read_text())["base_url"]
    generate(out, n=4, seed=11, base_url=base_url, real=0.5, sources_dir=sources_dir)
    return out


@pytest.fixture(scope="session")
def cli_lake_counts() -> dict[str, int]:
    """Row counts per table of the lake that `adlake run` built from ``corpus`` (filled by tests/test_cli.py),
    for the service test to compare its scheduler-built lake with."""
    return {}


@pytest.fixture(scope="session")
def embedded_lake() -> dict[str, str]:
    """The environment of the lake that `adlake run` built from ``corpus`` on the embedded default (filled by
    tests/test_cli.py), for the cluster test to compare its lake of the same corpus with."""
    return {}


@contextlib.contextmanager
def adlake_home(home: Path):
    """ADLAKE_HOME pointed at ``home`` for a module-scoped fixture (the function-scoped ``home`` cannot)."""
    from adlake.config import get_settings

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ADLAKE_HOME", str(home))
        get_settings.cache_clear()
        try:
            yield home
        finally:
            get_settings.cache_clear()


def queue_ads(lake, day, urls: dict[str, str]) -> None:
    """Put ads straight into the crawl queue (pending in silver.ads, landed in bronze.crawl_manifest),
    as the Spark filter would, so crawl tests need no Spark."""
    import datetime as dt

    import pyarrow as pa

    from schemas.registry import ADS, CRAWL_MANIFEST

    now = dt.datetime.now(dt.UTC)
    manifest = [{"ad_id": a, "crawl_date": day, "url": u, "product_id": f"p_{a}", "product_name": "P",
                 "selling_points": None, "industry": None, "advertiser_id": None, "title": None, "play_count": 10_000,
                 "like_count": None, "published_at": None, "duration_s": None, "manifest_uri": "test",
                 "row_number": i, "landed_at": now, "run_id": "queue"} for i, (a, u) in enumerate(sorted(urls.items()))]
    ads = [{"ad_id": a, "crawl_date": day, "product_id": f"p_{a}", "video_id": None, "status": "pending",
            "reason": None, "source_uri": u, "updated_at": now, "run_id": "queue"} for a, u in sorted(urls.items())]
    lake.overwrite_partition(CRAWL_MANIFEST, pa.Table.from_pylist(manifest, schema=CRAWL_MANIFEST.schema),
                             {"crawl_date": day})
    lake.overwrite_partition(ADS, pa.Table.from_pylist(ads, schema=ADS.schema), {"crawl_date": day})


def register_videos(lake, paths) -> list[str]:
    """Local videos straight into the media store and bronze.videos (``adlake.synth.register``)."""
    from adlake.synth.register import register_videos as register

    return register(lake, paths)


def fifo_canary(path: Path) -> tuple[threading.Event, list]:
    """A FIFO at ``path`` that must never be opened: a watcher thread records in ``opened`` each time it is
    opened for reading (a non-blocking writer open succeeds only then), until ``stop`` is set."""
    os.mkfifo(path)
    stop, opened = threading.Event(), []

    def watch() -> None:
        while not stop.is_set():
            try:
                fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
                opened.append(True)
                os.close(fd)
            except OSError:
                time.sleep(0.005)
    threading.Thread(target=watch, daemon=True).start()
    return stop, opened


@pytest.fixture
def one_torch_thread():
    """Tiny torch models run fastest on one thread, and a busy 2-core machine does not oversubscribe it."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
