"""Build the training sets: leak-safe splits, task samples, the benchmark and the JSONL exports.

    python -m jobs.build_training_sets [--run-id ID]

Everything is a function of the input tables' current versions (pinned at the start, written into
every row as ``source_versions``) and ``datasets.seed``: a rerun on the same versions commits nothing and
rewrites byte-identical exports, whose sha256 it prints.
"""

from __future__ import annotations

from typing import Any

from adlake.datasets.build import build_training_sets
from adlake.jobs import cli, context, parser
from adlake.lake import Lake

JOB = "build_training_sets"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    result = build_training_sets(Lake(context(JOB, args)))
    return {"job": JOB, **result.as_dict()}


if __name__ == "__main__":
    cli(main)
