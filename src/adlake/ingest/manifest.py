"""Crawl manifests (contract: Parquet, CSV or JSONL): reading and the row-level contract checks.

The checks are pandera checks on pandas batches, so the same code validates a small manifest here and
each partition of a million-row manifest inside Spark (``adlake.ingest.filter``). Each failing row gets
exactly one error class, the first of ``ERROR_CLASSES`` it breaks.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import pandas as pd
import pandera.pandas as pdr
import pyarrow as pa

from adlake.errors import NothingToDo
from adlake.ingest.urls import UrlRules, url_problem

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


def find_manifest(landing_uri: str, crawl_date: dt.date, storage_options: dict[str, str] | None = None) -> str:
    """The one manifest landed for a crawl date under ``<landing>/<crawl_date>/`` (a folder, or ``s3://`` with
    the lake's storage options). An object store that cannot be reached raises: it is not "nothing landed"."""
    import pyarrow.fs as pafs

    from adlake.lake.storage import arrow_fs

    folder = f"{landing_uri.rstrip('/')}/{crawl_date.isoformat()}"
    fs, path = arrow_fs(folder, storage_options)
    if fs.get_file_info(path).type != pafs.FileType.Directory:
        raise NoManifest(f"no manifest landed for {crawl_date}: {folder} does not exist")
    found = sorted(i.base_name for i in fs.get_file_info(pafs.FileSelector(path))
                   if i.type == pafs.FileType.File and i.base_name.rsplit(".", 1)[-1] in ("parquet", "csv", "jsonl"))
    if not found:
        raise NoManifest(f"no manifest landed for {crawl_date}: {folder} holds no .parquet, .csv or .jsonl file")
    if len(found) != 1:
        raise ManifestError(f"expected exactly one manifest in {folder}, found {len(found)}: {found}")
    return f"{folder}/{found[0]}"


def land_manifest(source: Path, landing_uri: str, crawl_date: dt.date,
                  storage_options: dict[str, str] | None = None) -> str:
    """Land a manifest file where a scheduled ``ads_ingest`` finds it (``<landing>/<crawl_date>/<name>``, a
    folder or ``s3://``), whole or not at all; landing the same file again changes nothing."""
    from adlake.lake.storage import Staging

    folder = Staging(landing_uri, storage_options).child(crawl_date.isoformat())
    folder.write(source.name, source.read_bytes())
    return f"{folder.uri}/{source.name}"


# One manifest row on its way to the checks: a JSON object's text (JSONL lines; CSV and Parquet rows are
# serialised to one by the reader), or the raw text of a row that could not be split into fields.
RAW_COLUMNS = ("_json", "_corrupt")


def rows_frame(records: list[dict[str, Any] | None], raw_text: list[str | None]) -> pd.DataFrame:
    """The contract's columns of parsed rows as Python objects, exactly as written (no type inference).

    ``records[i]`` is None for a row that is not a JSON object; ``raw_text[i]`` then goes to the
    quarantine. ``_present`` is a bitmask of the required keys each row carries.
    """
    data: dict[str, list[Any]] = {c: [] for c in (*REQUIRED, *OPTIONAL)}
    unparseable, present = [], []
    for rec, text in zip(records, raw_text, strict=True):
        if rec is None:
            rec = {}
            unparseable.append((text or "")[:500])
        else:
            unparseable.append(None)
        present.append(sum(1 << i for i, c in enumerate(REQUIRED) if c in rec))
        for c, values in data.items():
            values.append(rec.get(c))
    frame = pd.DataFrame({c: pd.Series(v, dtype=object) for c, v in data.items()})
    frame["_unparseable"] = pd.Series(unparseable, dtype=object)
    frame["_present"] = pd.Series(present, dtype="int64")
    return frame


def parse_json_rows(json_texts: list[str | None], corrupt: list[str | None]) -> pd.DataFrame:
    records, raw = [], []
    for text, bad in zip(json_texts, corrupt, strict=True):
        value = None
        if bad is None and text is not None:
            try:
                value = json.loads(text.lstrip("\ufeff"))
            except (ValueError, RecursionError):
                value = None
        records.append(value if isinstance(value, dict) else None)
        raw.append(bad if bad is not None else text)
    return rows_frame(records, raw)


def missing_required(present_mask: int) -> list[str]:
    return [c for i, c in enumerate(REQUIRED) if not present_mask & (1 << i)]


def read_manifest(uri: str) -> pd.DataFrame:
    """A small manifest as raw Python values (typing is part of validation); Spark reads big ones the same way
    (``ingest.filter.read_manifest_spark``)."""
    fmt = manifest_format(uri)
    with fsspec.open(uri, "rb") as f:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(f)
            require_columns(uri, table.column_names)
            frame = rows_frame(table.to_pylist(), [None] * table.num_rows)
        elif fmt == "csv":
            reader = csv.reader(io.TextIOWrapper(f, encoding="utf-8-sig", errors="replace", newline=""))
            header = next(reader, [])
            require_columns(uri, header)
            records, raw = [], []
            for fields in reader:
                ok = len(fields) == len(header)
                records.append({k: v for k, v in zip(header, fields, strict=True) if v != ""} if ok else None)
                raw.append(None if ok else ",".join(fields))
            frame = rows_frame(records, raw)
        else:
            lines = [ln for ln in io.TextIOWrapper(f, encoding="utf-8", errors="replace", newline=None)
                     if ln.strip()]
            frame = parse_json_rows([ln.rstrip("\n") for ln in lines], [None] * len(lines))
            mask = int(np.bitwise_or.reduce(frame["_present"].to_numpy())) if len(frame) else -1
            if missing_required(mask):
                raise ManifestError(f"{uri}: no row has required field(s) {missing_required(mask)}")
    return frame


def require_columns(uri: str, columns: list[str]) -> None:
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise ManifestError(f"{uri}: required column(s) {missing} missing; found {list(columns)}")


class _Invalid:
    """Marks a value that could not be typed; unlike NaN it is not null, so pandera checks it."""

    def __repr__(self) -> str:
        return "<invalid>"


INVALID = _Invalid()


INT64_MAX = 2**63 - 1
STRING_COLUMNS = ("ad_id", "url", "product_id", "product_name", "industry", "advertiser_id", "title")


def _blank(s: pd.Series) -> pd.Series:
    return s.isna() | s.map(lambda v: isinstance(v, str) and not v.strip())


def _utf8(v: str) -> bool:
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates (JSON "\\ud800") cannot be stored
        return False
    return True


def _to_str(v: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, str):
        return v.strip() if _utf8(v) else INVALID
    if isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_):
        return str(int(v))  # numeric ids
    if isinstance(v, float | np.floating) and math.isnan(v):
        return None
    return INVALID


