"""Crawl manifests (contract: Parquet, CSV or JSONL) read, checked row by row, and landed.

Rows that break the contract are quarantined with one error class each; the rest land in
``bronze.crawl_manifest``, replacing only that crawl date's partition, so a rerun changes nothing.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import fsspec
import numpy as np
import pandas as pd
import pandera.pandas as pdr
import pyarrow as pa

from adlake.lake import Lake, Quarantine, QuarantineRecord
from schemas.registry import CRAWL_MANIFEST

STAGE = "ingest.manifest"
REQUIRED = ("ad_id", "url", "product_id", "product_name")
OPTIONAL = ("selling_points", "industry", "advertiser_id", "title", "play_count", "like_count", "published_at",
            "duration_s")
# When a row breaks several rules, the first class in this order is the one recorded.
ERROR_CLASSES = ("unparseable_row", "missing_field", "bad_url", "bad_value", "duplicate_ad_id")


class ManifestError(ValueError):
    """The manifest file as a whole cannot be read (format, missing required columns)."""

    error_class = "bad_manifest"


def manifest_format(uri: str) -> str:
    name = uri.rsplit("/", 1)[-1].lower()
    for suffix, fmt in ((".parquet", "parquet"), (".csv", "csv"), (".jsonl", "jsonl"), (".json", "jsonl"),
                        (".ndjson", "jsonl")):
        if name.endswith(suffix):
            return fmt
    raise ManifestError(f"{uri}: unknown manifest format; expected .parquet, .csv or .jsonl")


def find_manifest(landing_uri: str, crawl_date: dt.date) -> str:
    """The one manifest landed for a crawl date under ``<landing>/<crawl_date>/``."""
    folder = f"{landing_uri.rstrip('/')}/{crawl_date.isoformat()}"
    fs, path = fsspec.core.url_to_fs(folder)
    if not fs.exists(path):
        raise ManifestError(f"no manifest landed for {crawl_date}: {folder} does not exist")
    found = sorted(p for p in fs.ls(path, detail=False) if p.rsplit(".", 1)[-1] in ("parquet", "csv", "jsonl"))
    if len(found) != 1:
        raise ManifestError(f"expected exactly one manifest in {folder}, found {len(found)}: {found}")
    return found[0] if "://" not in folder else f"{folder.split('://')[0]}://{found[0]}"


def read_manifest(uri: str) -> pd.DataFrame:
    """The manifest as strings and lists, untyped: typing is part of validation."""
    fmt = manifest_format(uri)
    with fsspec.open(uri, "rb") as f:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(f)
            frame = table.to_pandas(types_mapper=None)
        elif fmt == "csv":
            frame = pd.read_csv(f, dtype=str, keep_default_na=False, na_values=[""])
        else:
            lines = [ln for ln in f.read().decode("utf-8").splitlines() if ln.strip()]
            rows = []
            for i, ln in enumerate(lines):
                try:
                    value = json.loads(ln)
                except json.JSONDecodeError:
                    value = None
                rows.append(value if isinstance(value, dict) else {"_unparseable": ln[:500], "_line": i})
            frame = pd.DataFrame(rows)
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise ManifestError(f"{uri}: required column(s) {missing} missing; found {list(frame.columns)}")
    for c in OPTIONAL:
        if c not in frame.columns:
            frame[c] = None
    frame = frame.astype(object).where(frame.notna(), None)
    return frame.reset_index(drop=True)


class _Invalid:
    """Marks a value that could not be typed; unlike NaN it is not null, so pandera checks it."""

    def __repr__(self) -> str:
        return "<invalid>"


INVALID = _Invalid()


def _blank(s: pd.Series) -> pd.Series:
    return s.isna() | s.map(lambda v: isinstance(v, str) and not v.strip())


def _to_int(v: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, bool):
        return INVALID
    if isinstance(v, int | np.integer):
        return int(v)
    if isinstance(v, float | np.floating):
        return None if np.isnan(v) else int(v) if float(v).is_integer() else INVALID
    try:
        f = float(str(v).strip())
    except ValueError:
        return INVALID
    return int(f) if f.is_integer() else INVALID


def _to_float(v: Any) -> Any:
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return INVALID
    return None if np.isnan(f) else f


def _to_points(v: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, str):
        return [p.strip() for p in v.split("|") if p.strip()]
    if isinstance(v, list | tuple | np.ndarray):
        return [str(p) for p in v] if all(isinstance(p, str) for p in v) else INVALID
    return INVALID


def _to_time(v: Any) -> Any:
    if v is None:
        return None
    try:
        ts = pd.Timestamp(v)
    except (ValueError, TypeError):
        return INVALID
    if ts is pd.NaT:
        return INVALID
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def normalise(frame: pd.DataFrame) -> pd.DataFrame:
    """Typed copy of the manifest; a value that cannot be typed becomes INVALID (and fails validation)."""
    out = frame.copy()
    for c in ("ad_id", "url", "product_id", "product_name", "industry", "advertiser_id", "title"):
        out[c] = out[c].map(lambda v: None if v is None else str(v).strip())
    # Series.map would turn None into NaN; build object columns explicitly.
    for c, convert in (("play_count", _to_int), ("like_count", _to_int), ("duration_s", _to_float),
                       ("selling_points", _to_points), ("published_at", _to_time)):
        out[c] = pd.Series([convert(v) for v in out[c]], index=out.index, dtype=object)
    return out


def _url_ok(allowed: set[str]):
    def check(url: str | None) -> bool:
        if url is None:
            return True  # reported as missing_field
        parsed = urlparse(url)
        if parsed.scheme not in allowed:
            return False
        return bool(parsed.path) if parsed.scheme == "file" else bool(parsed.netloc and parsed.path)
    return check


def contract_schema(allowed_schemes: list[str]) -> pdr.DataFrameSchema:
    """The manifest contract as pandera checks; each check's name is the error class it reports."""
    def required() -> pdr.Column:
        # Nulls fail pandera's own not_nullable check, blanks this one; both are missing_field.
        return pdr.Column(object, nullable=False, checks=pdr.Check(lambda s: ~_blank(s), name="missing_field"))

    def non_negative() -> pdr.Column:
        return pdr.Column(object, nullable=True, checks=pdr.Check(
            lambda s: s.map(lambda v: v is not INVALID and v >= 0),
            name="bad_value"))

    allowed = set(allowed_schemes)
    url_check = _url_ok(allowed)
    return pdr.DataFrameSchema({
        "ad_id": required(),
        "url": pdr.Column(object, nullable=False, checks=[
            pdr.Check(lambda s: ~_blank(s), name="missing_field"),
            pdr.Check(lambda s: s.map(url_check), name="bad_url"),
        ]),
        "product_id": required(),
        "product_name": required(),
        "play_count": non_negative(),
        "like_count": non_negative(),
        "duration_s": non_negative(),
        "selling_points": pdr.Column(object, nullable=True, checks=pdr.Check(
            lambda s: s.map(lambda v: v is not INVALID), name="bad_value")),
        "published_at": pdr.Column(object, nullable=True, checks=pdr.Check(
            lambda s: s.map(lambda v: v is not INVALID), name="bad_value")),
    }, strict=False, coerce=False)


