"""Airflow Assets, one per table, named ``<layer>.<table>``; defined here once and imported by the DAGs."""

from __future__ import annotations

from airflow.sdk import Asset

from schemas import TABLES

ASSETS: dict[str, Asset] = {name: Asset(name=name, uri=f"adlake://{spec.path}") for name, spec in TABLES.items()}


def asset(name: str) -> Asset:
    return ASSETS[name]