def _to_int(v: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, bool | np.bool_):
        return INVALID
    if isinstance(v, int | np.integer):
        n = int(v)
    else:
        f = _to_float(v)
        if f is None or f is INVALID:
            return f
        if not f.is_integer():
            return INVALID
        n = int(f)
    return n if -INT64_MAX - 1 <= n <= INT64_MAX else INVALID  # Spark's and the tables' long


def _to_float(v: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, bool | np.bool_) or not isinstance(v, str | int | float | np.integer | np.floating | Decimal):
        return INVALID
    try:
        f = float(v.strip() if isinstance(v, str) else v)
    except (TypeError, ValueError, OverflowError):
        return INVALID
    if math.isnan(f):
        return None
    return f if math.isfinite(f) else INVALID


def _to_points(v: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, str):
        return [p.strip() for p in v.split("|") if p.strip()] if _utf8(v) else INVALID
    if isinstance(v, list | tuple | np.ndarray):
        return [p for p in v] if all(isinstance(p, str) and _utf8(p) for p in v) else INVALID
    return INVALID


def _to_time(v: Any) -> Any:
    if v is None:
        return None
    if not isinstance(v, str | dt.datetime | dt.date | pd.Timestamp):
        return INVALID  # a bare number is no timestamp
    try:
        ts = pd.Timestamp(v)
    except (ValueError, TypeError, OverflowError):
        return INVALID
    if ts is pd.NaT:
        return INVALID
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def normalise(frame: pd.DataFrame) -> pd.DataFrame:
    """Typed copy of the manifest; a value that cannot be typed becomes INVALID (and fails validation)."""
    out = frame.copy()
    # Series.map would turn None into NaN; build object columns explicitly.
    for c, convert in (*((c, _to_str) for c in STRING_COLUMNS), ("play_count", _to_int), ("like_count", _to_int),
                       ("duration_s", _to_float), ("selling_points", _to_points), ("published_at", _to_time)):
        out[c] = pd.Series([convert(v) for v in out[c]], index=out.index, dtype=object)
    return out


def _typed(s: pd.Series) -> pd.Series:
    return s.map(lambda v: v is not INVALID)


