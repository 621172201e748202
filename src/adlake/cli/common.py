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
out = Console(width=None if sys.stdout.isatty() else 160)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print a machine-readable summary.")]

def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send everything written to fd 1 (Airflow's task logs included) to stderr, keeping stdout for results."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


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
