"""A content-addressed blob store (sha256) on a local folder or an fsspec URI.

Blobs are written to a temporary name and renamed into place (on object stores an upload is atomic),
so an interrupted writer never leaves a partial blob. A URL index records which blob a URL produced,
so a rerun skips finished downloads.

The store not answering (a timeout, a refused connection, a server error) is
:class:`~adlake.errors.ServiceUnavailable`: the task fails and is retried, and no video or URL is blamed
for it. A blob that is not there is ``FileNotFoundError``, the one answer that is about the input.
"""

from __future__ import annotations

import concurrent.futures
import functools
import hashlib
import json
import os
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any

import fsspec

from adlake.config import Settings
from adlake.errors import ServiceUnavailable
from adlake.threads import in_daemon_thread


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


_inside = threading.local()  # set in the threads that run a store call under its deadline


@functools.cache
def _store_failures() -> tuple[type[BaseException], ...]:
    """What a store that fails to answer raises: OSError (a local disk, s3fs's translated errors, timeouts)
    and the errors of the S3 client stack that s3fs lets through. Anything else is a bug, not an outage."""
    kinds: list[type[BaseException]] = [OSError]
    try:
        from botocore.exceptions import BotoCoreError, ClientError

        kinds += [BotoCoreError, ClientError]
    except ImportError:  # no S3 client installed: only local and fsspec-native stores
        pass
    try:
        from aiohttp import ClientError as HttpClientError

        kinds.append(HttpClientError)
    except ImportError:
        pass
    return tuple(kinds)


def _reaching_the_store(method):
    """A failure of the store under ``method``, other than a missing file, is an outage of the store."""
    @functools.wraps(method)
    def call(self: MediaStore, *args, **kwargs):
        try:
            return self.within_deadline(method, self, *args, **kwargs)
        except (FileNotFoundError, ServiceUnavailable):
            raise
        except _store_failures() as e:
            raise ServiceUnavailable(f"media store {self.root}: {method.__name__} failed: "
                                     f"{type(e).__name__}: {e}"[:1000]) from e
    return call


