"""The crawl: download pending ads into the media store, probe them, and settle each ad's fate.

``crawl_shard`` is one mapped Airflow task: it downloads its share of the crawl date's pending ads
(concurrently, a limit per host, retries with exponential backoff and full jitter on timeouts,
connection errors and 5xx, none on 4xx), streams each body through sha256 into a temporary file that
is renamed to its content address, probes it, and writes its results to the staging area.
``finalize_crawl`` is the single writer: it merges ``bronze.videos``, settles ``silver.ads``,
quarantines failures, and checks that every manifest row ended in exactly one place.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import math
import os
import random
import shutil
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pyarrow as pa
import pyarrow.parquet as pq

from adlake.config import CrawlConf, Settings
from adlake.lake import Lake, Quarantine, QuarantineRecord, count_values
from adlake.lake.sql import sql_literal
from adlake.media.probe import ProbeError, probe_video
from adlake.media.store import MediaStore
from schemas.registry import ADS, CRAWL_MANIFEST, VIDEOS

STAGE = "ingest.crawl"
CHUNK = 1 << 16

RESULT_SCHEMA = pa.schema([
    ("ad_id", pa.string()), ("url", pa.string()), ("ok", pa.bool_()), ("video_id", pa.string()),
    ("media_uri", pa.string()), ("bytes", pa.int64()), ("cached", pa.bool_()), ("attempts", pa.int32()),
    ("error_class", pa.string()), ("message", pa.string()), ("duration_s", pa.float64()), ("width", pa.int32()),
    ("height", pa.int32()), ("fps", pa.float64()), ("vcodec", pa.string()), ("acodec", pa.string()),
    ("has_audio", pa.bool_()), ("format_name", pa.string()),
])


class FetchError(Exception):
    def __init__(self, error_class: str, message: str, retryable: bool = False):
        super().__init__(message)
        self.error_class = error_class
        self.retryable = retryable


@dataclass
class Fetched:
    video_id: str
    key: str
    bytes: int
    cached: bool
    attempts: int


# -- downloading ------------------------------------------------------------------------------------
class Downloader:
    """Streams URLs into the media store; one instance per crawl task."""

    def __init__(self, store: MediaStore, conf: CrawlConf, allowed_schemes: list[str], seed: int | None = None):
        self.store, self.conf, self.allowed = store, conf, set(allowed_schemes)
        self.rng = random.Random(seed)
        self._hosts: dict[str, asyncio.Semaphore] = {}
        self._global = asyncio.Semaphore(conf.concurrency)

    def backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2^attempt)]."""
        return self.rng.uniform(0, min(self.conf.backoff_max_s, self.conf.backoff_base_s * 2 ** attempt))

    async def fetch(self, client: httpx.AsyncClient, url: str) -> Fetched:
        scheme = urlparse(url).scheme
        if scheme not in self.allowed:
            raise FetchError("bad_url", f"scheme {scheme!r} is not allowed (allowed: {sorted(self.allowed)})")
        known = self.store.recall_url(url)
        if known:
            return Fetched(known["video_id"], known["key"], known["bytes"], cached=True, attempts=0)
        host = urlparse(url).netloc or "local"
        sem = self._hosts.setdefault(host, asyncio.Semaphore(self.conf.per_host))
        attempt = 0
        while True:
            attempt += 1
            try:
                async with self._global, sem:
                    fetched = await asyncio.wait_for(self._attempt(client, url, scheme), self.conf.deadline_s)
                fetched.attempts = attempt
                return fetched
            except TimeoutError:
                err = FetchError("timeout", f"no complete response within {self.conf.deadline_s:.0f} s", True)
            except FetchError as e:
                err = e
            if not err.retryable or attempt > self.conf.retries:
                err.args = (f"{err.args[0]} (after {attempt} attempt{'s' if attempt > 1 else ''})",)
                raise err
            await asyncio.sleep(self.backoff(attempt - 1))

    async def _attempt(self, client: httpx.AsyncClient, url: str, scheme: str) -> Fetched:
        tmp = self.store.tmp_file()
        digest, size = hashlib.sha256(), 0
        try:
            with open(tmp, "wb") as out:
                if scheme in ("http", "https"):
                    size = await self._http(client, url, out, digest)
                elif scheme == "file":
                    size = await asyncio.to_thread(self._copy_file, urlparse(url).path, out, digest)
                else:
                    size = await asyncio.to_thread(self._copy_fsspec, url, out, digest)
            # The URL index first, the blob second: a blob in the store always has its URL recorded, so
            # a crawl killed between the two steps never refetches a finished download.
            key = self.store.blob_key(digest.hexdigest())
            self.store.remember_url(url, {"video_id": digest.hexdigest(), "key": key, "bytes": size})
            key, _ = self.store.commit(tmp, digest.hexdigest())
            return Fetched(digest.hexdigest(), key, size, cached=False, attempts=1)
        finally:
            tmp.unlink(missing_ok=True)

    def _check_size(self, size: int) -> None:
        if size > self.conf.max_bytes:
            raise FetchError("too_large", f"larger than the limit of {self.conf.max_bytes:,} bytes")

    async def _http(self, client: httpx.AsyncClient, url: str, out, digest) -> int:
        size = 0
        try:
            async with client.stream("GET", url) as response:
                if response.status_code >= 500:
                    raise FetchError("http_error", f"HTTP {response.status_code}", retryable=True)
                if response.status_code >= 400:
                    raise FetchError("http_error", f"HTTP {response.status_code}")
                length = response.headers.get("content-length")
                if length and length.isdigit():
                    self._check_size(int(length))
                async for chunk in response.aiter_raw(CHUNK):
                    size += len(chunk)
                    self._check_size(size)
                    digest.update(chunk)
                    out.write(chunk)
                if length and length.isdigit() and size != int(length):
                    raise FetchError("connection_error", f"body ended after {size} of {length} bytes", True)
        except httpx.TimeoutException as e:
            raise FetchError("timeout", f"{type(e).__name__}: {e or 'timed out'}", retryable=True) from e
        except httpx.TransportError as e:
            raise FetchError("connection_error", f"{type(e).__name__}: {e}", retryable=True) from e
        return size

    def _copy_file(self, path: str, out, digest) -> int:
        try:
            src = open(path, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError as e:
            raise FetchError("http_error", f"no such file: {path}") from e
        with src:
            return self._copy(src, out, digest)

    def _copy_fsspec(self, url: str, out, digest) -> int:
        import fsspec

        try:
            with fsspec.open(url, "rb") as src:
                return self._copy(src, out, digest)
        except FileNotFoundError as e:
            raise FetchError("http_error", f"not found: {url}") from e
        except OSError as e:
            raise FetchError("connection_error", f"{type(e).__name__}: {e}", retryable=True) from e

    def _copy(self, src, out, digest) -> int:
        size = 0
        while chunk := src.read(CHUNK):
            size += len(chunk)
            self._check_size(size)
            digest.update(chunk)
            out.write(chunk)
        return size


async def download_all(store: MediaStore, settings: Settings, urls: list[str],
                       seed: int | None = None) -> dict[str, Fetched | FetchError]:
    conf = settings.ingest.crawl
    downloader = Downloader(store, conf, settings.ingest.allowed_schemes, seed)
    timeout = httpx.Timeout(connect=conf.connect_timeout_s, read=conf.read_timeout_s,
                            write=conf.read_timeout_s, pool=None)
    limits = httpx.Limits(max_connections=conf.concurrency, max_keepalive_connections=conf.concurrency)
    async with httpx.AsyncClient(timeout=timeout, limits=limits, follow_redirects=True, trust_env=False,
                                 headers={"User-Agent": "adlake-crawler/0.1"}) as client:
        async def one(url: str) -> tuple[str, Fetched | FetchError]:
            try:
                return url, await downloader.fetch(client, url)
            except FetchError as e:
                return url, e
        pairs = await asyncio.gather(*(one(u) for u in urls))
    return dict(pairs)


# -- one crawl shard ---------------------------------------------------------------------------------
def shard_of(ad_id: str, shards: int) -> int:
    return zlib.crc32(ad_id.encode()) % shards


def staging_dir(settings: Settings, crawl_date: dt.date, run_id: str) -> Path:
    safe = run_id.replace(":", "_").replace("/", "_").replace("+", "_")
    return Path(settings.lake.staging_uri) / "crawl" / crawl_date.isoformat() / safe


def pending_ads(lake: Lake, crawl_date: dt.date) -> pa.Table:
    if not lake.exists(ADS):
        return pa.table({"ad_id": pa.array([], pa.string()), "source_uri": pa.array([], pa.string())})
    return lake.read(ADS, columns=["ad_id", "source_uri"],
                     where=f"crawl_date = {sql_literal(crawl_date)} AND status = 'pending'")


def plan_shards(lake: Lake, crawl_date: dt.date) -> list[dict[str, int]]:
    """Shards of the pending ads for dynamic task mapping (at least one, so the DAG shape is stable)."""
    conf = lake.settings.ingest.crawl
    n = pending_ads(lake, crawl_date).num_rows
    shards = max(1, min(conf.max_shards, math.ceil(n / conf.shard_size)))
    return [{"shard": i, "shards": shards} for i in range(shards)]


def _probe_one(path: Path, settings: Settings) -> dict[str, Any]:
    p = settings.ingest.probe
    try:
        return {"ok": True, **probe_video(path, p.formats, p.timeout_s, p.check_packets).as_dict()}
    except ProbeError as e:
        return {"ok": False, "error_class": e.error_class, "message": str(e)}


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
    fetched = asyncio.run(download_all(store, settings, urls, seed=shard))
    # Probe each distinct blob once, in parallel (ffprobe is a subprocess).
    keys = sorted({f.key for f in fetched.values() if isinstance(f, Fetched)})

    def probe_key(key: str) -> tuple[str, dict]:
        path, temporary = store.local_copy(key)
        try:
            return key, _probe_one(path, settings)
        finally:
            if temporary:
                path.unlink(missing_ok=True)

    with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
        probes = dict(pool.map(probe_key, keys))
    rows = []
    for ad in mine:
        url, got = ad["source_uri"], fetched[ad["source_uri"]]
        row: dict[str, Any] = {"ad_id": ad["ad_id"], "url": url}
        if isinstance(got, FetchError):
            row.update(ok=False, error_class=got.error_class, message=str(got), attempts=None)
        else:
            probe = probes[got.key]
            row.update(video_id=got.video_id, media_uri=store.uri(got.key), bytes=got.bytes, cached=got.cached,
                       attempts=got.attempts, **{k: v for k, v in probe.items() if k != "bytes"})
        rows.append(row)
    table = pa.Table.from_pylist(rows, schema=RESULT_SCHEMA)
    out_dir = staging_dir(settings, crawl_date, lake.ctx.run_id)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"shard-{shard:04d}-of-{shards:04d}.parquet"
    tmp = out_dir / f".{target.name}.{os.getpid()}.tmp"
    pq.write_table(table, tmp)
    os.replace(tmp, target)  # a retried task replaces its own file whole
    failed = [r for r in rows if not r["ok"]]
    by_class = count_values(r["error_class"] for r in failed)
    return ShardResult(crawl_date=crawl_date.isoformat(), shard=shard, shards=shards, ads=len(mine),
                       downloaded=sum(1 for r in rows if r.get("ok") and not r.get("cached")),
                       cached=sum(1 for r in rows if r.get("cached")), failed=len(failed), by_error_class=by_class,
                       seconds=round(time.perf_counter() - t0, 2), staged=str(target))


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
    folder = staging_dir(settings, crawl_date, lake.ctx.run_id)
    files = sorted(folder.glob("shard-*.parquet")) if folder.exists() else []
    results = pa.concat_tables([pq.read_table(f, schema=RESULT_SCHEMA) for f in files]) if files else \
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
            records.append(QuarantineRecord(STAGE, f"{crawl_date.isoformat()}/{ad['ad_id']}", r["error_class"],
                                            r["message"], crawl_date.isoformat(), {"url": r["url"]}))
            continue
        succeeded.append(f"{crawl_date.isoformat()}/{ad['ad_id']}")
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
    if folder.exists():
        shutil.rmtree(folder, ignore_errors=True)
    summary = {"reconciliation": rec.as_dict(),
               "wrote": {VIDEOS.name: videos_write.version if videos_write else lake.version(VIDEOS),
                         ADS.name: ads_write.version},
               "results": len(rows), "quarantined_now": len(records)}
    if not rec.balanced:
        raise ReconciliationError(f"crawl {crawl_date} does not reconcile: {json.dumps(rec.as_dict())}")
    return summary
