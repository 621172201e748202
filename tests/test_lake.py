"""The lake layer: schema contracts, idempotent writes, time travel, provenance, quarantine."""

from __future__ import annotations

import datetime as dt
import time

import pyarrow as pa
import pytest

from adlake.lake import DuplicateKeyError, Lake, Quarantine, QuarantineRecord, SchemaDriftError
from adlake.provenance import RunContext
from schemas import TABLES, TableSpec, col
from schemas.registry import CRAWL_MANIFEST, QUARANTINE, VIDEOS

NOW = dt.datetime(2026, 11, 1, 12, tzinfo=dt.UTC)


def videos(n: int, start: int = 0, **overrides) -> pa.Table:
    rows = [{"video_id": f"v{i:03d}", "source_uri": f"http://x/{i}.mp4", "media_uri": f"media/{i}",
             "bytes": 1000 + i, "duration_s": 10.0 + i, "width": 640, "height": 360, "fps": 25.0,
             "vcodec": "h264", "acodec": "aac", "has_audio": True, "format_name": "mp4", "probed_at": NOW,
             "run_id": "run-1", **overrides} for i in range(start, start + n)]
    return pa.Table.from_pylist(rows)


def manifest_rows(day: dt.date, ids: list[str], plays: int = 10) -> pa.Table:
    return pa.Table.from_pylist([{
        "ad_id": a, "crawl_date": day, "url": f"http://x/{a}.mp4", "product_id": "p1", "product_name": "Lamp",
        "selling_points": ["bright"], "industry": None, "advertiser_id": None, "title": None, "play_count": plays,
        "like_count": None, "published_at": None, "duration_s": None, "manifest_uri": "m.parquet",
        "row_number": i, "landed_at": NOW, "run_id": "run-1"} for i, a in enumerate(ids)])


def test_every_schema_declares_existing_keys_and_docs() -> None:
    for spec in TABLES.values():
        assert spec.keys and set(spec.keys) <= set(spec.schema.names)
        assert all(spec.doc(c) for c in spec.schema.names), spec.name
        assert spec.path == spec.name.replace(".", "/")
    with pytest.raises(ValueError, match="not in the schema"):
        TableSpec(name="x.y", schema=pa.schema([col("a", pa.string(), "a")]), keys=("b",), audit_columns=())


def test_schema_drift_is_rejected_with_table_column_and_types(lake: Lake) -> None:
    bad = videos(2).set_column(3, "bytes", pa.array(["big", "small"]))
    with pytest.raises(SchemaDriftError) as err:
        lake.merge(VIDEOS, bad)
    msg = str(err.value)
    assert "bronze.videos" in msg and "'bytes'" in msg and "expected int64" in msg and "found string" in msg
    with pytest.raises(SchemaDriftError, match="column 'surprise' is not in the schema"):
        lake.merge(VIDEOS, videos(1).append_column("surprise", pa.array([1])))
    with pytest.raises(SchemaDriftError, match="column 'fps' missing"):
        lake.merge(VIDEOS, videos(1).drop_columns(["fps"]))
    with pytest.raises(SchemaDriftError, match="'video_id' is required but has 1 null"):
        lake.merge(VIDEOS, videos(1, video_id=None))
    # a float that does not fit an int column is refused, not truncated
    with pytest.raises(SchemaDriftError, match="'bytes' expected int64, found double"):
        lake.merge(VIDEOS, videos(1).set_column(3, "bytes", pa.array([1.5])))
    assert not lake.exists(VIDEOS) or lake.count(VIDEOS) == 0


def test_lossless_casts_are_applied(lake: Lake) -> None:
    t = videos(2).set_column(5, "width", pa.array([640, 360], pa.int16()))  # widened to int32
    lake.merge(VIDEOS, t)
    assert lake.read(VIDEOS).schema.field("width").type == pa.int32()
    with pytest.raises(SchemaDriftError, match="'width'.*do not fit"):
        lake.merge(VIDEOS, videos(1, start=5).set_column(5, "width", pa.array([2**40])))


def test_retried_append_with_the_same_app_id_changes_nothing(lake: Lake) -> None:
    first = lake.append(VIDEOS, videos(3), app_id="ingest:batch-7")
    again = lake.append(VIDEOS, videos(3), app_id="ingest:batch-7")
    assert not first.skipped and again.skipped
    assert again.version == first.version
    assert lake.count(VIDEOS) == 3
    later = lake.append(VIDEOS, videos(2, start=3), app_id="ingest:batch-7", app_version=2)
    assert not later.skipped and lake.count(VIDEOS) == 5