class MediaStore:
    def __init__(self, settings: Settings):
        self.root = settings.media.uri.rstrip("/")
        self.local = "://" not in self.root or self.root.startswith("file://")
        self.fs, self._root_path = fsspec.core.url_to_fs(self.root, **settings.media.storage_options)
        self.timeout_s = settings.media.timeout_s

    def within_deadline(self, fn, *args, **kwargs):
        """``fn(...)``, given up after ``media.timeout_s`` on an object store (its client's own timeouts do
        not cover every call: a PUT can wait on a stopped server for minutes). The abandoned call runs on in
        a daemon thread; what it may still write is whole and content-addressed."""
        if self.local or getattr(_inside, "call", False):  # a nested call: the outer deadline covers it
            return fn(*args, **kwargs)
        done = in_daemon_thread(functools.partial(fn, *args, **kwargs), name="adlake-media-store",
                                setup=lambda: setattr(_inside, "call", True))
        try:
            return done.result(timeout=self.timeout_s)
        except concurrent.futures.TimeoutError:
            raise ServiceUnavailable(f"media store {self.root}: no answer within {self.timeout_s:.0f} s "
                                     "(media.timeout_s)") from None

    # -- keys and locations ---------------------------------------------------------------------
    @staticmethod
    def blob_key(digest: str, kind: str = "videos") -> str:
        return f"{kind}/{digest[:2]}/{digest}"

    def uri(self, key: str) -> str:
        return f"{self.root}/{key}"

    def key_of(self, uri: str) -> str:
        """The key of a blob URI of this store."""
        prefix = f"{self.root}/"
        if not uri.startswith(prefix):
            raise ValueError(f"{uri} is not in the media store {self.root}")
        return uri[len(prefix):]

    def path(self, key: str) -> Path:
        if not self.local:
            raise ValueError(f"{self.root} is not a local folder")
        return Path(self._root_path) / key

    @_reaching_the_store
    def exists(self, key: str) -> bool:
        return self.fs.exists(f"{self._root_path}/{key}")

    # -- temporary files --------------------------------------------------------------------------
    def tmp_dir(self) -> Path:
        path = Path(self._root_path) / "tmp" if self.local else Path(tempfile.gettempdir()) / "adlake-media"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def tmp_file(self) -> Path:
        return self.tmp_dir() / f"{os.getpid()}-{uuid.uuid4().hex}.part"

    def clean_stale_tmp(self) -> int:
        """Remove partial files left by writers that are no longer running on this host."""
        removed = 0
        for part in self.tmp_dir().glob("*.part"):
            pid = part.name.split("-", 1)[0]
            if pid.isdigit() and not _alive(int(pid)):
                part.unlink(missing_ok=True)
                removed += 1
        return removed

    # -- writing ----------------------------------------------------------------------------------
    @_reaching_the_store
    def commit(self, tmp: Path, digest: str, kind: str = "videos") -> tuple[str, bool]:
        """Move a finished temporary file to its content address; returns (key, already_there)."""
        key = self.blob_key(digest, kind)
        if self.exists(key):
            tmp.unlink(missing_ok=True)
            return key, True
        if self.local:
            target = self.path(key)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, target)  # atomic on one filesystem
        else:
            self.fs.put_file(str(tmp), f"{self._root_path}/{key}")
            tmp.unlink(missing_ok=True)
        return key, False

    @_reaching_the_store
    def put_bytes(self, data: bytes, kind: str) -> str:
        """Store bytes under their sha256; returns the key (nothing is written when it is already there)."""
        digest = hashlib.sha256(data).hexdigest()
        key = self.blob_key(digest, kind)
        if self.exists(key):
            return key
        tmp = self.tmp_file()
        tmp.write_bytes(data)
        return self.commit(tmp, digest, kind)[0]

    @_reaching_the_store
    def put_file(self, path: Path, kind: str) -> str:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        key = self.blob_key(digest.hexdigest(), kind)
        if self.exists(key):
            return key
        tmp = self.tmp_file()
        with open(path, "rb") as src, open(tmp, "wb") as dst:
            for chunk in iter(lambda: src.read(1 << 20), b""):
                dst.write(chunk)
        return self.commit(tmp, digest.hexdigest(), kind)[0]

    @_reaching_the_store
    def read_bytes(self, key: str) -> bytes:
        with self.fs.open(f"{self._root_path}/{key}", "rb") as f:
            return f.read()

    @_reaching_the_store
    def local_copy(self, key: str) -> tuple[Path, bool]:
        """A local path to a blob for tools that need a file; True when it is a temporary copy to delete."""
        if self.local:
            return self.path(key), False
        tmp = self.tmp_file()
        self.fs.get_file(f"{self._root_path}/{key}", str(tmp))
        return tmp, True

    # -- URL index --------------------------------------------------------------------------------
    def _url_key(self, url: str) -> str:
        h = sha256_text(url)
        return f"urls/{h[:2]}/{h}.json"

    @_reaching_the_store
    def remember_url(self, url: str, record: dict[str, Any]) -> None:
        data = json.dumps({"url": url, **record}, sort_keys=True).encode()
        key = self._url_key(url)
        if self.local:
            target = self.path(key)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.tmp_file()
            tmp.write_bytes(data)
            os.replace(tmp, target)
        else:
            with self.fs.open(f"{self._root_path}/{key}", "wb") as f:
                f.write(data)

    @_reaching_the_store
    def recall_url(self, url: str) -> dict[str, Any] | None:
        """What a URL produced before, if that blob is still in the store."""
        key = self._url_key(url)
        try:
            with self.fs.open(f"{self._root_path}/{key}", "rb") as f:
                record = json.loads(f.read())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return record if record.get("key") and self.exists(record["key"]) else None

    @_reaching_the_store
    def files(self, kind: str = "videos") -> list[str]:
        base = f"{self._root_path}/{kind}"
        return sorted(p for p in self.fs.find(base)) if self.fs.exists(base) else []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
