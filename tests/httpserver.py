"""A scriptable HTTP server on 127.0.0.1 for crawl tests: statuses, delays, throttling, counting."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Route:
    body: bytes = b""
    statuses: list[int] = field(default_factory=list)  # served in turn; then 200
    delay_s: float = 0.0  # before the headers
    chunk: int = 1 << 16
    chunk_delay_s: float = 0.0  # between body chunks
    content_length: bool = True
    status: int = 200  # once ``statuses`` are used up
    headers: dict[str, str] = field(default_factory=dict)  # sent with every response of this route
    handler: Callable | None = None  # handler(request_handler): anything else (hang, lie, reset)


class ScriptedServer:
    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.hits: dict[str, int] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []  # (path, headers) of every request
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                with server._lock:
                    server.hits[path] = server.hits.get(path, 0) + 1
                    server.requests.append((path, dict(self.headers.items())))
                    server.active += 1
                    server.max_active = max(server.max_active, server.active)
                try:
                    self._serve(server.routes.get(path))
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    with server._lock:
                        server.active -= 1

            def _serve(self, route: Route | None) -> None:
                if route is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                time.sleep(route.delay_s)
                if route.handler is not None:
                    route.handler(self)
                    return
                status = route.statuses.pop(0) if route.statuses else route.status
                self.send_response(status)
                for name, value in route.headers.items():
                    self.send_header(name, value)
                if status != 200:
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if route.content_length:
                    self.send_header("Content-Length", str(len(route.body)))
                else:
                    self.send_header("Connection", "close")
                self.end_headers()
                for i in range(0, len(route.body), route.chunk):
                    self.wfile.write(route.body[i: i + route.chunk])
                    self.wfile.flush()
                    time.sleep(route.chunk_delay_s)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
