"""Manifest contract checks and landing into bronze.crawl_manifest."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from adlake.ingest.manifest import ManifestError, find_manifest, land_manifest, read_manifest, validate
from adlake.synth.corpus import write_manifest

ALLOWED = ["http", "https", "s3", "gs"]
DAY = dt.date(2026, 11, 1)


def row(ad_id: str | None = "a1", **kw) -> dict:
    return {"ad_id": ad_id, "url": f"https://cdn.example.com/{ad_id}.mp4", "product_id": "p1",
            "product_name": "Lamp", "selling_points": ["bright", "cheap"], "industry": "home",
            "advertiser_id": "adv1", "title": "t", "play_count": 100, "like_count": 3,
            "published_at": "2026-10-01T10:00:00Z", "duration_s": 12.5, **kw}


CASES = [
    (row(product_id=None), "missing_field"),
    (row(product_name="   "), "missing_field"),
    (row(ad_id=None), "missing_field"),
    (row(url="ftp://host/x.mp4"), "bad_url"),
    (row(url="file:///etc/passwd"), "bad_url"),  # file is not allowed by this configuration
    (row(url="https:///nohost.mp4"), "bad_url"),
    (row(play_count=-5), "bad_value"),
    (row(published_at="last tuesday"), "bad_value"),
    (row(duration_s=-1.0), "bad_value"),
]


@pytest.mark.parametrize(("bad", "error_class"), CASES, ids=[c[1] + str(i) for i, c in enumerate(CASES)])
def test_each_contract_violation_gets_its_class(tmp_path: Path, bad: dict, error_class: str) -> None:
    path = write_manifest([row("ok1"), {**bad, "ad_id": bad["ad_id"] and "bad"}, row("ok2")],
                          tmp_path / "m.parquet")
    result = validate(read_manifest(str(path)), ALLOWED)
    assert [r[:2] for r in result.rejected] == [(1, error_class)]
    assert list(result.valid["ad_id"]) == ["ok1", "ok2"]


def test_duplicate_ad_ids_keep_the_first(tmp_path: Path) -> None:
    path = write_manifest([row("a"), row("b"), row("a", product_id="p2")], tmp_path / "m.jsonl")
    result = validate(read_manifest(str(path)), ALLOWED)
    assert [r[:2] for r in result.rejected] == [(2, "duplicate_ad_id")]
    assert result.valid.loc[0, "product_id"] == "p1"


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_all_three_formats_read_the_same(tmp_path: Path, suffix: str) -> None:
    path = write_manifest([row("a"), row("b", selling_points=None, play_count=None)], tmp_path / f"m{suffix}")
    result = validate(read_manifest(str(path)), ALLOWED)
    assert not result.rejected
    v = result.valid
    assert v.loc[0, "selling_points"] == ["bright", "cheap"]
    assert v.loc[0, "play_count"] == 100 and v.loc[1, "play_count"] is None
    assert v.loc[0, "published_at"].isoformat() == "2026-10-01T10:00:00+00:00"


def test_a_file_without_required_columns_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps({"ad_id": "a", "url": "https://x/y.mp4"}) + "\n")
    with pytest.raises(ManifestError, match="product_id"):
        read_manifest(str(path))
    with pytest.raises(ManifestError, match="unknown manifest format"):
        read_manifest(str(tmp_path / "m.xlsx"))


def test_unparseable_jsonl_lines_are_quarantined_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps(row("a")) + "\n{not json\n" + json.dumps(row("b")) + "\n")
    result = validate(read_manifest(str(path)), ALLOWED)
    assert [r[1] for r in result.rejected] == ["unparseable_row"]
    assert list(result.valid["ad_id"]) == ["a", "b"]


def test_find_manifest_in_the_landing_folder(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="no manifest landed"):
        find_manifest(str(tmp_path), DAY)
    folder = tmp_path / DAY.isoformat()
    write_manifest([row("a")], folder / "batch.csv")
    assert find_manifest(str(tmp_path), DAY).endswith("2026-11-01/batch.csv")
    write_manifest([row("a")], folder / "other.jsonl")
    with pytest.raises(ManifestError, match="exactly one"):
        find_manifest(str(tmp_path), DAY)


def test_a_landed_manifest_is_found_whole_and_landing_it_again_changes_nothing(tmp_path: Path) -> None:
    source = write_manifest([row("a"), row("b")], tmp_path / "src" / "manifest.parquet")
    landing = str(tmp_path / "landing")
    uri = land_manifest(Path(source), landing, DAY)
    assert uri == find_manifest(landing, DAY) == f"{landing}/2026-11-01/manifest.parquet"
    assert land_manifest(Path(source), landing, DAY) == uri
    assert [p.name for p in (tmp_path / "landing" / "2026-11-01").iterdir()] == ["manifest.parquet"]
    assert Path(uri).read_bytes() == Path(source).read_bytes()