def contract_schema(rules: UrlRules) -> pdr.DataFrameSchema:
    """The manifest contract as pandera checks; each check's name is the error class it reports."""
    def required() -> pdr.Column:
        # Nulls fail pandera's own not_nullable check, blanks this one; both are missing_field.
        return pdr.Column(object, nullable=False, checks=[pdr.Check(lambda s: ~_blank(s), name="missing_field"),
                                                          pdr.Check(_typed, name="bad_value")])

    def optional() -> pdr.Column:
        return pdr.Column(object, nullable=True, checks=pdr.Check(_typed, name="bad_value"))

    def non_negative() -> pdr.Column:
        return pdr.Column(object, nullable=True, checks=pdr.Check(
            lambda s: s.map(lambda v: v is not INVALID and v >= 0), name="bad_value"))

    return pdr.DataFrameSchema({
        "ad_id": required(),
        "url": pdr.Column(object, nullable=False, checks=[
            pdr.Check(lambda s: ~_blank(s), name="missing_field"),
            pdr.Check(lambda s: s.map(lambda v: v is None or url_problem(v, rules) is None), name="bad_url"),
        ]),
        "product_id": required(),
        "product_name": required(),
        "play_count": non_negative(),
        "like_count": non_negative(),
        "duration_s": non_negative(),
        **{c: optional() for c in ("selling_points", "published_at", "industry", "advertiser_id", "title")},
    }, strict=False, coerce=False)


# Typed manifest columns as they leave validation, with the types the filter and the tables hold them in
# (a Spark DDL of the same lives in ingest.filter); a row that does not convert is a bad_value.
TYPED_COLUMNS = ("ad_id", "url", "product_id", "product_name", "selling_points", "industry", "advertiser_id",
                 "title", "play_count", "like_count", "published_at", "duration_s")
TYPED_SCHEMA = pa.schema([
    ("ad_id", pa.string()), ("url", pa.string()), ("product_id", pa.string()), ("product_name", pa.string()),
    ("selling_points", pa.list_(pa.string())), ("industry", pa.string()), ("advertiser_id", pa.string()),
    ("title", pa.string()), ("play_count", pa.int64()), ("like_count", pa.int64()),
    ("published_at", pa.timestamp("us", tz="UTC")), ("duration_s", pa.float64())])


def _rules(rules: UrlRules | list[str] | tuple[str, ...]) -> UrlRules:
    return rules if isinstance(rules, UrlRules) else UrlRules(allowed_schemes=tuple(rules))


def check_rows(raw: pd.DataFrame, rules: UrlRules | list[str]) -> pd.DataFrame:
    """Row-local contract checks of one batch (a :func:`rows_frame`): the typed columns plus ``error_class``,
    ``error_message``, ``payload`` (the raw row as JSON, for rows that failed) and ``present``.
    Duplicates across rows are not checked here. Never raises for a row: an unexpected failure on the
    batch is retried row by row, and a row that still fails is a ``bad_value``."""
    rules = _rules(rules)
    try:
        return _check_rows(raw, rules)
    except ManifestError:
        raise
    except Exception:  # noqa: BLE001 - find the row(s) that broke it
        parts = []
        for i in range(len(raw)):
            one = raw.iloc[i: i + 1]
            try:
                parts.append(_check_rows(one, rules))
            except Exception as e:  # noqa: BLE001
                parts.append(_failed(one, "bad_value", f"row cannot be checked: {type(e).__name__}: {e}"[:500]))
        return pd.concat(parts) if parts else _check_rows(raw, rules)


