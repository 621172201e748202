"""One way to reach a lake-side path (landing, staging) from Python: a pyarrow filesystem built from the
lake's delta-rs storage options, so that a manifest or a staging file on ``s3://`` uses the same endpoint
and credentials as the Delta tables beside it."""

from __future__ import annotations

import json
import os
import uuid
from typing import Any
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq


def is_local(uri: str) -> bool:
    return urlparse(uri).scheme in ("", "file")


def arrow_fs(uri: str, storage_options: dict[str, str] | None = None) -> tuple[pafs.FileSystem, str]:
    """The filesystem of ``uri`` and the path in it. ``s3://`` takes the object_store keys delta-rs takes
    (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``,
    ``AWS_REGION``); absent keys fall back to the environment, as they do for delta-rs."""
    parsed = urlparse(uri)
    if parsed.scheme in ("s3", "s3a"):
        opts = {k.upper(): v for k, v in (storage_options or {}).items()}
        kw: dict[str, object] = {}
        if endpoint := opts.get("AWS_ENDPOINT_URL") or opts.get("AWS_ENDPOINT"):
            ep = urlparse(endpoint)
            kw |= {"endpoint_override": ep.netloc or ep.path, "scheme": ep.scheme or "https"}
        for key, arg in (("AWS_ACCESS_KEY_ID", "access_key"), ("AWS_SECRET_ACCESS_KEY", "secret_key"),
                         ("AWS_SESSION_TOKEN", "session_token"), ("AWS_REGION", "region")):
            if opts.get(key):
                kw[arg] = opts[key]
        return pafs.S3FileSystem(**kw), f"{parsed.netloc}{parsed.path}".rstrip("/")
    return pafs.FileSystem.from_uri(uri if parsed.scheme else f"file://{os.path.abspath(uri)}")


class Staging:
    """A folder of the staging area, local or on an object store, where tasks leave files for the single
    writer that commits them. A file appears whole or not at all: locally it is written under a temporary
    name and renamed, on an object store it is one PUT. A folder whose marker file is written last is
    complete once the marker is there."""

    def __init__(self, uri: str, storage_options: dict[str, str] | None = None) -> None:
        self.uri = uri.rstrip("/")
        self.storage_options = storage_options
        self.fs, self.path = arrow_fs(self.uri, storage_options)
        self.local = isinstance(self.fs, pafs.LocalFileSystem)

    @property
    def name(self) -> str:
        return self.uri.rsplit("/", 1)[-1]

    def child(self, *parts: str) -> Staging:
        return Staging("/".join([self.uri, *parts]), self.storage_options)

    def exists(self, name: str | None = None) -> bool:
        path = f"{self.path}/{name}" if name else self.path
        return self.fs.get_file_info(path).type != pafs.FileType.NotFound

    def write(self, name: str, data: bytes) -> None:
        target = f"{self.path}/{name}"
        if not self.local:  # an object store has no folders to create (pyarrow would leave marker objects)
            with self.fs.open_output_stream(target) as out:  # an object appears only when its upload completes
                out.write(data)
            return
        self.fs.create_dir(self.path, recursive=True)
        tmp = f"{self.path}/.{name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
        with self.fs.open_output_stream(tmp) as out:
            out.write(data)
        self.fs.move(tmp, target)

    def read(self, name: str) -> bytes:
        with self.fs.open_input_stream(f"{self.path}/{name}") as f:
            return f.read()

    def write_parquet(self, name: str, table: pa.Table) -> None:
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        self.write(name, sink.getvalue().to_pybytes())

    def read_parquet(self, name: str, schema: pa.Schema | None = None) -> pa.Table:
        return pq.read_table(f"{self.path}/{name}", filesystem=self.fs, schema=schema)

    def write_json(self, name: str, value: Any) -> None:
        self.write(name, json.dumps(value).encode())

    def read_json(self, name: str) -> Any:
        return json.loads(self.read(name))

    def _entries(self) -> list[pafs.FileInfo]:
        if not self.exists():
            return []
        return self.fs.get_file_info(pafs.FileSelector(self.path))

    def files(self, prefix: str = "", suffix: str = "") -> list[str]:
        """Names of the complete files here (no temporary ones), sorted."""
        return sorted(i.base_name for i in self._entries() if i.type == pafs.FileType.File
                      and not i.base_name.startswith(".") and i.base_name.startswith(prefix)
                      and i.base_name.endswith(suffix))

    def folders(self) -> list[Staging]:
        return [self.child(i.base_name) for i in sorted(self._entries(), key=lambda i: i.base_name)
                if i.type == pafs.FileType.Directory and not i.base_name.startswith(".")]

    def remove(self) -> None:
        if self.exists():
            self.fs.delete_dir(self.path)