def test_remerge_changes_nothing_and_changed_rows_update(lake: Lake) -> None:
    r1 = lake.merge(VIDEOS, videos(4))
    r2 = lake.merge(VIDEOS, videos(4, run_id="run-2"))  # audit columns alone are not a change
    assert r1.inserted == 4 and r2.skipped and r2.version == r1.version
    r3 = lake.merge(VIDEOS, videos(2, start=3, duration_s=99.0))
    assert (r3.inserted, r3.updated) == (1, 1)
    rows = {r["video_id"]: r for r in lake.read(VIDEOS).to_pylist()}
    assert len(rows) == 5 and rows["v003"]["duration_s"] == 99.0 and rows["v000"]["duration_s"] == 10.0


def test_merge_runs_in_bounded_batches(lake: Lake) -> None:
    lake.settings.lake.merge_batch_rows = 3
    res = lake.merge(VIDEOS, videos(7))
    assert res.inserted == 7
    ops = [h for h in lake.history(VIDEOS) if h.get("adlake.operation") == "merge"]
    assert len(ops) == 3  # 3 + 3 + 1 rows


def test_merge_refuses_duplicate_keys(lake: Lake) -> None:
    t = pa.concat_tables([videos(2), videos(1)])
    with pytest.raises(DuplicateKeyError, match="v000"):
        lake.merge(VIDEOS, t)


def test_overwrite_partition_replaces_only_that_partition(lake: Lake) -> None:
    d1, d2 = dt.date(2026, 11, 1), dt.date(2026, 11, 2)
    lake.overwrite_partition(CRAWL_MANIFEST, manifest_rows(d1, ["a", "b", "c"]), {"crawl_date": d1})
    lake.overwrite_partition(CRAWL_MANIFEST, manifest_rows(d2, ["x"]), {"crawl_date": d2})
    v = lake.version(CRAWL_MANIFEST)
    same = lake.overwrite_partition(CRAWL_MANIFEST, manifest_rows(d1, ["a", "b", "c"]), {"crawl_date": d1})
    assert same.skipped and lake.version(CRAWL_MANIFEST) == v
    lake.overwrite_partition(CRAWL_MANIFEST, manifest_rows(d1, ["a", "b"], plays=20), {"crawl_date": d1})
    rows = lake.read(CRAWL_MANIFEST).to_pylist()
    assert sorted((r["crawl_date"], r["ad_id"], r["play_count"]) for r in rows) == [
        (d1, "a", 20), (d1, "b", 20), (d2, "x", 10)]
    with pytest.raises(ValueError, match="carry crawl_date"):
        lake.overwrite_partition(CRAWL_MANIFEST, manifest_rows(d2, ["y"]), {"crawl_date": d1})


def test_time_travel_by_version_and_timestamp(lake: Lake) -> None:
    lake.merge(VIDEOS, videos(2))
    v1 = lake.version(VIDEOS)
    time.sleep(1.1)
    between = dt.datetime.now(dt.UTC)
    time.sleep(1.1)
    lake.merge(VIDEOS, videos(3, start=2))
    assert lake.count(VIDEOS) == 5
    assert lake.read(VIDEOS, version=v1).num_rows == 2
    assert lake.read(VIDEOS, as_of=between).num_rows == 2
    assert lake.read(VIDEOS, version=0).num_rows == 0  # the empty table as created


def test_every_commit_carries_provenance(lake: Lake, ctx: RunContext) -> None:
    lake.merge(VIDEOS, videos(1))
    last = lake.history(VIDEOS, 1)[0]
    assert last["adlake.run_id"] == "run-1"
    assert last["adlake.config_fingerprint"] == ctx.settings.fingerprint()
    assert last["adlake.schema_version"] == str(VIDEOS.version)
    assert last["adlake.git_sha"]
    assert last["adlake.table"] == "bronze.videos"


def test_writing_to_a_drifted_table_fails_loudly(lake: Lake) -> None:
    lake.merge(VIDEOS, videos(1))
    renamed = TableSpec(name=VIDEOS.name, schema=VIDEOS.schema.append(col("extra", pa.string(), "new")),
                        keys=VIDEOS.keys, audit_columns=VIDEOS.audit_columns, version=2)
    with pytest.raises(SchemaDriftError, match="migrate the table"):
        lake.merge(renamed, videos(1).append_column("extra", pa.array(["x"])))


def test_quarantine_counts_runs_not_retries_and_resolves(home) -> None:
    run1 = Quarantine(Lake(RunContext.create("t", run_id="r1")))
    rec = QuarantineRecord("ingest.download", "ad1", "http_error", "404 Not Found", "2026-11-01", {"url": "u"})
    run1.add([rec])
    v = run1.lake.version(QUARANTINE)
    run1.add([rec])  # a task retry inside the same run
    assert run1.lake.version(QUARANTINE) == v
    run2 = Quarantine(Lake(RunContext.create("t", run_id="r2")))
    run2.add([rec])
    (row,) = run2.entries().to_pylist()
    assert (row["attempts"], row["status"], row["error_class"]) == (2, "open", "http_error")
    assert row["first_seen"] <= row["last_seen"]
    run2.resolve("ingest.download", ["ad1"])
    assert run2.entries().num_rows == 0
    (resolved,) = run2.entries(status="resolved").to_pylist()
    assert resolved["resolved_at"] is not None
    assert run2.resolve("ingest.download", ["ad1"]) is None  # nothing open: no write