@dataclass
class Validation:
    valid: pd.DataFrame  # typed rows that meet the contract
    rejected: list[tuple[int, str, str]]  # (row number, error class, message)


def validate(raw: pd.DataFrame, allowed_schemes: list[str]) -> Validation:
    frame = normalise(raw)
    errors: dict[int, list[tuple[str, str]]] = {}
    try:
        contract_schema(allowed_schemes).validate(frame, lazy=True)
    except pdr.errors.SchemaErrors as exc:
        for case in exc.failure_cases.itertuples():
            if pd.isna(case.index):
                raise ManifestError(f"manifest cannot be validated: {case.check} on {case.column}") from exc
            check = str(case.check)
            cls = "missing_field" if check == "not_nullable" else check if check in ERROR_CLASSES else "bad_value"
            raw_value = raw.at[int(case.index), case.column] if case.column in raw.columns else None
            errors.setdefault(int(case.index), []).append(
                (cls, f"{case.column}: {_message(case.column, cls, allowed_schemes)} (got {raw_value!r})"))
    if "_unparseable" in raw.columns:
        for i in raw.index[raw["_unparseable"].notna()]:
            errors[int(i)] = [("unparseable_row", f"line {i + 1} is not a JSON object: {raw.at[i, '_unparseable']!r}")]
    seen: set[str] = set()
    for i, ad_id in frame["ad_id"].items():
        if ad_id is None or i in errors:
            continue
        if ad_id in seen:
            errors[int(i)] = [("duplicate_ad_id", f"ad_id {ad_id!r} already occurs earlier in this manifest")]
        seen.add(ad_id)
    rejected = []
    for i, errs in sorted(errors.items()):
        errs.sort(key=lambda e: ERROR_CLASSES.index(e[0]))
        rejected.append((i, errs[0][0], "; ".join(m for _, m in errs)))
    valid = frame.drop(index=list(errors)).assign(row_number=lambda f: f.index.astype("int64"))
    return Validation(valid=valid, rejected=rejected)


