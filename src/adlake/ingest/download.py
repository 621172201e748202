"""The per-URL fetch: total, bounded, confined.

Whatever goes wrong with one URL ends as that URL's own :class:`FetchError` with an error class; the
only errors that escape are the media store's own (an outage of adlake's storage, retried by the
task). Each attempt runs under a hard deadline: HTTP streams are cancelled, and blocking reads
(``file://``, object stores) run in daemon threads that stop at the next chunk and never hold the
process. Redirects are followed by adlake, not by the HTTP client: at most ``max_redirects`` hops,
each re-checked by :mod:`adlake.ingest.urls`, only to http(s), credentials only to the original origin.

A body streams through sha256 into a temporary file. An optional *admission* check (the crawl's
probe) runs on that file before it is renamed to its content address, so a blob that fails it never
enters the store.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from adlake.config import CrawlConf, Settings
from adlake.errors import ClassifiedError, ServiceUnavailable
from adlake.ingest.urls import (
    WEB,
    UrlRejected,
    UrlRules,
    check_url,
    open_confined,
    redact,
    redirect_target,
    same_origin,
)
from adlake.media.store import MediaStore
from adlake.threads import in_daemon_thread

CHUNK = 1 << 16
REDIRECTS = (301, 302, 303, 307, 308)

# Admission of a downloaded file: returns (facts about it, keep it in the store?) or raises ClassifiedError.
Admit = Callable[[Path], tuple[dict[str, Any], bool]]


class FetchError(ClassifiedError):
    def __init__(self, error_class: str, message: str, retryable: bool = False):
        super().__init__(error_class, message)
        self.retryable = retryable


@dataclass
class Fetched:
    video_id: str
    key: str | None  # None: admitted but not kept (e.g. too long to be used)
    bytes: int
    cached: bool
    attempts: int
    facts: dict[str, Any] = field(default_factory=dict)  # what admission found (the probe)


@dataclass
class _Body:
    tmp: Path
    digest: str
    size: int


class _Cancelled(Exception):
    pass


async def awaiting_daemon_thread(fn: Callable[[threading.Event], Any]) -> Any:
    """Await a blocking ``fn(cancel)`` run in a daemon thread; cancelling the await sets ``cancel`` and
    returns at once, whatever the thread is blocked in."""
    cancel = threading.Event()
    try:
        return await asyncio.wrap_future(in_daemon_thread(fn, cancel, name="adlake-fetch"))
    finally:
        cancel.set()


class Downloader:
    """Streams URLs into the media store; one instance per crawl task."""

    def __init__(self, store: MediaStore, conf: CrawlConf, rules: UrlRules, seed: int | None = None,
                 admit: Admit | None = None, admit_concurrency: int | None = None):
        self.store, self.conf, self.rules, self.admit = store, conf, rules, admit
        self.rng = random.Random(seed)
        self._hosts: dict[str, asyncio.Semaphore] = {}
        self._global = asyncio.Semaphore(conf.concurrency)
        self._admitting = asyncio.Semaphore(admit_concurrency or max(1, os.cpu_count() or 1))
        self._admitted: dict[str, asyncio.Task] = {}

    def backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2^attempt)]."""
        return self.rng.uniform(0, min(self.conf.backoff_max_s, self.conf.backoff_base_s * 2 ** attempt))

    async def fetch(self, client: httpx.AsyncClient, url: str) -> Fetched:
        """One URL's outcome: a :class:`Fetched`, or a :class:`FetchError` raised with its class."""
        try:
            return await self._fetch(client, url)
        except FetchError:
            raise
        except ClassifiedError as e:
            raise FetchError(e.error_class, str(e)) from e
        except ServiceUnavailable:
            raise  # the media store, not this URL
        except Exception as e:  # noqa: BLE001 - the per-URL contract: nothing else escapes
            raise FetchError("unexpected_error", f"{type(e).__name__}: {e}"[:500]) from e

    async def _fetch(self, client: httpx.AsyncClient, url: str) -> Fetched:
        check_url(url, self.rules)
        known = self.store.recall_url(url)
        if known:
            facts, _ = await self._admit_stored(known["video_id"], known["key"])
            return Fetched(known["video_id"], known["key"], known["bytes"], cached=True, attempts=0, facts=facts)
        body, attempts = await self._download(client, url)
        try:
            facts, keep = await self._admit(body.digest, body.tmp)
            key = None
            if keep:
                # The URL index first, the blob second: a blob in the store always has its URL recorded, so
                # a crawl killed between the two steps never refetches a finished download.
                key = self.store.blob_key(body.digest)
                self.store.remember_url(url, {"video_id": body.digest, "key": key, "bytes": body.size})
                key, _ = self.store.commit(body.tmp, body.digest)
            return Fetched(body.digest, key, body.size, cached=False, attempts=attempts, facts=facts)
        finally:
            body.tmp.unlink(missing_ok=True)

    # -- admission ---------------------------------------------------------------------------------
    async def _admit(self, digest: str, path: Path) -> tuple[dict[str, Any], bool]:
        if self.admit is None:
            return {}, True
        task = self._admitted.get(digest)
        if task is None:  # identical bytes from several URLs are admitted once
            task = self._admitted[digest] = asyncio.ensure_future(self._admit_file(path))
        return await asyncio.shield(task)

    async def _admit_file(self, path: Path) -> tuple[dict[str, Any], bool]:
        async with self._admitting:
            try:
                return await asyncio.to_thread(self.admit, path)
            except ClassifiedError:
                raise
            except Exception as e:  # noqa: BLE001
                raise FetchError("probe_error", f"{type(e).__name__}: {e}"[:500]) from e

    async def _admit_stored(self, digest: str, key: str) -> tuple[dict[str, Any], bool]:
        if self.admit is None:
            return {}, True
        path, temporary = self.store.local_copy(key)
        try:
            return await self._admit(digest, path)
        finally:
            if temporary:
                path.unlink(missing_ok=True)

    # -- downloading -------------------------------------------------------------------------------
    async def _download(self, client: httpx.AsyncClient, url: str) -> tuple[_Body, int]:
        host = urlsplit(url).hostname or "local"
        sem = self._hosts.setdefault(host, asyncio.Semaphore(self.conf.per_host))
        attempt = 0
        while True:
            attempt += 1
            try:
                async with self._global, sem:
                    return await asyncio.wait_for(self._attempt(client, url), self.conf.deadline_s), attempt
            except TimeoutError:
                err = FetchError("timeout", f"no complete response within {self.conf.deadline_s:.0f} s", True)
            except FetchError as e:
                err = e
            except UrlRejected as e:
                err = FetchError(e.error_class, str(e))
            if not err.retryable or attempt > self.conf.retries:
                err.args = (f"{err.args[0]} (after {attempt} attempt{'s' if attempt > 1 else ''})",)
                raise err
            await asyncio.sleep(self.backoff(attempt - 1))

    async def _attempt(self, client: httpx.AsyncClient, url: str) -> _Body:
        tmp = self.store.tmp_file()
        done = False
        try:
            scheme = urlsplit(url).scheme.lower()
            if scheme in WEB:
                digest, size = await self._http(client, url, tmp)
            elif scheme == "file":
                digest, size = await awaiting_daemon_thread(lambda cancel: self._copy_file(url, tmp, cancel))
            else:
                digest, size = await awaiting_daemon_thread(lambda cancel: self._copy_fsspec(url, tmp, cancel))
            done = True
            return _Body(tmp, digest, size)
        finally:
            if not done:
                tmp.unlink(missing_ok=True)

    def _check_size(self, size: int) -> None:
        if size > self.conf.max_bytes:
            raise FetchError("too_large", f"larger than the limit of {self.conf.max_bytes:,} bytes")

    async def _http(self, client: httpx.AsyncClient, url: str, tmp: Path) -> tuple[str, int]:
        original = httpx.URL(url)
        auth = httpx.BasicAuth(original.username, original.password) if original.userinfo else None
        current = original.copy_with(username=None, password=None, fragment=None)
        seen = {str(current)}
        try:
            for hop in range(self.conf.max_redirects + 1):
                request = client.build_request("GET", current)
                response = await client.send(request, auth=auth if same_origin(current, original) else None,
                                             stream=True, follow_redirects=False)
                try:
                    if response.status_code in REDIRECTS:
                        location = response.headers.get("location")
                        if not location:
                            raise FetchError("http_error", f"HTTP {response.status_code} without a Location header")
                        target = redirect_target(current, location, self.rules)
                        if str(target) in seen:
                            raise FetchError("redirect_loop", f"redirect {hop + 1} leads back to {redact(str(target))}")
                        seen.add(str(target))
                        current = target
                        continue
                    self._check_status(response.status_code)
                    return await self._stream(response, tmp)
                finally:
                    await response.aclose()
        except httpx.TimeoutException as e:
            raise FetchError("timeout", f"{type(e).__name__}: {e or 'timed out'}", retryable=True) from e
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as e:
            raise FetchError("bad_url", f"{type(e).__name__}: {e}") from e
        except httpx.HTTPError as e:  # transport, protocol and stream errors
            raise FetchError("connection_error", f"{type(e).__name__}: {e}"[:500], retryable=True) from e
        raise FetchError("too_many_redirects", f"more than {self.conf.max_redirects} redirects")

    @staticmethod
    def _check_status(status: int) -> None:
        if status == 429:
            raise FetchError("rate_limited", "HTTP 429", retryable=True)
        if status >= 500:
            raise FetchError("server_error", f"HTTP {status}", retryable=True)
        if not 200 <= status < 300:
            raise FetchError("http_error", f"HTTP {status}")

    async def _stream(self, response: httpx.Response, tmp: Path) -> tuple[str, int]:
        length = response.headers.get("content-length", "")
        declared = int(length) if length.isdigit() else None
        if declared is not None:
            self._check_size(declared)
        digest, size = hashlib.sha256(), 0
        with _open_tmp(tmp) as out:
            async for chunk in response.aiter_raw(CHUNK):
                size += len(chunk)
                self._check_size(size)
                digest.update(chunk)
                _write(out, chunk)
        if declared is not None and size != declared:
            raise FetchError("connection_error", f"body ended after {size} of {declared} bytes", retryable=True)
        return digest.hexdigest(), size

    def _copy_file(self, url: str, tmp: Path, cancel: threading.Event) -> tuple[str, int]:
        fd = open_confined(url, self.rules)
        with os.fdopen(fd, "rb") as src:
            try:
                return self._copy(src, tmp, cancel)
            except OSError as e:
                raise FetchError("io_error", f"reading {redact(url)}: {e}", retryable=True) from e

    def _copy_fsspec(self, url: str, tmp: Path, cancel: threading.Event) -> tuple[str, int]:
        import fsspec

        try:
            with fsspec.open(url, "rb") as src:
                return self._copy(src, tmp, cancel)
        except FileNotFoundError as e:
            raise FetchError("not_found", f"not found: {url}") from e
        except PermissionError as e:
            raise FetchError("forbidden", f"{type(e).__name__}: {e}"[:500]) from e
        except OSError as e:
            raise FetchError("connection_error", f"{type(e).__name__}: {e}"[:500], retryable=True) from e

    def _copy(self, src, tmp: Path, cancel: threading.Event) -> tuple[str, int]:
        digest, size = hashlib.sha256(), 0
        try:
            with _open_tmp(tmp) as out:
                while chunk := src.read(CHUNK):
                    if cancel.is_set():
                        raise _Cancelled
                    size += len(chunk)
                    self._check_size(size)
                    digest.update(chunk)
                    _write(out, chunk)
        except _Cancelled:
            tmp.unlink(missing_ok=True)  # the awaiting coroutine gave up (deadline)
            raise
        return digest.hexdigest(), size


