"""Tokenize embeddings with the production RQ-VAE tokenizers (gold.tokens, gold.ad_sequences).

    python -m jobs.tokenize [--run-id ID]

With no production tokenizer registered yet, it says so and succeeds: tokenization waits for
train_tokenizer. Rows are keyed by tokenizer version; a rerun adds nothing.
"""

from __future__ import annotations

from typing import Any

from adlake.jobs import cli, context, parser
from adlake.lake import Lake
from adlake.tokenizer.tokenize import tokenize_all
from adlake.tracking import job_run
from schemas.registry import AD_SEQUENCES, EMBEDDINGS, TOKENS

JOB = "tokenize"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    ctx = context(JOB, args)
    lake = Lake(ctx)
    with job_run(ctx, inputs={EMBEDDINGS.name: lake.version(EMBEDDINGS)}) as run:
        result = tokenize_all(lake)
        run.params({f"tokenizer.{m}": v for m, v in result.production.items()})
        run.metrics({f"tokenized_{m}": n for m, n in result.tokenized.items()} |
                    {f"vectors_per_second_{m}": v for m, v in result.vectors_per_second.items()} |
                    {"sequences": result.sequences, "sequences_incomplete": result.sequences_incomplete})
        summary = {"job": JOB, "run_id": ctx.run_id, **result.as_dict(),
                   "wrote": {s.name: lake.version(s) for s in (TOKENS, AD_SEQUENCES)}}
        run.summary(summary)
    return summary


if __name__ == "__main__":
    cli(main)
