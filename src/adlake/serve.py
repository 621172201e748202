"""Serving a folder over HTTP on 127.0.0.1, so a crawl can run against local files."""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 - signature of the base class
        pass


def make_server(directory: Path, port: int = 8765, quiet: bool = True) -> ThreadingHTTPServer:
    directory = Path(directory).resolve()
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory} is not a folder")
    handler = functools.partial(_QuietHandler if quiet else SimpleHTTPRequestHandler, directory=str(directory))
    return ThreadingHTTPServer(("127.0.0.1", port), handler)


@contextlib.contextmanager
def serving(directory: Path, port: int = 8765) -> Iterator[str]:
    """Serve ``directory`` in a background thread for the duration of the block; yields the base URL."""
    server = make_server(directory, port)
    thread = threading.Thread(target=server.serve_forever, name="adlake-serve", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
