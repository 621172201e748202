"""The crawl: download pending ads into the media store, probe them, and settle each ad's fate.

``crawl_shard`` is one mapped Airflow task: it downloads its share of the crawl date's pending ads
(:mod:`adlake.ingest.download`: concurrently, a limit per host, retries with exponential backoff and
full jitter on transient failures), probes each body before it is renamed to its content address (a
file that is not a usable video never enters the store), and writes its results to the staging area.
``finalize_crawl`` is the single writer: it merges ``bronze.videos``, settles ``silver.ads``,
quarantines failures, and checks that every manifest row ended in exactly one place.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from adlake.config import CrawlConf, RerunConf, Settings
from adlake.ingest.download import FetchError, download_all
from adlake.lake import Lake, Quarantine, QuarantineRecord, count_values
from adlake.lake.sql import sql_literal
from adlake.lake.storage import Staging
from adlake.media.probe import probe_video
from adlake.media.store import MediaStore
from schemas.registry import ADS, CRAWL_MANIFEST, QUARANTINE, VIDEOS

STAGE = "ingest.crawl"

RESULT_SCHEMA = pa.schema([
    ("ad_id", pa.string()), ("url", pa.string()), ("ok", pa.bool_()), ("video_id", pa.string()),
    ("media_uri", pa.string()), ("bytes", pa.int64()), ("cached", pa.bool_()), ("attempts", pa.int32()),
    ("error_class", pa.string()), ("message", pa.string()), ("duration_s", pa.float64()), ("width", pa.int32()),
    ("height", pa.int32()), ("fps", pa.float64()), ("vcodec", pa.string()), ("acodec", pa.string()),
    ("has_audio", pa.bool_()), ("format_name", pa.string()),
])


# -- one crawl shard ---------------------------------------------------------------------------------
def shard_of(ad_id: str, shards: int) -> int:
    return zlib.crc32(ad_id.encode()) % shards


def staging_dir(settings: Settings, crawl_date: dt.date, run_id: str) -> Staging:
    safe = run_id.replace(":", "_").replace("/", "_").replace("+", "_")
    return Staging(settings.lake.staging_uri, settings.lake.storage_options).child("crawl", crawl_date.isoformat(),
                                                                                   safe)


def pending_ads(lake: Lake, crawl_date: dt.date) -> pa.Table:
    if not lake.exists(ADS):
        return pa.table({"ad_id": pa.array([], pa.string()), "source_uri": pa.array([], pa.string())})
    return lake.read(ADS, columns=["ad_id", "source_uri"],
                     where=f"crawl_date = {sql_literal(crawl_date)} AND status = 'pending'")


def shard_count(ads: int, conf: CrawlConf) -> int:
    """Shards of ``shard_size`` ads, at most ``max_shards`` (then larger), at least one so that the DAG's
    shape is stable."""
    return max(1, min(conf.max_shards, math.ceil(ads / conf.shard_size)))


def plan_shards(lake: Lake, crawl_date: dt.date) -> list[dict[str, int]]:
    """Shards of the pending ads for dynamic task mapping."""
    shards = shard_count(pending_ads(lake, crawl_date).num_rows, lake.settings.ingest.crawl)
    return [{"shard": i, "shards": shards} for i in range(shards)]


def admission(settings: Settings):
    """The crawl's admission check: a usable video (probe), kept in the store unless too long to use."""
    p, max_s = settings.ingest.probe, settings.ingest.max_duration_s

    def admit(path: Path) -> tuple[dict[str, Any], bool]:
        facts = probe_video(path, p.formats, p.timeout_s, p.check_packets).as_dict()  # ProbeError: rejected
        return facts, facts["duration_s"] <= max_s
    return admit


