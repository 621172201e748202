"""Transactional reads and writes of the declared tables through delta-rs.

Every write is cast to the table's schema (``schemas/``), stamped with the run's provenance in the
commit metadata, and idempotent: a retried append is recognised by its transaction app-id, a
re-merge of the same rows and a rewrite of a partition with the same content commit nothing.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable, QueryBuilder, Transaction, write_deltalake
from deltalake.exceptions import CommitFailedError, TableNotFoundError

from adlake.lake.schema import SchemaDriftError, conform
from adlake.lake.sql import quote, sql_literal
from adlake.provenance import RunContext
from schemas import TableSpec


class DuplicateKeyError(ValueError):
    """A write carries two rows with the same key."""


@dataclass
class WriteResult:
    table: str
    operation: str
    version: int | None  # table version after the write (unchanged when skipped)
    rows: int  # rows in the write's input
    skipped: bool = False
    note: str = ""
    inserted: int | None = None
    updated: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None and v != ""}


def count_values(values) -> dict[str, int]:
    """How often each non-null value occurs, sorted by value: the counts every job summary reports."""
    out: dict[str, int] = {}
    for v in values:
        if v is not None:
            out[v] = out.get(v, 0) + 1
    return dict(sorted(out.items()))


def _as_pyarrow(table: Any) -> pa.Table:
    return table if isinstance(table, pa.Table) else pa.table(table)


def _sorted_content(spec: TableSpec, table: pa.Table) -> pa.Table:
    cols = spec.content_columns
    return table.select(cols).sort_by([(k, "ascending") for k in spec.keys])


class Lake:
    """The lake of one run: table locations from the configuration, provenance from the run context."""

    def __init__(self, ctx: RunContext):
        self.ctx = ctx
        self.settings = ctx.settings
        self.storage_options = dict(self.settings.lake.storage_options) or None
        self._pins: dict[str, int | None] = {}  # table → version reads see (None: did not exist when pinned)

    # -- pinned inputs --------------------------------------------------------------------------
    def pin(self, *specs: TableSpec) -> dict[str, int | None]:
        """Pin each table at its current version (``None`` when it does not exist yet) and return the pins.

        A job pins its inputs once, at the start, and logs the returned dict with its run: from then on
        ``read`` (without ``version``/``as_of``), ``version``, ``count`` and ``exists`` see the pinned
        version, whatever other jobs commit meanwhile. A table already pinned keeps its pin, so library
        code may pin what it reads and get the job's snapshot. Writing a pinned table (``append``,
        ``merge``, ``overwrite_partition``) drops its pin: the job then reads its own writes.
        """
        for spec in specs:
            if spec.name not in self._pins:
                self._pins[spec.name] = self.latest_version(spec)
        return {spec.name: self._pins[spec.name] for spec in specs}

    @property
    def pins(self) -> dict[str, int | None]:
        """The current pins, table name → version."""
        return dict(self._pins)

    def unpin(self, *specs: TableSpec) -> None:
        """Drop the pins of these tables (of every table when none is given): reads see the latest version."""
        for name in [s.name for s in specs] if specs else list(self._pins):
            self._pins.pop(name, None)

    def _pinned(self, spec: TableSpec) -> tuple[bool, int | None]:
        return (True, self._pins[spec.name]) if spec.name in self._pins else (False, None)

    # -- locations and metadata -------------------------------------------------------------------
    def uri(self, spec: TableSpec) -> str:
        return f"{self.settings.lake.uri.rstrip('/')}/{spec.path}"

    def exists(self, spec: TableSpec) -> bool:
        """Whether the table exists (at its pinned version, when pinned)."""
        pinned, version = self._pinned(spec)
        if pinned:
            return version is not None
        return DeltaTable.is_deltatable(self.uri(spec), storage_options=self.storage_options)

    def table(self, spec: TableSpec, version: int | str | dt.datetime | None = None) -> DeltaTable:
        try:
            table = DeltaTable(self.uri(spec), storage_options=self.storage_options)
        except TableNotFoundError:
            raise TableNotFoundError(f"{spec.name} does not exist yet at {self.uri(spec)}") from None
        if version is not None:
            table.load_as_version(version)
        return table

    def version(self, spec: TableSpec) -> int | None:
        """The version reads see: the pinned one when the table is pinned, else the latest (None: no table)."""
        pinned, version = self._pinned(spec)
        return version if pinned else self.latest_version(spec)

    def latest_version(self, spec: TableSpec) -> int | None:
        """The table's latest committed version, pins aside (None when it does not exist)."""
        if not DeltaTable.is_deltatable(self.uri(spec), storage_options=self.storage_options):
            return None
        return self.table(spec).version()

    def history(self, spec: TableSpec, limit: int | None = None) -> list[dict[str, Any]]:
        return self.table(spec).history(limit)

    def _commit(self, spec: TableSpec, operation: str, app: Transaction | None = None,
                **extra: Any) -> CommitProperties:
        meta = {**self.ctx.stamp(), "adlake.table": spec.name, "adlake.schema_version": str(spec.version),
                "adlake.operation": operation, **{f"adlake.{k}": str(v) for k, v in extra.items()}}
        return CommitProperties(custom_metadata=meta, app_transactions=[app] if app else None,
                                max_commit_retries=self.settings.lake.max_commit_retries)

    def ensure(self, spec: TableSpec) -> DeltaTable:
        """Open the table, creating it empty on first use; refuse a table whose columns drifted."""
        if self.latest_version(spec) is None:
            try:
                DeltaTable.create(self.uri(spec), schema=spec.schema, mode="ignore",
                                  partition_by=list(spec.partition_by) or None, name=spec.name,
                                  description=spec.description or None,
                                  storage_options=self.storage_options,
                                  commit_properties=self._commit(spec, "create"))
            except Exception as e:  # a concurrent creator won the race
                if self.latest_version(spec) is None:
                    raise
                del e
        table = self.table(spec)
        on_disk = [f.name for f in table.schema().fields]
        if on_disk != spec.schema.names:
            raise SchemaDriftError(
                f"{spec.name}: table at {self.uri(spec)} has columns {on_disk}, but schema v{spec.version} "
                f"declares {spec.schema.names}; migrate the table before writing")
        return table

    # -- reads ----------------------------------------------------------------------------------
    def read(self, spec: TableSpec, *, version: int | None = None, as_of: dt.datetime | str | None = None,
             columns: list[str] | None = None, where: str | None = None, limit: int | None = None) -> pa.Table:
        """Rows at the pinned version (see ``pin``; the latest when the table is not pinned), at ``version``,
        or as of a timestamp, in the declared types.

        ``where`` is a SQL predicate (DataFusion dialect). Reads go through DataFusion rather than a
        pyarrow dataset: delta-rs's Python filesystem handler aborts the interpreter at exit after a scan.
        """
        if version is not None and as_of is not None:
            raise ValueError("give version or as_of, not both")
        if version is None and as_of is None:
            pinned, version = self._pinned(spec)
            if pinned and version is None:
                raise TableNotFoundError(f"{spec.name} did not exist yet when this run pinned its inputs")
        return self._query(spec, self.table(spec, version if version is not None else as_of), columns, where, limit)

    def _query(self, spec: TableSpec, table: DeltaTable, columns: list[str] | None, where: str | None,
               limit: int | None = None) -> pa.Table:
        select = ", ".join(quote(c) for c in columns) if columns else "*"
        sql = f"SELECT {select} FROM t" + (f" WHERE {where}" if where else "") + (
            f" LIMIT {int(limit)}" if limit is not None else "")
        data = pa.table(QueryBuilder().register("t", table).execute(sql).read_all())
        return data if columns else conform(spec, data)

    def count(self, spec: TableSpec) -> int:
        """Rows at the version reads see (pinned or latest); 0 when the table does not exist."""
        if not self.exists(spec):
            return 0
        pinned, version = self._pinned(spec)
        return self.table(spec, version if pinned else None).count()

    # -- writes ---------------------------------------------------------------------------------
    def append(self, spec: TableSpec, data: pa.Table, *, app_id: str | None = None,
               app_version: int = 1) -> WriteResult:
        """Append rows. With ``app_id``, a retry of an already committed append is a no-op."""
        self.unpin(spec)  # from here on this run reads its own writes
        data = conform(spec, _as_pyarrow(data))
        table = self.ensure(spec)
        if app_id is not None:
            done = table.transaction_version(app_id)
            if done is not None and done >= app_version:
                return WriteResult(spec.name, "append", table.version(), data.num_rows, skipped=True,
                                   note=f"transaction {app_id}@{app_version} already committed")
        if data.num_rows == 0:
            return WriteResult(spec.name, "append", table.version(), 0, skipped=True, note="no rows")
        app = Transaction(app_id, app_version) if app_id is not None else None
        write_deltalake(table, data, mode="append", storage_options=self.storage_options,
                        commit_properties=self._commit(spec, "append", app, app_id=app_id or ""))
        return WriteResult(spec.name, "append", self.table(spec).version(), data.num_rows,
                           inserted=data.num_rows)

    def _check_unique(self, spec: TableSpec, data: pa.Table) -> None:
        if data.num_rows == 0:
            return
        counts = data.group_by(list(spec.keys)).aggregate([([], "count_all")])
        dupes = counts.filter(pc.greater(counts["count_all"], 1))
        if dupes.num_rows:
            sample = dupes.slice(0, 3).drop_columns(["count_all"]).to_pylist()
            raise DuplicateKeyError(f"{spec.name}: {dupes.num_rows} key(s) occur more than once in the "
                                    f"write, e.g. {sample}")

    def merge(self, spec: TableSpec, data: pa.Table) -> WriteResult:
        """Upsert on the key, in bounded batches; rows identical to the table (audit columns aside) are left alone."""
        self.unpin(spec)  # from here on this run reads its own writes
        data = conform(spec, _as_pyarrow(data))
        self._check_unique(spec, data)
        table = self.ensure(spec)
        on = " AND ".join(f"{quote(k, 't')} = {quote(k, 's')}" for k in spec.keys)
        changed = " OR ".join(f"({quote(c, 't')} IS DISTINCT FROM {quote(c, 's')})"
                              for c in spec.content_columns if c not in spec.keys)
        inserted = updated = 0
        batch_rows = self.settings.lake.merge_batch_rows
        for offset in range(0, data.num_rows, batch_rows):
            batch = data.slice(offset, batch_rows)

            def merge_batch(batch=batch, offset=offset) -> dict:
                merger = self.table(spec).merge(batch, on, source_alias="s", target_alias="t",
                                                commit_properties=self._commit(spec, "merge", batch_offset=offset))
                if changed:
                    merger = merger.when_matched_update_all(predicate=changed)
                return merger.when_not_matched_insert_all().execute()
            metrics = self._on_conflict_rerun(spec, merge_batch)
            inserted += metrics["num_target_rows_inserted"]
            updated += metrics["num_target_rows_updated"]
        table = self.table(spec)
        return WriteResult(spec.name, "merge", table.version(), data.num_rows,
                           skipped=inserted == updated == 0, inserted=inserted, updated=updated)

    def overwrite_partition(self, spec: TableSpec, data: pa.Table, partition: dict[str, Any]) -> WriteResult:
        """Replace exactly one partition's rows; rewriting the same content commits nothing."""
        if sorted(partition) != sorted(spec.partition_by):
            raise ValueError(f"{spec.name} is partitioned by {list(spec.partition_by)}, got {sorted(partition)}")
        self.unpin(spec)  # from here on this run reads its own writes
        data = conform(spec, _as_pyarrow(data))
        self._check_unique(spec, data)
        for column, value in partition.items():
            values = pc.unique(data[column]).to_pylist()
            if values and values != [value]:
                raise ValueError(f"{spec.name}: rows for partition {column}={value!r} carry {column}={values}")
        self.ensure(spec)
        predicate = " AND ".join(f"{quote(c)} = {sql_literal(v)}" for c, v in partition.items())

        def replace() -> WriteResult:
            table = self.table(spec)
            existing = self._query(spec, table, None, predicate)
            if _sorted_content(spec, existing).equals(_sorted_content(spec, data)):
                return WriteResult(spec.name, "overwrite_partition", table.version(), data.num_rows, skipped=True,
                                   note="partition already holds these rows")
            props = self._commit(spec, "overwrite_partition", partition=predicate)
            if data.num_rows == 0:
                table.delete(predicate, commit_properties=props)
            else:
                write_deltalake(table, data, mode="overwrite", predicate=predicate,
                                storage_options=self.storage_options, commit_properties=props)
            return WriteResult(spec.name, "overwrite_partition", self.table(spec).version(), data.num_rows,
                               inserted=data.num_rows, note=f"replaced {existing.num_rows} row(s)")
        return self._on_conflict_rerun(spec, replace)

    def _on_conflict_rerun(self, spec: TableSpec, write: Callable[[], Any]) -> Any:
        """Run a read-modify-write again from the latest version when a concurrent commit conflicts with it
        (delta-rs retries plain commits itself; a MERGE or replace that read the table must be rerun)."""
        tries = self.settings.lake.max_commit_retries
        for attempt in range(tries + 1):
            try:
                return write()
            except CommitFailedError:
                if attempt == tries:
                    raise
                time.sleep(random.uniform(0, min(2.0, 0.05 * 2 ** attempt)))
        raise AssertionError("unreachable")
