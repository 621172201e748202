"""Airflow Assets, named ``<layer>.<table>``, defined here once and imported by the DAGs: one per table of
``schemas/``, and one per model that a DAG promotes (``models.tokenizer``: a tokenizer's ``production``
alias moved)."""

from __future__ import annotations

from airflow.sdk import Asset

from schemas import TABLES

MODELS = {"models.tokenizer": "the production RQ-VAE tokenizer of a modality moved (train_tokenizer)"}

ASSETS: dict[str, Asset] = {
    **{name: Asset(name=name, uri=f"adlake://{spec.path}") for name, spec in TABLES.items()},
    **{name: Asset(name=name, uri=f"adlake://{name.replace('.', '/')}", extra={"doc": doc})
       for name, doc in MODELS.items()},
}


def asset(name: str) -> Asset:
    return ASSETS[name]