@dataclass
class ShardResult:
    crawl_date: str
    shard: int
    shards: int
    ads: int
    downloaded: int
    cached: int
    failed: int
    by_error_class: dict[str, int]
    seconds: float
    staged: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def crawl_shard(lake: Lake, crawl_date: dt.date, shard: int, shards: int) -> ShardResult:
    settings = lake.settings
    t0 = time.perf_counter()
    store = MediaStore(settings)
    store.clean_stale_tmp()
    ads = pending_ads(lake, crawl_date).to_pylist()
    mine = sorted((a for a in ads if shard_of(a["ad_id"], shards) == shard), key=lambda a: a["ad_id"])
    urls = sorted({a["source_uri"] for a in mine})
    fetched = asyncio.run(download_all(store, settings, urls, seed=shard, admit=admission(settings)))
    rows = []
    for ad in mine:
        url, got = ad["source_uri"], fetched[ad["source_uri"]]
        row: dict[str, Any] = {"ad_id": ad["ad_id"], "url": url}
        if isinstance(got, FetchError):
            row.update(ok=False, error_class=got.error_class, message=str(got), attempts=None)
        else:
            row.update(ok=True, video_id=got.video_id, media_uri=store.uri(got.key) if got.key else None,
                       bytes=got.bytes, cached=got.cached, attempts=got.attempts,
                       **{k: v for k, v in got.facts.items() if k != "bytes"})
        rows.append(row)
    table = pa.Table.from_pylist(rows, schema=RESULT_SCHEMA)
    folder, name = staging_dir(settings, crawl_date, lake.ctx.run_id), f"shard-{shard:04d}-of-{shards:04d}.parquet"
    folder.write_parquet(name, table)  # a retried task replaces its own file whole
    failed = [r for r in rows if not r["ok"]]
    by_class = count_values(r["error_class"] for r in failed)
    return ShardResult(crawl_date=crawl_date.isoformat(), shard=shard, shards=shards, ads=len(mine),
                       downloaded=sum(1 for r in rows if r.get("ok") and not r.get("cached")),
                       cached=sum(1 for r in rows if r.get("cached")), failed=len(failed), by_error_class=by_class,
                       seconds=round(time.perf_counter() - t0, 2), staged=f"{folder.uri}/{name}")


# -- what a later run fetches again -------------------------------------------------------------------
def entity_key(crawl_date: dt.date, ad_id: str) -> str:
    return f"{crawl_date.isoformat()}/{ad_id}"


def retry_due(entry: dict[str, Any], url: str, conf: RerunConf, now: dt.datetime) -> bool:
    """Whether a later run fetches the ad of an open crawl quarantine entry again (``ingest.crawl.rerun``)."""
    try:
        failed_url = json.loads(entry.get("payload") or "{}").get("url")
    except (json.JSONDecodeError, AttributeError):
        failed_url = None
    if failed_url != url:
        return True  # the manifest now names another URL
    if entry["error_class"] not in conf.retry_classes or entry["attempts"] >= conf.max_attempts:
        return False
    last = entry["last_seen"] if entry["last_seen"].tzinfo else entry["last_seen"].replace(tzinfo=dt.UTC)
    wait = min(conf.backoff_max_s, conf.backoff_s * 2 ** (entry["attempts"] - 1))
    return now >= last + dt.timedelta(seconds=wait)


def standing_failures(lake: Lake, crawl_date: dt.date, urls: dict[str, str]) -> tuple[set[str], list[str]]:
    """Open crawl failures of a crawl date, given the ads the filter would queue (``ad_id → url``).

    Returns the ads whose failure stands (not fetched again: they stay in ``ops.quarantine`` only) and
    the entries that no longer apply (their ad is not queued: filtered now, or gone from the manifest),
    for the caller to resolve.
    """
    entries = Quarantine(lake).entries(stage=STAGE, partition=crawl_date.isoformat()).to_pylist()
    now, conf = dt.datetime.now(dt.UTC), lake.settings.ingest.crawl.rerun
    prefix = f"{crawl_date.isoformat()}/"
    standing, stale = set(), []
    for entry in entries:
        ad_id = entry["entity_key"][len(prefix):]
        if ad_id not in urls:
            stale.append(entry["entity_key"])
        elif not retry_due(entry, urls[ad_id], conf, now):
            standing.add(ad_id)
    return standing, stale


# -- settling the crawl ------------------------------------------------------------------------------
@dataclass
class Reconciliation:
    crawl_date: str
    manifest_rows: int
    manifest_quarantined: int
    landed: int
    selected: int
    filtered: int
    crawl_quarantined: int
    pending: int
    by_reason: dict[str, int] = field(default_factory=dict)
    by_error_class: dict[str, int] = field(default_factory=dict)
    videos: int = 0

    @property
    def balanced(self) -> bool:
        return (self.pending == 0 and self.landed == self.selected + self.filtered + self.crawl_quarantined
                and self.manifest_rows == self.landed + self.manifest_quarantined)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "balanced": self.balanced}