def test_a_pinned_read_ignores_commits_made_after_the_pin(lake: Lake, ctx: RunContext) -> None:
    lake.merge(VIDEOS, videos(2))
    pins = lake.pin(VIDEOS, CRAWL_MANIFEST)
    assert pins == {VIDEOS.name: lake.latest_version(VIDEOS), CRAWL_MANIFEST.name: None}
    other = Lake(RunContext.create("other", run_id="run-2", settings=ctx.settings))  # another job commits meanwhile
    other.merge(VIDEOS, videos(3, start=2))
    d1 = dt.date(2026, 11, 1)
    other.overwrite_partition(CRAWL_MANIFEST, manifest_rows(d1, ["a"]), {"crawl_date": d1})
    assert lake.read(VIDEOS).num_rows == 2 and lake.count(VIDEOS) == 2
    assert lake.version(VIDEOS) == pins[VIDEOS.name] < lake.latest_version(VIDEOS)
    assert not lake.exists(CRAWL_MANIFEST) and lake.count(CRAWL_MANIFEST) == 0  # did not exist at the pin
    assert lake.read(VIDEOS, version=lake.latest_version(VIDEOS)).num_rows == 5  # an explicit version wins
    assert lake.pin(VIDEOS) == {VIDEOS.name: pins[VIDEOS.name]}  # pinning again keeps the snapshot
    assert other.read(VIDEOS).num_rows == 5  # unpinned lakes read the latest
    lake.unpin()
    assert lake.pins == {} and lake.read(VIDEOS).num_rows == 5 and lake.exists(CRAWL_MANIFEST)


def test_writing_a_pinned_table_drops_its_pin(lake: Lake, ctx: RunContext) -> None:
    lake.merge(VIDEOS, videos(2))
    lake.pin(VIDEOS, CRAWL_MANIFEST)
    Lake(RunContext.create("other", run_id="run-2", settings=ctx.settings)).merge(VIDEOS, videos(1, start=2))
    lake.merge(VIDEOS, videos(1, start=3))  # the job's own write: it now reads the latest, its write included
    assert VIDEOS.name not in lake.pins and CRAWL_MANIFEST.name in lake.pins
    assert lake.count(VIDEOS) == 4 and lake.version(VIDEOS) == lake.latest_version(VIDEOS)
    d1 = dt.date(2026, 11, 1)
    lake.overwrite_partition(CRAWL_MANIFEST, manifest_rows(d1, ["a"]), {"crawl_date": d1})
    assert lake.pins == {} and lake.exists(CRAWL_MANIFEST) and lake.read(CRAWL_MANIFEST).num_rows == 1
    lake.pin(VIDEOS)
    lake.append(VIDEOS, videos(1, start=9))
    assert lake.pins == {} and lake.count(VIDEOS) == 5


# Each table's schema version and a fingerprint of its columns (name, type, nullability). A change of columns
# must bump the table's version (``TableSpec.version``, stamped on every commit); then record both here.
SCHEMA_VERSIONS = {
    "bronze.crawl_manifest": (1, "f44a795332fa"),
    "silver.ads": (1, "746468fb0630"),
    "bronze.videos": (1, "994b05a12ee4"),
    "silver.asr_sentences": (2, "409ce6f09387"),  # v2 (issue 4): + confidence
    "silver.asr_words": (1, "92aaee51c5bf"),
    "silver.shots": (1, "ca4eb8582a51"),
    "silver.parsed_videos": (1, "c9f2422958d1"),
    "silver.clips": (1, "0cfac087251d"),
    "silver.frames": (1, "8f19918d5875"),
    "silver.embeddings": (1, "ea809108b1ca"),
    "gold.tokens": (1, "16e24894e70a"),
    "gold.ad_sequences": (1, "04cbf760d46b"),
    "gold.split_assignments": (1, "1486545b4e5d"),
    "gold.samples": (2, "cde25351350e"),  # v2 (issue 7): + ad_id
    "gold.benchmark": (1, "07cf0369db8c"),
    "ops.quarantine": (1, "3b650364c6b3"),
}


def test_a_change_of_columns_bumps_the_schema_version() -> None:
    import hashlib

    found = {name: (spec.version, hashlib.sha256(";".join(
        f"{f.name}:{f.type}:{f.nullable}" for f in spec.schema).encode()).hexdigest()[:12])
        for name, spec in TABLES.items()}
    for name, (version, columns) in found.items():
        if name in SCHEMA_VERSIONS and SCHEMA_VERSIONS[name][1] != columns:
            assert version > SCHEMA_VERSIONS[name][0], f"{name}: its columns changed; bump its schema version"
    assert found == SCHEMA_VERSIONS, "a schema changed: record its new version and fingerprint in SCHEMA_VERSIONS"