def _check_rows(raw: pd.DataFrame, rules: UrlRules) -> pd.DataFrame:
    frame = normalise(raw)
    errors: dict[int, list[tuple[str, str]]] = {}
    try:
        contract_schema(rules).validate(frame, lazy=True)
    except pdr.errors.SchemaErrors as exc:
        for case in exc.failure_cases.itertuples():
            if pd.isna(case.index):
                raise ManifestError(f"manifest cannot be validated: {case.check} on {case.column}") from exc
            check = str(case.check)
            cls = "missing_field" if check == "not_nullable" else check if check in ERROR_CLASSES else "bad_value"
            raw_value = raw.at[case.index, case.column] if case.column in raw.columns else None
            why = url_problem(raw_value, rules) if cls == "bad_url" else _message(case.column, cls)
            errors.setdefault(case.index, []).append((cls, f"{case.column}: {why} (got {_show(raw_value)})"))
    if "_unparseable" in raw.columns:
        for i in raw.index[raw["_unparseable"].notna()]:
            errors[i] = [("unparseable_row", f"not a JSON object or a whole row: {raw.at[i, '_unparseable']!r}")]
    out = frame[list(TYPED_COLUMNS)].copy()
    for i in out.index:  # an untypeable value must not travel further
        if i in errors:
            for c in TYPED_COLUMNS:
                if out.at[i, c] is INVALID:
                    out.at[i, c] = None
    for i, why in _unstorable(out, exclude=set(errors)).items():
        errors[i] = [("bad_value", why)]
        for c in TYPED_COLUMNS:
            out.at[i, c] = None
    out["error_class"] = pd.Series([None] * len(out), index=out.index, dtype=object)
    out["error_message"] = out["error_class"].copy()
    out["payload"] = out["error_class"].copy()
    for i, errs in errors.items():
        errs.sort(key=lambda e: ERROR_CLASSES.index(e[0]))
        out.at[i, "error_class"] = errs[0][0]
        out.at[i, "error_message"] = "; ".join(m for _, m in errs)
        out.at[i, "payload"] = _payload(raw.loc[i])
    out["present"] = raw["_present"] if "_present" in raw.columns else (1 << len(REQUIRED)) - 1
    return out


def _unstorable(out: pd.DataFrame, exclude: set) -> dict[Any, str]:
    """Rows whose typed values the tables cannot hold (the last line of defence; normally none)."""
    rows = out.drop(index=[i for i in out.index if i in exclude])
    try:
        pa.Table.from_pandas(rows, schema=TYPED_SCHEMA, preserve_index=False)
        return {}
    except Exception:  # noqa: BLE001 - find which rows
        bad = {}
        for i in rows.index:
            try:
                pa.Table.from_pandas(rows.loc[[i]], schema=TYPED_SCHEMA, preserve_index=False)
            except Exception as e:  # noqa: BLE001
                bad[i] = f"cannot be stored: {type(e).__name__}: {e}"[:500]
        return bad


def _payload(row: pd.Series) -> str:
    data = {k: _show(v, raw_repr=False) for k, v in row.to_dict().items() if not k.startswith("_")}
    return json.dumps(data, default=repr, sort_keys=True, ensure_ascii=True)


def _failed(raw: pd.DataFrame, error_class: str, message: str) -> pd.DataFrame:
    out = pd.DataFrame({c: pd.Series([None] * len(raw), index=raw.index, dtype=object) for c in TYPED_COLUMNS})
    out["error_class"], out["error_message"] = error_class, message
    out["payload"] = [_payload(raw.loc[i]) for i in raw.index]
    out["present"] = raw["_present"] if "_present" in raw.columns else 0
    return out


def _show(value: Any, raw_repr: bool = True) -> Any:
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if raw_repr:
        text = repr(value)
        return text if len(text) <= 200 else text[:199] + "…"
    return value


@dataclass
class Validation:
    valid: pd.DataFrame  # typed rows that meet the contract, with their row_number
    rejected: list[tuple[int, str, str]]  # (row number, error class, message)


def validate(raw: pd.DataFrame, rules: UrlRules | list[str]) -> Validation:
    """All contract checks of a whole (small) manifest, duplicates included; Spark runs the same per batch."""
    checked = check_rows(raw, rules).assign(row_number=lambda f: f.index.astype("int64")).drop(columns="present")
    ok = checked["error_class"].isna()
    # Only valid rows count: the first valid occurrence of an ad id lands, later ones are duplicates.
    dup = ok & checked["ad_id"].where(ok).duplicated(keep="first")
    checked.loc[dup, "error_class"] = "duplicate_ad_id"
    checked.loc[dup, "error_message"] = checked.loc[dup, "ad_id"].map(
        lambda a: f"ad_id {a!r} already occurs earlier in this manifest")
    rejected = [(int(i), r.error_class, r.error_message) for i, r in checked[checked["error_class"].notna()].iterrows()]
    valid = checked[checked["error_class"].isna()].drop(columns=["error_class", "error_message", "payload"])
    return Validation(valid=valid, rejected=rejected)


def _message(column: str, error_class: str) -> str:
    if error_class == "missing_field":
        return "is required"
    return {"selling_points": "must be a list of strings (CSV: '|'-separated)",
            "published_at": "must be an ISO-8601 timestamp",
            "play_count": "must be a whole number in [0, 2^63)", "like_count": "must be a whole number in [0, 2^63)",
            "duration_s": "must be a finite non-negative number"}.get(column, "must be text")
