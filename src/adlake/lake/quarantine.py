"""``ops.quarantine``: where every input that a stage cannot process ends, with an error class.

Stages call :meth:`Quarantine.add` with what failed and :meth:`Quarantine.resolve` when a later retry
of the same entity succeeds. One row per (stage, entity_key); ``attempts`` counts the runs that failed
on it, so a retried task within one run changes nothing.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from adlake.lake.sql import quote, sql_literal
from schemas.registry import QUARANTINE

if TYPE_CHECKING:
    from adlake.lake.tables import Lake, WriteResult

PAYLOAD_LIMIT = 4096


@dataclass(frozen=True)
class QuarantineRecord:
    stage: str
    entity_key: str
    error_class: str
    message: str
    partition: str | None = None
    payload: Any = None

    def payload_json(self) -> str | None:
        if self.payload is None:
            return None
        text = self.payload if isinstance(self.payload, str) else json.dumps(self.payload, default=str,
                                                                              sort_keys=True)
        return text if len(text) <= PAYLOAD_LIMIT else text[: PAYLOAD_LIMIT - 1] + "…"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


class Quarantine:
    def __init__(self, lake: Lake):
        self.lake = lake

    def _existing(self, keys: set[tuple[str, str]]) -> dict[tuple[str, str], dict]:
        if not keys or not self.lake.exists(QUARANTINE):
            return {}
        stages = sorted({s for s, _ in keys})
        where = "stage IN (" + ", ".join(sql_literal(s) for s in stages) + ")"
        rows = self.lake.read(QUARANTINE, where=where).to_pylist()
        return {(r["stage"], r["entity_key"]): r for r in rows if (r["stage"], r["entity_key"]) in keys}

    def add(self, records: Iterable[QuarantineRecord], deterministic: bool = False) -> WriteResult:
        """Record failures. ``deterministic``: the stage's verdict is a pure function of its input (the
        manifest checks), so the same failure on the same input, seen again by a later run, is no new
        attempt and changes nothing."""
        latest = {(r.stage, r.entity_key): r for r in records}
        existing = self._existing(set(latest))
        run_id, now = self.lake.ctx.run_id, _now()
        rows = []
        for key, rec in latest.items():
            old = existing.get(key)
            row = {"stage": rec.stage, "entity_key": rec.entity_key, "error_class": rec.error_class,
                   "message": rec.message, "partition": rec.partition, "payload": rec.payload_json(),
                   "status": "open", "resolved_at": None, "run_id": run_id}
            if old is None:
                row.update(attempts=1, first_seen=now, last_seen=now)
            elif deterministic and old["status"] == "open" and all(
                    old[k] == row[k] for k in ("error_class", "message", "partition", "payload")):
                continue
            elif old["run_id"] == run_id and old["status"] == "open":
                # A retry inside the same run is the same attempt.
                row.update(attempts=old["attempts"], first_seen=old["first_seen"], last_seen=old["last_seen"])
            else:
                row.update(attempts=old["attempts"] + 1, first_seen=old["first_seen"], last_seen=now)
            rows.append(row)
        return self.lake.merge(QUARANTINE, pa.Table.from_pylist(rows, schema=QUARANTINE.schema))

    def resolve(self, stage: str, entity_keys: Iterable[str]) -> WriteResult | None:
        """Mark open entries resolved once a retry of those entities succeeded."""
        keys = {(stage, k) for k in entity_keys}
        open_rows = [r for r in self._existing(keys).values() if r["status"] == "open"]
        if not open_rows:
            return None
        now = _now()
        for r in open_rows:
            r.update(status="resolved", resolved_at=now)
        return self.lake.merge(QUARANTINE, pa.Table.from_pylist(open_rows, schema=QUARANTINE.schema))

    def entries(self, stage: str | None = None, partition: str | None = None, status: str | None = "open") -> pa.Table:
        if not self.lake.exists(QUARANTINE):
            return QUARANTINE.schema.empty_table()
        terms = [f"{quote(c)} = {sql_literal(v)}" for c, v in (("stage", stage), ("partition", partition),
                                                                 ("status", status)) if v is not None]
        return self.lake.read(QUARANTINE, where=" AND ".join(terms) or None)
