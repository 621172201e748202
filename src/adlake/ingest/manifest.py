"""Crawl manifests (contract: Parquet, CSV or JSONL): reading and the row-level contract checks.

The checks are pandera checks on pandas batches, so the same code validates a small manifest here and
each partition of a million-row manifest inside Spark (``adlake.ingest.filter``). Each failing row gets
exactly one error class, the first of ``ERROR_CLASSES`` it breaks.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import fsspec
import numpy as np
import pandas as pd
import pandera.pandas as pdr

from adlake.errors import NothingToDo

STAGE = "ingest.manifest"
REQUIRED = ("ad_id", "url", "product_id", "product_name")
OPTIONAL = ("selling_points", "industry", "advertiser_id", "title", "play_count", "like_count", "published_at",
            "duration_s")
# When a row breaks several rules, the first class in this order is the one recorded.
ERROR_CLASSES = ("unparseable_row", "missing_field", "bad_url", "bad_value", "duplicate_ad_id")


class ManifestError(ValueError):
    """The manifest file as a whole cannot be read (format, missing required columns)."""

    error_class = "bad_manifest"


class NoManifest(ManifestError, NothingToDo):
    """No manifest landed for the crawl date: nothing to filter (the task is skipped)."""


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
        raise NoManifest(f"no manifest landed for {crawl_date}: {folder} does not exist")
    found = sorted(p for p in fs.ls(path, detail=False) if p.rsplit(".", 1)[-1] in ("parquet", "csv", "jsonl"))
    if not found:
        raise NoManifest(f"no manifest landed for {crawl_date}: {folder} holds no .parquet, .csv or .jsonl file")
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


# Typed manifest columns as they leave validation (a Spark DDL of the same lives in ingest.filter).
TYPED_COLUMNS = ("ad_id", "url", "product_id", "product_name", "selling_points", "industry", "advertiser_id",
                 "title", "play_count", "like_count", "published_at", "duration_s")


def check_rows(raw: pd.DataFrame, allowed_schemes: list[str]) -> pd.DataFrame:
    """Row-local contract checks of one batch: the typed columns plus ``error_class``, ``error_message``
    and ``payload`` (the raw row as JSON, for rows that failed). Duplicates across rows are not checked here."""
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
            raw_value = raw.at[case.index, case.column] if case.column in raw.columns else None
            errors.setdefault(case.index, []).append(
                (cls, f"{case.column}: {_message(case.column, cls, allowed_schemes)} (got {_show(raw_value)})"))
    if "_unparseable" in raw.columns:
        for i in raw.index[raw["_unparseable"].notna()]:
            errors[i] = [("unparseable_row", f"not a JSON object: {raw.at[i, '_unparseable']!r}")]
    out = frame[list(TYPED_COLUMNS)].copy()
    out["error_class"] = pd.Series([None] * len(out), index=out.index, dtype=object)
    out["error_message"] = out["error_class"].copy()
    out["payload"] = out["error_class"].copy()
    for i, errs in errors.items():
        errs.sort(key=lambda e: ERROR_CLASSES.index(e[0]))
        out.at[i, "error_class"] = errs[0][0]
        out.at[i, "error_message"] = "; ".join(m for _, m in errs)
        row = {k: _show(v, raw_repr=False) for k, v in raw.loc[i].to_dict().items() if not k.startswith("_")}
        out.at[i, "payload"] = json.dumps(row, default=str, sort_keys=True)
        for c in TYPED_COLUMNS:  # an untypeable value must not travel further
            if out.at[i, c] is INVALID:
                out.at[i, c] = None
    return out


def _show(value: Any, raw_repr: bool = True) -> Any:
    if isinstance(value, np.ndarray):
        value = value.tolist()
    return repr(value) if raw_repr else value


@dataclass
class Validation:
    valid: pd.DataFrame  # typed rows that meet the contract, with their row_number
    rejected: list[tuple[int, str, str]]  # (row number, error class, message)


def validate(raw: pd.DataFrame, allowed_schemes: list[str]) -> Validation:
    """All contract checks of a whole (small) manifest, duplicates included; Spark runs the same per batch."""
    checked = check_rows(raw, allowed_schemes).assign(row_number=lambda f: f.index.astype("int64"))
    ok = checked["error_class"].isna()
    # Only valid rows count: the first valid occurrence of an ad id lands, later ones are duplicates.
    dup = ok & checked["ad_id"].where(ok).duplicated(keep="first")
    checked.loc[dup, "error_class"] = "duplicate_ad_id"
    checked.loc[dup, "error_message"] = checked.loc[dup, "ad_id"].map(
        lambda a: f"ad_id {a!r} already occurs earlier in this manifest")
    rejected = [(int(i), r.error_class, r.error_message) for i, r in checked[checked["error_class"].notna()].iterrows()]
    valid = checked[checked["error_class"].isna()].drop(columns=["error_class", "error_message", "payload"])
    return Validation(valid=valid, rejected=rejected)


def _message(column: str, error_class: str, allowed_schemes: list[str]) -> str:
    if error_class == "missing_field":
        return "is required"
    if error_class == "bad_url":
        return f"must be an absolute URL with a scheme in {sorted(allowed_schemes)}"
    return {"selling_points": "must be a list of strings (CSV: '|'-separated)",
            "published_at": "must be an ISO-8601 timestamp"}.get(column, "must be a non-negative number")
