"""Where each ad of a synthetic corpus ended, compared with its ground truth."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adlake.lake import Lake, Quarantine
from adlake.lake.sql import sql_literal
from schemas.registry import ADS


@dataclass
class TruthCheck:
    checked: int = 0
    matched: int = 0
    mismatches: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.checked > 0 and not self.mismatches

    def as_dict(self) -> dict[str, Any]:
        return {"checked": self.checked, "matched": self.matched, "ok": self.ok, "mismatches": self.mismatches}


def placements(lake: Lake, crawl_date: dt.date) -> dict[str, list[dict[str, Any]]]:
    """Every place an ad id occurs for a crawl date: silver.ads rows and open quarantine entries."""
    out: dict[str, list[dict[str, Any]]] = {}
    if lake.exists(ADS):
        for r in lake.read(ADS, where=f"crawl_date = {sql_literal(crawl_date)}").to_pylist():
            # An ad ads_parse filtered later keeps its video id: ingest selected it.
            ingest_selected = r["status"] == "selected" or (r["status"] == "filtered" and r["video_id"])
            out.setdefault(r["ad_id"], []).append({"outcome": "selected" if ingest_selected else r["status"],
                                                   "reason": r["reason"], "video_id": r["video_id"]})
    for r in Quarantine(lake).entries(partition=crawl_date.isoformat()).to_pylist():
        ad_id = r["entity_key"].split("/", 1)[1].split("@row", 1)[0]
        out.setdefault(ad_id, []).append({"outcome": "quarantined", "error_class": r["error_class"],
                                          "row": r["entity_key"].split("@row")[1] if "@row" in r["entity_key"] else None})
    return out


def check_against_truth(lake: Lake, corpus: Path, crawl_date: dt.date) -> TruthCheck:
    truth = json.loads((Path(corpus) / "ground_truth.json").read_text())["ads"]
    placed = placements(lake, crawl_date)
    result = TruthCheck()
    for key, t in sorted(truth.items()):
        expected = t["expected"]
        ad_id = t.get("row_ad_id", key)
        got = placed.get(ad_id, [])
        if "row_ad_id" in t:  # a repeated ad id: the repeat is quarantined, the first row lives on
            got = [g for g in got if g["outcome"] == "quarantined"]
        else:
            got = [g for g in got if not (g["outcome"] == "quarantined" and g.get("error_class") == "duplicate_ad_id")]
        result.checked += 1
        good = len(got) == 1 and got[0]["outcome"] == expected["outcome"] and all(
            got[0].get(k) == v for k, v in expected.items() if k in ("reason", "error_class"))
        if good and expected["outcome"] == "selected":
            good = bool(got[0]["video_id"])
            if good and "shares_video_with" in expected:
                other = [g for g in placed.get(expected["shares_video_with"], []) if g["outcome"] == "selected"]
                good = bool(other) and other[0]["video_id"] == got[0]["video_id"]
        if good:
            result.matched += 1
        else:
            result.mismatches.append({"ad": key, "expected": expected, "found": got})
    return result
