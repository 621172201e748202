"""The single source of every adlake table's schema, key and partitioning.

Each table is declared once as a :class:`TableSpec`; the lake layer casts every write to it
and refuses drift. Field docs travel in the pyarrow field metadata under ``doc``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

TIMESTAMP = pa.timestamp("us", tz="UTC")


def col(name: str, type_: pa.DataType, doc: str, *, nullable: bool = True) -> pa.Field:
    """A schema field with its documentation attached."""
    return pa.field(name, type_, nullable=nullable, metadata={"doc": doc})


@dataclass(frozen=True)
class TableSpec:
    """One Delta table: where it lives, what it holds and how rows are identified."""

    name: str  # "<layer>.<table>", also the Airflow Asset name
    schema: pa.Schema
    keys: tuple[str, ...]
    partition_by: tuple[str, ...] = ()
    version: int = 1  # bump on any schema change; recorded in every commit
    description: str = ""
    # Columns that record who/when wrote a row; ignored when deciding whether a rewrite changes anything.
    audit_columns: tuple[str, ...] = field(default=("run_id",))

    def __post_init__(self) -> None:
        names = set(self.schema.names)
        for c in (*self.keys, *self.partition_by, *self.audit_columns):
            if c not in names:
                raise ValueError(f"{self.name}: declared column {c!r} is not in the schema")

    @property
    def layer(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def table(self) -> str:
        return self.name.split(".", 1)[1]

    @property
    def path(self) -> str:
        """Location relative to the lake root: ``<layer>/<table>``."""
        return f"{self.layer}/{self.table}"

    @property
    def content_columns(self) -> list[str]:
        return [n for n in self.schema.names if n not in self.audit_columns]

    def doc(self, column: str) -> str:
        meta = self.schema.field(column).metadata or {}
        return meta.get(b"doc", b"").decode()


from schemas.registry import TABLES, get  # noqa: E402  (registry imports TableSpec from here)

__all__ = ["TIMESTAMP", "TABLES", "TableSpec", "col", "get"]
