"""Local video files straight into the media store and ``bronze.videos``, as a crawl would leave them, so
that parse tests and benchmarks need neither Spark nor a crawl."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa

from adlake.lake import Lake
from adlake.media.probe import probe_video
from adlake.media.store import MediaStore
from schemas.registry import VIDEOS


def register_videos(lake: Lake, paths) -> list[str]:
    """Returns the video ids (content digests) of ``paths``, in order."""
    store = MediaStore(lake.settings)
    rows = []
    for path in paths:
        key = store.put_file(Path(path), "videos")
        probe = probe_video(Path(path), lake.settings.ingest.probe.formats).as_dict()
        rows.append({"video_id": key.rsplit("/", 1)[1], "source_uri": f"file://{path}", "media_uri": store.uri(key),
                     **{k: probe[k] for k in ("bytes", "duration_s", "width", "height", "fps", "vcodec", "acodec",
                                              "has_audio", "format_name")},
                     "probed_at": dt.datetime.now(dt.UTC), "run_id": "register"})
    lake.merge(VIDEOS, pa.Table.from_pylist(rows, schema=VIDEOS.schema))
    return [r["video_id"] for r in rows]
