"""The Spark manifest filter: contract checks at scale, dedup, engagement, duration, product caps."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest

from adlake.ingest.filter import run_filter
from adlake.lake import Lake, Quarantine
from adlake.provenance import RunContext
from adlake.synth.corpus import write_manifest
from schemas.registry import ADS, CRAWL_MANIFEST

pytestmark = [pytest.mark.spark, pytest.mark.slow]
DAY = dt.date(2026, 11, 1)


def row(ad_id: str, product: str = "p1", plays: int | None = 5000, **kw) -> dict:
    return {"ad_id": ad_id, "url": f"https://cdn.example.com/{ad_id}.mp4", "product_id": product,
            "product_name": "Lamp", "selling_points": ["bright"], "industry": kw.pop("industry", "home"),
            "advertiser_id": "adv1", "title": "t", "play_count": plays, "like_count": 3,
            "published_at": "2026-10-01T10:00:00Z", "duration_s": kw.pop("duration_s", 30.0), **kw}


def fates(lake: Lake) -> dict[str, tuple[str, str | None]]:
    return {r["ad_id"]: (r["status"], r["reason"]) for r in lake.read(ADS).to_pylist()}


def test_each_ad_gets_one_fate(home: Path, tmp_path: Path) -> None:
    rows = [
        row("keep1", "pA", 9000), row("keep2", "pA", 8000), row("capped", "pA", 7000),
        row("dup_url", "pB", url="https://cdn.example.com/keep1.mp4"),
        row("long", "pC", duration_s=121.0), row("unknown_len", "pC", duration_s=None),
        row("quiet", "pD", plays=10), row("no_plays", "pE", plays=None),
        row("bad_scheme", "pF", url="ftp://x/y.mp4"), row("keep1", "pG"),
    ]
    lake = Lake(RunContext.create("filter", run_id="f1"))
    result = run_filter(lake, str(write_manifest(rows, tmp_path / "m.parquet")), DAY)
    assert (result.rows, result.landed, result.quarantined) == (10, 8, 2)
    assert result.by_error_class == {"bad_url": 1, "duplicate_ad_id": 1}
    assert fates(lake) == {
        "keep1": ("pending", None), "keep2": ("pending", None), "capped": ("filtered", "product_cap"),
        "dup_url": ("filtered", "duplicate_url"), "long": ("filtered", "too_long"),
        "unknown_len": ("pending", None), "quiet": ("filtered", "low_engagement"), "no_plays": ("pending", None)}
    landed = lake.read(CRAWL_MANIFEST)
    assert sorted(landed["row_number"].to_pylist()) == [0, 1, 2, 3, 4, 5, 6, 7]
    q = {r["entity_key"]: r["error_class"] for r in Quarantine(lake).entries().to_pylist()}
    assert q == {"2026-11-01/bad_scheme@row8": "bad_url", "2026-11-01/keep1@row9": "duplicate_ad_id"}

    versions = (lake.version(CRAWL_MANIFEST), lake.version(ADS))
    again = run_filter(Lake(RunContext.create("filter", run_id="f2")), result.manifest, DAY)
    assert not again.changed and again.as_dict() | {"versions": None, "changed": True} == result.as_dict() | {"versions": None}
    assert (lake.version(CRAWL_MANIFEST), lake.version(ADS)) == versions


def test_row_numbers_are_contiguous_across_spark_partitions(home: Path, tmp_path: Path) -> None:
    from adlake.ingest.filter import read_manifest_spark
    from adlake.spark import spark_session

    rows = [row(f"a{i:04d}", product=f"p{i}") for i in range(600)]
    rows[417]["product_id"] = None
    path = write_manifest(rows, tmp_path / "m.jsonl")  # CSV is read whole (quoted newlines), JSONL is split
    lake = Lake(RunContext.create("filter", run_id="f1"))
    lake.settings.spark.conf.update({"spark.sql.files.maxPartitionBytes": "8192",
                                     "spark.sql.files.openCostInBytes": "0"})
    spark = spark_session(lake.settings)
    try:
        parts = read_manifest_spark(spark, str(path)).rdd.getNumPartitions()
        assert parts > 4, "the manifest must span several Spark partitions for this test to mean anything"
        result = run_filter(lake, str(path), DAY)
    finally:  # the session is shared by the other tests
        spark.conf.unset("spark.sql.files.maxPartitionBytes")
        spark.conf.unset("spark.sql.files.openCostInBytes")
    assert result.landed == 599
    (bad,) = Quarantine(lake).entries().to_pylist()
    assert bad["entity_key"] == "2026-11-01/a0417@row417" and bad["error_class"] == "missing_field"
    numbers = sorted(lake.read(CRAWL_MANIFEST)["row_number"].to_pylist())
    assert numbers == [i for i in range(600) if i != 417]
    by_id = {r["ad_id"]: r["row_number"] for r in lake.read(CRAWL_MANIFEST).to_pylist()}
    assert all(by_id[f"a{i:04d}"] == i for i in (0, 1, 299, 599))


def test_percentile_engagement_within_industry(home: Path, tmp_path: Path, monkeypatch) -> None:
    from adlake.config import get_settings

    monkeypatch.setenv("ADLAKE__INGEST__ENGAGEMENT__MODE", "percentile")
    monkeypatch.setenv("ADLAKE__INGEST__ENGAGEMENT__PERCENTILE", "0.5")
    get_settings.cache_clear()
    rows = [row(f"h{i}", f"ph{i}", plays=100 * (i + 1), industry="home") for i in range(4)]
    rows += [row(f"f{i}", f"pf{i}", plays=100_000 * (i + 1), industry="fashion") for i in range(4)]
    lake = Lake(RunContext.create("filter", run_id="f1"))
    run_filter(lake, str(write_manifest(rows, tmp_path / "m.jsonl")), DAY)
    kept = sorted(a for a, (s, _) in fates(lake).items() if s == "pending")
    # the top half of each industry, not the top half overall
    assert kept == ["f1", "f2", "f3", "h1", "h2", "h3"]


def test_a_rerun_keeps_what_the_crawl_decided(home: Path, tmp_path: Path) -> None:
    path = str(write_manifest([row("a", "p1"), row("b", "p2")], tmp_path / "m.parquet"))
    lake = Lake(RunContext.create("filter", run_id="f1"))
    run_filter(lake, path, DAY)
    settled = lake.read(ADS).to_pylist()
    for r in settled:
        r.update(status="selected", video_id="v" * 64) if r["ad_id"] == "a" else r.update(
            status="filtered", reason="too_long")
    lake.overwrite_partition(ADS, pa.Table.from_pylist(settled, schema=ADS.schema), {"crawl_date": DAY})
    again = run_filter(Lake(RunContext.create("filter", run_id="f2")), path, DAY)
    assert again.kept_from_earlier_runs == 2 and again.pending == 0
    assert fates(lake) == {"a": ("selected", None), "b": ("filtered", "too_long")}


def test_an_unreadable_manifest_is_quarantined_whole(home: Path, tmp_path: Path) -> None:
    from adlake.ingest.manifest import ManifestError

    path = tmp_path / "m.jsonl"
    path.write_text('{"ad_id": "a", "url": "https://x/a.mp4"}\n')
    lake = Lake(RunContext.create("filter", run_id="f1"))
    with pytest.raises(ManifestError, match="product_id"):
        run_filter(lake, str(path), DAY)
    (entry,) = Quarantine(lake).entries().to_pylist()
    assert entry["error_class"] == "bad_manifest" and entry["entity_key"] == f"2026-11-01/{path}"
    assert not lake.exists(CRAWL_MANIFEST)


def test_no_landed_manifest_is_nothing_to_do_and_two_are_an_error(home: Path, monkeypatch, capsys) -> None:
    import json
    import sys

    from adlake.config import get_settings
    from adlake.errors import NothingToDo
    from adlake.ingest.manifest import ManifestError
    from adlake.jobs import cli
    from jobs.filter_manifest import main

    with pytest.raises(NothingToDo, match="no manifest landed for 2026-11-01"):
        main(["--partition", "2026-11-01"])
    folder = Path(get_settings().ingest.landing_uri) / "2026-11-01"
    folder.mkdir(parents=True)
    with pytest.raises(NothingToDo, match="holds no .parquet, .csv or .jsonl file"):
        main(["--partition", "2026-11-01"])
    monkeypatch.setattr(sys, "argv", ["filter_manifest", "--partition", "2026-11-01"])
    cli(main)  # from the shell: the reason, and exit 0
    out = json.loads(capsys.readouterr().out)
    assert out["job"] == "filter_manifest" and "no manifest landed" in out["skipped"]
    assert not (home / "mlflow").exists()  # skipped before Spark and MLflow
    write_manifest([row("a")], folder / "a.csv")
    write_manifest([row("b")], folder / "b.jsonl")
    with pytest.raises(ManifestError, match="exactly one") as err:
        main(["--partition", "2026-11-01"])
    assert not isinstance(err.value, NothingToDo)
