"""A content-addressed blob store (sha256) on a local folder or an fsspec URI.

Blobs are written to a temporary name and renamed into place (on object stores an upload is atomic),
so an interrupted writer never leaves a partial blob. A URL index records which blob a URL produced,
so a rerun skips finished downloads.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import uuid
from pathlib import Path
from typing import Any

import fsspec

from adlake.config import Settings


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class MediaStore:
    def __init__(self, settings: Settings):
        self.root = settings.media.uri.rstrip("/")
        self.local = "://" not in self.root or self.root.startswith("file://")
        self.fs, self._root_path = fsspec.core.url_to_fs(self.root, **settings.media.storage_options)

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

    def put_bytes(self, data: bytes, kind: str) -> str:
        """Store bytes under their sha256; returns the key (nothing is written when it is already there)."""
        digest = hashlib.sha256(data).hexdigest()
        key = self.blob_key(digest, kind)
        if self.exists(key):
            return key
        tmp = self.tmp_file()
        tmp.write_bytes(data)
        return self.commit(tmp, digest, kind)[0]

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

    def read_bytes(self, key: str) -> bytes:
        with self.fs.open(f"{self._root_path}/{key}", "rb") as f:
            return f.read()

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

    def recall_url(self, url: str) -> dict[str, Any] | None:
        """What a URL produced before, if that blob is still in the store."""
        key = self._url_key(url)
        try:
            with self.fs.open(f"{self._root_path}/{key}", "rb") as f:
                record = json.loads(f.read())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return record if record.get("key") and self.exists(record["key"]) else None

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