def reconcile(lake: Lake, crawl_date: dt.date) -> Reconciliation:
    """Where every row of the crawl date's manifest ended, from the tables alone."""
    day = crawl_date.isoformat()
    where = f"crawl_date = {sql_literal(crawl_date)}"
    landed = lake.read(CRAWL_MANIFEST, columns=["ad_id"], where=where).num_rows if lake.exists(CRAWL_MANIFEST) else 0
    ads = lake.read(ADS, columns=["status", "reason", "video_id"], where=where) if lake.exists(ADS) else None
    q = Quarantine(lake)
    mq = q.entries(stage="ingest.manifest", partition=day)
    cq = q.entries(stage=STAGE, partition=day)
    statuses = ads["status"].to_pylist() if ads is not None else []
    return Reconciliation(
        crawl_date=day, manifest_rows=landed + mq.num_rows, manifest_quarantined=mq.num_rows, landed=landed,
        selected=statuses.count("selected"), filtered=statuses.count("filtered"), crawl_quarantined=cq.num_rows,
        pending=statuses.count("pending"),
        by_reason=count_values(ads["reason"].to_pylist()) if ads is not None else {},
        by_error_class=count_values(mq["error_class"].to_pylist() + cq["error_class"].to_pylist()),
        videos=len(set(v for v in (ads["video_id"].to_pylist() if ads is not None else []) if v)))


class ReconciliationError(RuntimeError):
    pass


def finalize_crawl(lake: Lake, crawl_date: dt.date) -> dict[str, Any]:
    settings = lake.settings
    before = [lake.latest_version(t) for t in (VIDEOS, ADS, QUARANTINE)]
    folder = staging_dir(settings, crawl_date, lake.ctx.run_id)
    files = folder.files("shard-", ".parquet")
    results = pa.concat_tables([folder.read_parquet(f, RESULT_SCHEMA) for f in files]) if files else \
        RESULT_SCHEMA.empty_table()
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    run_id = lake.ctx.run_id
    max_s = settings.ingest.max_duration_s
    rows = results.to_pylist()
    good = [r for r in rows if r["ok"]]

    # bronze.videos: each usable video once (over-long ones are not parsed, so not listed).
    videos: dict[str, dict] = {}
    for r in sorted(good, key=lambda r: r["url"]):
        if r["duration_s"] <= max_s and r["video_id"] not in videos:
            videos[r["video_id"]] = {
                "video_id": r["video_id"], "source_uri": r["url"], "media_uri": r["media_uri"], "bytes": r["bytes"],
                "duration_s": r["duration_s"], "width": r["width"], "height": r["height"], "fps": r["fps"],
                "vcodec": r["vcodec"], "acodec": r["acodec"], "has_audio": r["has_audio"],
                "format_name": r["format_name"], "probed_at": now, "run_id": run_id}
    videos_write = lake.merge(VIDEOS, pa.Table.from_pylist(list(videos.values()), schema=VIDEOS.schema)) \
        if videos else None

    # silver.ads: pending ads settle; quarantined ones leave the table (they live in ops.quarantine).
    current = lake.read(ADS, where=f"crawl_date = {sql_literal(crawl_date)}").to_pylist()
    outcome = {r["ad_id"]: r for r in rows}
    settled, records, succeeded = [], [], []
    for ad in current:
        r = outcome.get(ad["ad_id"])
        if ad["status"] != "pending" or r is None:
            settled.append(ad)
            continue
        if not r["ok"]:
            records.append(QuarantineRecord(STAGE, entity_key(crawl_date, ad["ad_id"]), r["error_class"],
                                            r["message"], crawl_date.isoformat(), {"url": r["url"]}))
            continue
        succeeded.append(entity_key(crawl_date, ad["ad_id"]))
        too_long = r["duration_s"] > max_s
        settled.append({**ad, "status": "filtered" if too_long else "selected", "reason": "too_long" if too_long else None,
                        "video_id": None if too_long else r["video_id"], "updated_at": now, "run_id": run_id})
    ads_write = lake.overwrite_partition(ADS, pa.Table.from_pylist(settled, schema=ADS.schema),
                                         {"crawl_date": crawl_date})
    quarantine = Quarantine(lake)
    if records:
        quarantine.add(records)
    quarantine.resolve(STAGE, succeeded)

    rec = reconcile(lake, crawl_date)
    folder.remove()
    summary = {"reconciliation": rec.as_dict(),
               "wrote": {VIDEOS.name: videos_write.version if videos_write else lake.version(VIDEOS),
                         ADS.name: ads_write.version},
               "results": len(rows), "quarantined_now": len(records),
               "changed": [lake.latest_version(t) for t in (VIDEOS, ADS, QUARANTINE)] != before}
    if not rec.balanced:
        raise ReconciliationError(f"crawl {crawl_date} does not reconcile: {json.dumps(rec.as_dict())}")
    return summary
