"""ads_parse across many videos: plan batches, parse each batch into staging, commit once.

``parse_batch`` is one mapped Airflow task. Each video's rows are staged in a folder of their own,
renamed into place when complete, so a killed or retried batch redoes only unfinished videos and a
video is never staged half. A video that cannot be parsed is staged as an error and quarantined by
``commit_parse``: the batch goes on. ``commit_parse`` is the single writer of the silver tables; it
merges on each table's key (a rerun changes nothing), then checks that every video of
``bronze.videos`` sits in exactly one place: ``silver.parsed_videos`` or ``ops.quarantine``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import time
import zlib
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa

from adlake.config import Settings
from adlake.errors import ClassifiedError, ServiceUnavailable
from adlake.lake import Lake, Quarantine, QuarantineRecord, count_values
from adlake.lake.sql import sql_literal
from adlake.lake.storage import Staging
from adlake.media.store import MediaStore
from adlake.parse.video import Heard, ParsedVideo, listen, see, transcribe_all
from schemas import TableSpec
from schemas.registry import ADS, ASR_SENTENCES, ASR_WORDS, CLIPS, FRAMES, PARSED_VIDEOS, SHOTS, VIDEOS

STAGE = "parse"
# Children first, the per-video outcome last: a video counts as finished once its outcome is in.
OUTPUTS: tuple[TableSpec, ...] = (ASR_SENTENCES, ASR_WORDS, SHOTS, CLIPS, FRAMES, PARSED_VIDEOS)
VIDEO_COLUMNS = ["video_id", "media_uri", "duration_s", "has_audio", "width", "height"]


OUTCOME = "outcome.json"  # written last: a staged video folder is complete once it has one


def batch_of(video_id: str, batches: int) -> int:
    return zlib.crc32(video_id.encode()) % batches


def staging_root(settings: Settings) -> Staging:
    return Staging(settings.lake.staging_uri, settings.lake.storage_options).child("parse")


def pending_videos(lake: Lake) -> list[dict[str, Any]]:
    """Videos of bronze.videos without an outcome in silver.parsed_videos (quarantined ones are retried)."""
    if not lake.exists(VIDEOS):
        return []
    videos = lake.read(VIDEOS, columns=VIDEO_COLUMNS).to_pylist()
    done = set(lake.read(PARSED_VIDEOS, columns=["video_id"])["video_id"].to_pylist()) \
        if lake.exists(PARSED_VIDEOS) else set()
    return sorted((v for v in videos if v["video_id"] not in done), key=lambda v: v["video_id"])


def plan_batches(lake: Lake) -> list[dict[str, int]]:
    """Batches of the pending videos for dynamic task mapping (at least one, so the DAG shape is stable)."""
    conf = lake.settings.parse
    n = len(pending_videos(lake))
    # parse.engine ray: one task drives Ray Data's actor pools over every pending video
    batches = 1 if conf.engine == "ray" else max(1, min(conf.max_batches, math.ceil(n / conf.batch_size)))
    return [{"batch": i, "batches": batches} for i in range(batches)]


@dataclass
class BatchResult:
    batch: int
    batches: int
    videos: int
    parsed: int
    filtered: int
    failed: int
    already_staged: int
    by_error_class: dict[str, int]
    seconds: float
    engine: str = "airflow"
    # parse.engine ray: the videos each stage (hear, see) handled on each Ray node
    videos_by_node: dict[str, dict[str, int]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _LazyTranscriber:
    def __init__(self, settings: Settings):
        self.settings, self.instance = settings, None

    def __call__(self):
        if self.instance is None:
            from adlake.asr.transcribe import Transcriber

            self.instance = Transcriber(self.settings.parse.asr)
        return self.instance


def attempt(fn) -> tuple[Any, dict | None]:
    """``fn()``, or the staged outcome of its failure: one bad video must not fail its batch; the class says
    what broke."""
    try:
        return fn(), None
    except ServiceUnavailable:
        raise  # the media store is down: the task fails and is retried, no video is blamed
    except ClassifiedError as e:
        return None, {"ok": False, "error_class": e.error_class, "message": str(e)}
    except Exception as e:  # noqa: BLE001
        return None, {"ok": False, "error_class": f"parse_{type(e).__name__}",
                      "message": f"{type(e).__name__}: {e}"[:2000]}


def stage_video(root: Staging, video_id: str, parsed: ParsedVideo | None, error: dict | None) -> str:
    """Stage one video's tables, then ``outcome.json``: the folder counts only once its outcome is there, and
    a retry rewrites a folder that has none. Returns the video's status or error class."""
    folder = root.child(video_id)
    if error is None:
        for spec in OUTPUTS:
            folder.write_parquet(f"{spec.name}.parquet",
                                 pa.Table.from_pylist(parsed.rows[spec.name], schema=spec.schema))
    folder.write_json(OUTCOME, error or {"ok": True})
    return parsed.status if error is None else error["error_class"]


