"""Train the SSMP shot-sequence model on the training ads' clip sequences; its benchmark answers, greedy and
self-corrective.

    python -m jobs.train_ssmp [--force] [--run-id ID]

The same pinned inputs as train_llm; one MLflow run (experiment adlake/train_editor). A rerun on the same
inputs and settings trains nothing (``--force`` trains again).
"""

from __future__ import annotations

from typing import Any

from adlake.jobs import cli, context, parser
from adlake.lake import Lake
from adlake.train.editor_ssmp import train_ssmp_model

JOB = "train_ssmp"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--force", action="store_true", help="train again even when these inputs were trained on")
    args = p.parse_args(argv)
    return {"job": JOB, **train_ssmp_model(Lake(context(JOB, args)), force=args.force)}


if __name__ == "__main__":
    cli(main)