def _open_tmp(tmp: Path):
    try:
        return open(tmp, "wb")  # noqa: SIM115 - used as a context manager by the caller
    except OSError as e:
        raise ServiceUnavailable(f"media store: cannot write {tmp}: {e}") from e


def _write(out, chunk: bytes) -> None:
    try:
        out.write(chunk)
    except OSError as e:
        raise ServiceUnavailable(f"media store: cannot write a download: {e}") from e


async def download_all(store: MediaStore, settings: Settings, urls: list[str], seed: int | None = None,
                       admit: Admit | None = None) -> dict[str, Fetched | FetchError]:
    """Every URL's outcome (the media store's own outages are raised)."""
    conf = settings.ingest.crawl
    downloader = Downloader(store, conf, UrlRules.of(settings.ingest), seed, admit=admit)
    timeout = httpx.Timeout(connect=conf.connect_timeout_s, read=conf.read_timeout_s,
                            write=conf.read_timeout_s, pool=None)
    limits = httpx.Limits(max_connections=conf.concurrency, max_keepalive_connections=conf.concurrency)
    async with httpx.AsyncClient(timeout=timeout, limits=limits, follow_redirects=False, trust_env=False,
                                 headers={"User-Agent": "adlake-crawler/0.1"}) as client:
        async def one(url: str) -> tuple[str, Fetched | FetchError]:
            try:
                return url, await downloader.fetch(client, url)
            except FetchError as e:
                return url, e
        pairs = await asyncio.gather(*(one(u) for u in urls))
    return dict(pairs)
