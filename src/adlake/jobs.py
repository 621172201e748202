"""Shared plumbing of job entry points (``jobs/``): arguments, run context, JSON summary."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Callable
from typing import Any

from adlake.config import get_settings
from adlake.errors import NothingToDo
from adlake.provenance import RunContext


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--run-id", help="run id stamped on every write (default: a new one)")
    p.add_argument("--partition", help="partition to process, e.g. a crawl date YYYY-MM-DD")
    p.add_argument("--dag-id", help=argparse.SUPPRESS)
    p.add_argument("--task-id", help=argparse.SUPPRESS)
    return p


def context(job: str, args: argparse.Namespace) -> RunContext:
    return RunContext.create(job, run_id=args.run_id, settings=get_settings(), dag_id=args.dag_id,
                             task_id=args.task_id)


def parse_date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except (TypeError, ValueError):
        raise SystemExit(f"--partition must be a date YYYY-MM-DD, got {value!r}") from None


def cli(main: Callable[[list[str] | None], dict[str, Any]]) -> None:
    """Run a job's ``main`` from the shell and print its summary as JSON.

    A run with nothing to do (:class:`adlake.errors.NothingToDo`) prints ``{"job", "skipped": reason}`` and
    exits 0, as Airflow skips the task; any other error exits non-zero.
    """
    try:
        summary = main(sys.argv[1:])
    except NothingToDo as e:
        summary = {"job": main.__globals__.get("JOB", main.__module__), "skipped": str(e)}
    print(json.dumps(summary, indent=2, default=str))
