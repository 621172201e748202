"""Train the editor LLM: vocabulary extension, alignment, fine-tuning; benchmark answers; gated registration.

    python -m jobs.train_llm [--force] [--run-id ID]

Inputs pinned at the start: gold.samples, gold.ad_sequences, gold.benchmark, gold.split_assignments, and the
tokenizer versions the training sets were built with. One MLflow run per stage (experiment
adlake/train_editor). A rerun on the same inputs and settings trains nothing (``--force`` trains again).
"""

from __future__ import annotations

from typing import Any

from adlake.jobs import cli, context, parser
from adlake.lake import Lake
from adlake.train.editor_llm import train_llm

JOB = "train_llm"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--force", action="store_true", help="train again even when these inputs were trained on")
    args = p.parse_args(argv)
    return {"job": JOB, **train_llm(Lake(context(JOB, args)), force=args.force)}


if __name__ == "__main__":
    cli(main)