def _message(column: str, error_class: str, allowed_schemes: list[str]) -> str:
    if error_class == "missing_field":
        return "is required"
    if error_class == "bad_url":
        return f"must be an absolute URL with a scheme in {sorted(allowed_schemes)}"
    return {"selling_points": "must be a list of strings (CSV: '|'-separated)",
            "published_at": "must be an ISO-8601 timestamp"}.get(column, "must be a non-negative number")


@dataclass
class LandingResult:
    manifest: str
    crawl_date: str
    rows: int
    landed: int
    quarantined: int
    by_error_class: dict[str, int]
    table_version: int | None
    skipped_write: bool

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def land(lake: Lake, manifest_uri: str, crawl_date: dt.date) -> LandingResult:
    """Validate a manifest and land it as the crawl date's partition of ``bronze.crawl_manifest``."""
    settings = lake.settings
    quarantine = Quarantine(lake)
    partition = crawl_date.isoformat()
    try:
        raw = read_manifest(manifest_uri)
    except ManifestError as e:
        quarantine.add([QuarantineRecord(STAGE, f"{partition}/{manifest_uri}", e.error_class, str(e), partition)])
        raise
    result = validate(raw, settings.ingest.allowed_schemes)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    valid = result.valid
    table = pa.table({
        # from_pandas: pandas' NaN/NaT placeholders are nulls, not values.
        **{c: pa.array(valid[c].tolist(), CRAWL_MANIFEST.schema.field(c).type, from_pandas=True)
           for c in ("ad_id", "url", "product_id", "product_name", "selling_points", "industry", "advertiser_id",
                     "title", "play_count", "like_count", "duration_s")},
        "published_at": pa.array([None if v is None else v.to_pydatetime() for v in valid["published_at"]],
                                 CRAWL_MANIFEST.schema.field("published_at").type),
        "crawl_date": pa.array([crawl_date] * len(valid), pa.date32()),
        "manifest_uri": pa.array([manifest_uri] * len(valid), pa.string()),
        "row_number": pa.array(valid["row_number"].tolist(), pa.int64()),
        "landed_at": pa.array([now] * len(valid), CRAWL_MANIFEST.schema.field("landed_at").type),
        "run_id": pa.array([lake.ctx.run_id] * len(valid), pa.string()),
    }).select(CRAWL_MANIFEST.schema.names)
    write = lake.overwrite_partition(CRAWL_MANIFEST, table, {"crawl_date": crawl_date})
    records = []
    for row, cls, message in result.rejected:
        ad_id = raw.at[row, "ad_id"] if raw.at[row, "ad_id"] is not None else "-"
        payload = {k: v for k, v in raw.loc[row].to_dict().items() if not k.startswith("_")}
        records.append(QuarantineRecord(STAGE, f"{partition}/{ad_id}@row{row}", cls, message, partition, payload))
    if records:
        quarantine.add(records)
    # Entries of this crawl date that this landing no longer rejects were fixed upstream.
    still_bad = {r.entity_key for r in records}
    stale = quarantine.entries(stage=STAGE, partition=partition)
    quarantine.resolve(STAGE, [k for k in stale["entity_key"].to_pylist() if k not in still_bad])
    by_class: dict[str, int] = {}
    for _, cls, _ in result.rejected:
        by_class[cls] = by_class.get(cls, 0) + 1
    return LandingResult(manifest=manifest_uri, crawl_date=partition, rows=len(raw), landed=table.num_rows,
                         quarantined=len(records), by_error_class=by_class, table_version=write.version,
                         skipped_write=write.skipped)


def default_manifest(settings_landing_uri: str, crawl_date: dt.date) -> str:
    return find_manifest(settings_landing_uri, crawl_date)


def local_path(uri: str) -> Path | None:
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return Path(parsed.path)
    return None
