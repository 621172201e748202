"""The ``adlake`` command line (contract: synth, serve, run, tables, show; plus demo, evaluate, models and
the service and cluster commands). Each module registers its commands on the one Typer app."""

from __future__ import annotations

from adlake.cli import demo, evaluate, lifecycle, models, render  # noqa: F401 - they register their commands
from adlake.cli.common import app
from adlake.service import cli as service_cli

service_cli.register(app)  # adlake up | down | status | cluster


def main() -> None:  # pragma: no cover
    app()


__all__ = ["app", "main"]
