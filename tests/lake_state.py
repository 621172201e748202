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


_DUMP = """
import json, sys
from adlake.lake import Lake
from adlake.provenance import RunContext
from schemas import TABLES
lake = Lake(RunContext.create("test"))
out = {n: lake.read(s).to_pylist() for n, s in TABLES.items() if lake.exists(s)}
json.dump({"media_root": lake.settings.media.uri.rstrip("/"), "tables": out}, open(sys.argv[1], "w"), default=str)
import os; os._exit(0)
"""

# Columns that say when, by which run or how fast: they differ between any two runs. Also where the manifest
# was read from (a folder here, s3:// there) and the quarantine's messages, which quote temporary file names
# and ffmpeg's pointer addresses (their error classes and payloads are compared).
VOLATILE = {"run_id", "source_versions", "decode_s", "audio_s", "asr_s", "write_s", "attempts", "first_seen",
            "last_seen", "resolved_at", "manifest_uri", "message"}
# Tables whose values depend on which tokenizer version is in production (the embedded test run trains two).
BY_PRODUCTION_TOKENIZER = {"gold.samples": ("task", "split", "ad_id"),
                           "gold.benchmark": ("benchmark", "ad_id", "product_id", "k", "same_product_distractors")}


def lake_rows(env: dict[str, str], path) -> dict:
    """Every table's rows of the lake ``env`` points at, with the media store's root replaced by <media>."""
    res = subprocess.run([sys.executable, "-c", _DUMP, str(path)], env=env, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    dump = json.loads(path.read_text())
    root = dump["media_root"]

    def norm(v):
        return v.replace(root, "<media>") if isinstance(v, str) else v
    return {name: [{k: norm(v) for k, v in r.items() if k not in VOLATILE and not k.endswith("_at")} for r in rows]
            for name, rows in dump["tables"].items()}


def lake_differences(a: dict, b: dict, keys: dict[str, tuple[str, ...]], atol: float) -> list[str]:
    """How two lakes' tables differ: missing tables, keys in one only, and values that are not equal (floats
    and float vectors: within ``atol``). Tables keyed by tokenizer version are compared on the versions both
    have; the training sets built from the production tokenizer on their keys and tokenizer-free columns."""
    import math

    diffs: list[str] = []
    if set(a) != set(b):
        diffs.append(f"tables: {sorted(set(a) ^ set(b))} in one lake only")

    def close(x, y) -> bool:
        if isinstance(x, float) or isinstance(y, float):
            return x is not None and y is not None and math.isclose(x, y, rel_tol=0, abs_tol=atol)
        if isinstance(x, list) and isinstance(y, list):
            return len(x) == len(y) and all(close(p, q) for p, q in zip(x, y, strict=True))
        return x == y

    for name in sorted(set(a) & set(b)):
        rows_a, rows_b = a[name], b[name]
        if "tokenizer_id" in keys[name]:
            common = {r["tokenizer_id"] for r in rows_a} & {r["tokenizer_id"] for r in rows_b}
            rows_a = [r for r in rows_a if r["tokenizer_id"] in common]
            rows_b = [r for r in rows_b if r["tokenizer_id"] in common]
        if name in BY_PRODUCTION_TOKENIZER:
            cols = (*keys[name], *BY_PRODUCTION_TOKENIZER[name])
            rows_a = [{k: r[k] for k in cols} for r in rows_a]
            rows_b = [{k: r[k] for k in cols} for r in rows_b]
        by_a = {tuple(r[k] for k in keys[name]): r for r in rows_a}
        by_b = {tuple(r[k] for k in keys[name]): r for r in rows_b}
        if set(by_a) != set(by_b):
            diffs.append(f"{name}: keys in one lake only: {sorted(set(by_a) ^ set(by_b), key=str)[:5]}")
        for key in sorted(set(by_a) & set(by_b), key=str):
            bad = [c for c in by_a[key] if not close(by_a[key][c], by_b[key].get(c))]
            if bad:
                diffs.append(f"{name} {key}: {[(c, str(by_a[key][c])[:80], str(by_b[key][c])[:80]) for c in bad]}")
    return diffs
