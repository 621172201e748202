"""SQL text for delta-rs predicates and DataFusion queries."""

from __future__ import annotations

import datetime as dt
from typing import Any


def sql_literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dt.datetime):
        return "'" + value.isoformat() + "'"
    if isinstance(value, dt.date):
        return "'" + value.isoformat() + "'"
    return "'" + str(value).replace("'", "''") + "'"


def quote(column: str, alias: str | None = None) -> str:
    return (f"{alias}." if alias else "") + '"' + column.replace('"', '""') + '"'
