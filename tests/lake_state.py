"""What a lake holds, read in a subprocess under a given adlake environment: row counts, duplicate keys, the
reconciliations, AutoCut samples and production models. Shared by the `adlake run` and the service tests."""

from __future__ import annotations

import json
import subprocess
import sys

_CODE = """
import json, sys, datetime as dt
from collections import Counter
from adlake.lake import Lake
from adlake.provenance import RunContext
from adlake.ingest.crawl import reconcile
from adlake.parse.batch import reconcile_parse
from adlake.tokenizer.registry import production_version
from adlake.index.registry import production_model_version
from schemas import TABLES
lake = Lake(RunContext.create("test"))
counts = {n: lake.count(s) for n, s in TABLES.items() if lake.exists(s)}
dupes = {}
for n, s in TABLES.items():
    if lake.exists(s) and s.keys:
        keys = Counter(tuple(r.values()) for r in lake.read(s, columns=list(s.keys)).to_pylist())
        extra = sum(c - 1 for c in keys.values() if c > 1)
        if extra:
            dupes[n] = extra
per_version = {}
for name in ("gold.tokens", "gold.ad_sequences"):
    if lake.exists(TABLES[name]):
        per_version[name] = dict(Counter(lake.read(TABLES[name], columns=["tokenizer_id"])["tokenizer_id"].to_pylist()))
samples = lake.read(TABLES["gold.samples"], columns=["task"])["task"].to_pylist() if lake.exists(TABLES["gold.samples"]) else []
prod = {f"tokenizer.{m}": production_version(lake.ctx, m) for m in ("video", "audio")}
prod |= {f"index.{k}": getattr(production_model_version(lake.ctx, k), "version", None) for k in ("clips", "bgm")}
print(json.dumps({"counts": counts, "duplicates": dupes, "per_tokenizer_version": per_version,
    "reconciliation": reconcile(lake, dt.date.fromisoformat(sys.argv[1])).as_dict(),
    "parse": reconcile_parse(lake).as_dict(),
    "autocut_samples": sum(t.startswith("autocut") for t in samples), "production": prod}, default=str))
"""


def lake_state(env: dict[str, str], crawl_date: str) -> dict:
    res = subprocess.run([sys.executable, "-c", _CODE, crawl_date], env=env, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def comparable(state: dict) -> dict:
    """Row counts that do not depend on how many tokenizer versions a lake has seen: every table's rows, but
    for the tables keyed by tokenizer version the rows of each modality's newest version."""
    counts = dict(state["counts"])
    for name, per in state["per_tokenizer_version"].items():
        newest = {}
        for tokenizer_id, rows in per.items():
            model, version = tokenizer_id.split("+")[0].rsplit("/", 1)
            if int(version) >= newest.get(model, (-1, 0))[0]:
                newest[model] = (int(version), rows)
        counts[name] = {m: rows for m, (_, rows) in newest.items()}
    return counts
