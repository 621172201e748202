"""Tokenize embeddings with the production RQ-VAE tokenizers (gold.tokens, gold.ad_sequences).

    python -m jobs.tokenize [--run-id ID]

Rows are keyed by tokenizer version; a rerun adds nothing. There is nothing to do (``NothingToDo``) with
no production tokenizer registered yet (tokenization waits for train_tokenizer; decided before any MLflow
run), or when every embedding is already tokenized by the production versions and no sequence changed.
The registry must answer: an MLflow outage is an error, never "no tokenizer yet".
"""

from __future__ import annotations

from typing import Any

from adlake.errors import NothingToDo
from adlake.jobs import cli, context, parser
from adlake.lake import Lake
from adlake.tokenizer.registry import tokenizer_id
from adlake.tokenizer.tokenize import production_versions, tokenize_all
from adlake.tracking import job_run
from schemas.registry import AD_SEQUENCES, ADS, CLIPS, EMBEDDINGS, FRAMES, TOKENS

JOB = "tokenize"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    ctx = context(JOB, args)
    lake = Lake(ctx)
    inputs = lake.pin(EMBEDDINGS, TOKENS, ADS, CLIPS, FRAMES)
    production = production_versions(ctx)  # ServiceUnavailable when MLflow is down: retried, not skipped
    if not any(production.values()):
        raise NothingToDo("tokenization waits for train_tokenizer: no production tokenizer for "
                          f"{' or '.join(production)} yet")
    with job_run(ctx, params={f"tokenizer.{m}": v for m, v in production.items()}, inputs=inputs) as run:
        result = tokenize_all(lake, production)
        run.metrics({f"tokenized_{m}": n for m, n in result.tokenized.items()} |
                    {f"vectors_per_second_{m}": v for m, v in result.vectors_per_second.items()} |
                    {"sequences": result.sequences, "sequences_written": result.sequences_written,
                     "sequences_incomplete": result.sequences_incomplete})
        summary = {"job": JOB, "run_id": ctx.run_id, **result.as_dict(),
                   "wrote": {s.name: lake.version(s) for s in (TOKENS, AD_SEQUENCES)}}
        nothing = not any(result.tokenized.values()) and not result.sequences_written
        if nothing:
            summary["status"] = "nothing to do"
        run.summary(summary)
    if nothing:  # the run above ends FINISHED; the task is skipped
        done = ", ".join(f"{tokenizer_id(m, v)} ({result.already.get(m, 0)} rows)" for m, v in production.items() if v)
        raise NothingToDo(f"nothing to tokenize: every embedding of {EMBEDDINGS.name}@v{inputs[EMBEDDINGS.name]} "
                          f"is already tokenized by {done}, and no sequence changed ({result.sequences} "
                          f"sequences, {result.sequences_incomplete} ads incomplete)")
    return summary


if __name__ == "__main__":
    cli(main)