def with_local_copy(store: MediaStore, video: dict[str, Any], fn):
    """``fn(path)`` on a local file of the video's blob (a temporary copy when the store is remote)."""
    path, temporary = store.local_copy(store.key_of(video["media_uri"]))
    try:
        return fn(path)
    finally:
        if temporary:
            path.unlink(missing_ok=True)


def batch_result(batch: int, batches: int, videos: int, outcomes: list[str], staged_before: int,
                 t_start: float, **extra: Any) -> BatchResult:
    errors = [o for o in outcomes if o not in ("parsed", "filtered")]
    return BatchResult(batch=batch, batches=batches, videos=videos, parsed=outcomes.count("parsed"),
                       filtered=outcomes.count("filtered"), failed=len(errors), already_staged=staged_before,
                       by_error_class=count_values(errors), seconds=round(time.perf_counter() - t_start, 2),
                       **extra)


def unstaged(lake: Lake, videos: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The videos without a staged outcome (a retried task does not parse a video twice)."""
    root = staging_root(lake.settings)
    return [v for v in videos if not root.child(v["video_id"]).exists(OUTCOME)]


def hear_batch(videos: list[dict[str, Any]], store: MediaStore, transcriber_for) -> list[tuple[Heard | None, dict | None]]:
    """The soundtracks of a batch of videos, then their ASR in one batched call (what was heard, or the staged
    failure of each video). Should the batched call fail, each video is transcribed on its own, so that only
    the video that broke it is blamed."""
    listened: list[tuple[tuple[Heard, Any] | None, dict | None]] = [
        attempt(lambda video=video: with_local_copy(store, video, lambda path: listen(video, path, store)))
        for video in videos]
    ok = [got for got, error in listened if error is None]
    if any(samples is not None for _, samples in ok):
        _, error = attempt(lambda: transcribe_all(ok, transcriber_for()))
        if error is not None:
            listened = [(got, error) if error else attempt(lambda got=got: _transcribed_alone(got, transcriber_for))
                        for got, error in listened]
    return [(None, error) if error else (got[0], None) for got, error in listened]


def _transcribed_alone(listened: tuple[Heard, Any], transcriber_for) -> tuple[Heard, Any]:
    transcribe_all([listened], transcriber_for())
    return listened


def parse_batch(lake: Lake, batch: int, batches: int) -> BatchResult:
    settings = lake.settings
    if settings.parse.engine == "ray":
        from adlake.parse.on_ray import parse_on_ray

        return parse_on_ray(lake)
    t_start = time.perf_counter()
    store = MediaStore(settings)
    store.clean_stale_tmp()
    root = staging_root(settings)
    mine = [v for v in pending_videos(lake) if batch_of(v["video_id"], batches) == batch]
    todo = unstaged(lake, mine)
    transcriber = _LazyTranscriber(settings)
    outcomes = []
    for chunk in range(0, len(todo), settings.parse.asr.batch_size):  # ASR batched over this many videos
        videos = todo[chunk:chunk + settings.parse.asr.batch_size]
        for video, (heard, error) in zip(videos, hear_batch(videos, store, transcriber), strict=True):
            parsed, error = (None, error) if error else attempt(lambda video=video, heard=heard: with_local_copy(
                store, video, lambda path: see(video, path, heard, settings, store, lake.ctx.run_id)))
            outcomes.append(stage_video(root, video["video_id"], parsed, error))
    return batch_result(batch, batches, len(mine), outcomes, len(mine) - len(todo), t_start)


# -- committing ------------------------------------------------------------------------------------------
@dataclass
class ParseReconciliation:
    videos: int
    parsed: int
    filtered: int
    quarantined: int
    pending: int
    by_reason: dict[str, int] = field(default_factory=dict)
    by_error_class: dict[str, int] = field(default_factory=dict)

    @property
    def balanced(self) -> bool:
        return self.pending == 0 and self.videos == self.parsed + self.filtered + self.quarantined

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "balanced": self.balanced}


def reconcile_parse(lake: Lake) -> ParseReconciliation:
    """Where every video of bronze.videos ended, from the tables alone."""
    videos = set(lake.read(VIDEOS, columns=["video_id"])["video_id"].to_pylist()) if lake.exists(VIDEOS) else set()
    outcome = lake.read(PARSED_VIDEOS, columns=["video_id", "status", "reason"]).to_pylist() \
        if lake.exists(PARSED_VIDEOS) else []
    done = {r["video_id"]: r for r in outcome if r["video_id"] in videos}
    quarantined = {r["entity_key"]: r["error_class"] for r in Quarantine(lake).entries(stage=STAGE).to_pylist()
                   if r["entity_key"] in videos and r["entity_key"] not in done}
    statuses = [r["status"] for r in done.values()]
    return ParseReconciliation(
        videos=len(videos), parsed=statuses.count("parsed"), filtered=statuses.count("filtered"),
        quarantined=len(quarantined), pending=len(videos - set(done) - set(quarantined)),
        by_reason=count_values(r["reason"] for r in done.values() if r["reason"]),
        by_error_class=count_values(quarantined.values()))


class ParseReconciliationError(RuntimeError):
    pass


def _filter_ads(lake: Lake, filtered: dict[str, str]) -> int:
    """Selected ads whose video parse filtered become filtered with that reason (video_id kept)."""
    if not filtered or not lake.exists(ADS):
        return 0
    ids = ", ".join(sql_literal(v) for v in sorted(filtered))
    rows = lake.read(ADS, where=f"status = 'selected' AND video_id IN ({ids})").to_pylist()
    if not rows:
        return 0
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    for r in rows:
        r.update(status="filtered", reason=filtered[r["video_id"]], updated_at=now, run_id=lake.ctx.run_id)
    lake.merge(ADS, pa.Table.from_pylist(rows, schema=ADS.schema))
    return len(rows)


def staged_videos(lake: Lake) -> list[Staging]:
    """The complete staged folders of videos of bronze.videos, ready for ``commit_parse``."""
    folders = staging_root(lake.settings).folders()
    if not folders:
        return []
    known = {v["video_id"] for v in pending_videos(lake)} | (
        set(lake.read(PARSED_VIDEOS, columns=["video_id"])["video_id"].to_pylist()) if lake.exists(PARSED_VIDEOS)
        else set())
    return [f for f in folders if f.name in known and f.exists(OUTCOME)]


def commit_parse(lake: Lake, staged: list[Staging] | None = None) -> dict[str, Any]:
    """Merge the staged rows (``staged``: :func:`staged_videos`' answer when the caller already asked),
    quarantine failures, reconcile; raises :class:`ParseReconciliationError` when a video is in no place."""
    if staged is None:
        staged = staged_videos(lake)
    records, succeeded = [], []
    parts: dict[str, list[pa.Table]] = {spec.name: [] for spec in OUTPUTS}
    for folder in staged:
        outcome = folder.read_json(OUTCOME)
        if not outcome.get("ok"):
            records.append(QuarantineRecord(STAGE, folder.name, outcome["error_class"], outcome["message"]))
            continue
        succeeded.append(folder.name)
        for spec in OUTPUTS:
            parts[spec.name].append(folder.read_parquet(f"{spec.name}.parquet", spec.schema))
    wrote = {}
    for spec in OUTPUTS:
        data = pa.concat_tables(parts[spec.name]) if parts[spec.name] else spec.schema.empty_table()
        wrote[spec.name] = lake.merge(spec, data).as_dict()
    outcome_rows = pa.concat_tables(parts[PARSED_VIDEOS.name]).to_pylist() if parts[PARSED_VIDEOS.name] else []
    filtered = {r["video_id"]: r["reason"] for r in outcome_rows if r["status"] == "filtered"}
    ads_filtered = _filter_ads(lake, filtered)
    quarantine = Quarantine(lake)
    if records:
        quarantine.add(records)
    quarantine.resolve(STAGE, succeeded)
    for folder in staged:
        folder.remove()
    rec = reconcile_parse(lake)
    summary = {"reconciliation": rec.as_dict(), "staged_videos": len(staged), "quarantined_now": len(records),
               "ads_filtered_now": ads_filtered,
               "wrote": {name: w.get("version") for name, w in wrote.items()},
               "changes": {name: {k: w.get(k) for k in ("inserted", "updated", "skipped")} for name, w in wrote.items()}}
    if not rec.balanced:
        raise ParseReconciliationError(f"ads_parse does not reconcile: {json.dumps(rec.as_dict())}")
    return summary
