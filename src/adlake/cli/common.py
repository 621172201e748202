"""What every command shares: the Typer app, the consoles, the --json option, the settings."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from typing import Annotated, Any

import typer
from rich.console import Console

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="adlake: the ad-video data lifecycle.")
console = Console(stderr=True)


class _Results:
    """The process's real stdout, which only results reach: once a command sends fd 1 to stderr, this
    writes to the copy of stdout it kept."""

    stream = None

    def write(self, text: str) -> int:
        return (self.stream or sys.stdout).write(text)

    def flush(self) -> None:
        (self.stream or sys.stdout).flush()

    def isatty(self) -> bool:
        return (self.stream or sys.stdout).isatty()


results = _Results()
out = Console(file=results, width=None if sys.stdout.isatty() else 160)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print a machine-readable summary.")]


def print_json(value: Any) -> None:
    results.write(json.dumps(value, indent=2, default=str) + "\n")
    results.flush()


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send everything written to fd 1 (Airflow's task logs, the VAD's prints, Ray's worker logs) to
    stderr, keeping stdout for results. The redirection outlives the block on purpose: Ray's log monitor
    forwards a dead node's last lines whenever they arrive, even after the result is printed, and they
    must not follow the JSON of `--json` on stdout."""
    if results.stream is None:
        sys.stdout.flush()
        results.stream = os.fdopen(os.dup(1), "w", buffering=1)
        os.dup2(2, 1)
    yield


def current_settings():
    from adlake.config import get_settings

    return get_settings()


def cli_lake():
    """The lake of the current settings, as the command line's own run."""
    from adlake.lake import Lake
    from adlake.provenance import RunContext

    return Lake(RunContext.create("cli", settings=current_settings()))


def verdict(ok: bool) -> str:
    return "[green]pass[/]" if ok else "[red]FAIL[/]"
