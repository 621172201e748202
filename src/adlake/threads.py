"""Blocking calls that a caller may give up on: each runs in a daemon thread of its own, so an abandoned
call (a socket read on a stopped server, a stuck PUT) never holds the process at exit."""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable
from typing import Any


def in_daemon_thread(fn: Callable[..., Any], *args: Any, name: str = "adlake-call",
                     setup: Callable[[], None] | None = None) -> concurrent.futures.Future:
    """Start ``fn(*args)`` in a new daemon thread and return its future at once. ``setup`` runs first in
    that thread (to mark thread-local state). Wait with ``future.result(timeout=...)``, or await it with
    ``asyncio.wrap_future``; giving up leaves the thread to finish or hang on its own."""
    done: concurrent.futures.Future = concurrent.futures.Future()

    def run() -> None:
        if not done.set_running_or_notify_cancel():
            return
        try:
            if setup is not None:
                setup()
            done.set_result(fn(*args))
        except BaseException as e:  # noqa: BLE001 - handed to whoever waits on the future
            done.set_exception(e)

    threading.Thread(target=run, name=name, daemon=True).start()
    return done
