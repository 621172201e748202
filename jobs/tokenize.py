"""Tokenize embeddings with the production RQ-VAE tokenizers (gold.tokens, gold.ad_sequences).

    python -m jobs.tokenize [--run-id ID]

With no production tokenizer registered yet, it says so and succeeds: tokenization waits for
train_tokenizer.
"""

from __future__ import annotations

from typing import Any

from adlake.jobs import cli, context, parser
from adlake.tokenizer.registry import MODEL_NAMES, production_version

JOB = "tokenize"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    ctx = context(JOB, args)
    production = {m: production_version(ctx, m) for m in MODEL_NAMES}
    if not any(production.values()):
        return {"job": JOB, "run_id": ctx.run_id, "tokenized": 0, "production": production,
                "status": "waiting: no production tokenizer yet; run train_tokenizer, then ads_features again"}
    raise NotImplementedError(f"production tokenizers {production} exist, but tokenization is not built yet "
                              "(issue 5 in progress)")


if __name__ == "__main__":
    cli(main)
