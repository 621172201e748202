"""A plan against the lake: each clip's source video, frame-exact span and text; the music's source.

Reads ``silver.clips``, ``bronze.videos`` and ``silver.parsed_videos`` at the versions the lake reads
(pinned or latest) and records those versions, so a render says which lake it came from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from adlake.evaluate.metrics import segment_subtitles
from adlake.lake import Lake
from adlake.lake.sql import quote, sql_literal
from adlake.media.store import MediaStore
from adlake.render.errors import PlanError
from schemas.edit_plan import EditPlan, PlanClip, Subtitle
from schemas.registry import CLIPS, PARSED_VIDEOS, VIDEOS


@dataclass
class Source:
    video_id: str
    media_key: str  # blob key in the media store
    fps: float


@dataclass
class Span:
    """One clip of the plan, resolved: frames [first_frame, end_frame) of its source."""

    position: int
    clip_id: str
    source: Source
    first_frame: int
    end_frame: int
    script: str | None  # the plan's script for the clip (narrated)
    library_script: str | None  # silver.clips' own script (what SSMP matches narrations with)
    subtitles: list[Subtitle]
    narration_file: str | None
    narration_offset_s: float

    @property
    def frames(self) -> int:
        return self.end_frame - self.first_frame

    @property
    def duration_s(self) -> float:
        return self.frames / self.source.fps


@dataclass
class MusicSource:
    media_key: str | None  # a blob of the media store, or
    file: str | None  # a local file
    start_s: float
    length_s: float | None  # None: the whole file
    gain_db: float


@dataclass
class Resolved:
    plan: EditPlan
    spans: list[Span]
    music: MusicSource | None
    versions: dict[str, int | None] = field(default_factory=dict)


def load_plan(path: Path | str) -> EditPlan:
    """A plan file, validated; every problem is a :class:`PlanError` naming the field."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PlanError("missing_file", str(path), "no such plan file") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PlanError("not_json", str(path), f"not a JSON file: {e}") from None
    return parse_plan(raw)


def parse_plan(raw: object) -> EditPlan:
    if isinstance(raw, dict) and raw.get("format") not in (None, "adlake.edit_plan"):
        raise PlanError("wrong_format", "format", f"{raw.get('format')!r} is not an adlake edit plan")
    if isinstance(raw, dict) and raw.get("version", 1) != 1:
        raise PlanError("unknown_version", "version",
                        f"plan version {raw.get('version')!r} is not known to this adlake (it reads version 1)")
    try:
        return EditPlan.model_validate(raw)
    except ValidationError as e:
        first = e.errors()[0]
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"]).lstrip(".")
        raise PlanError("invalid", where or "plan", f"{first['msg']} ({e.error_count()} problem(s))") from None


def segmented(text: str | None) -> list[Subtitle]:
    """Untimed subtitle segments of a script (the metric library's segmentation)."""
    return [Subtitle(text=s) for s in segment_subtitles(text)] if text else []


def subtitles_of(clip: PlanClip) -> list[Subtitle]:
    return list(clip.subtitles) if clip.subtitles is not None else segmented(clip.script)


def _in(values: list[str]) -> str:
    return ", ".join(sql_literal(v) for v in values)


def resolve(lake: Lake, plan: EditPlan) -> Resolved:
    ids = [c.clip_id for c in plan.clips]
    if not lake.exists(CLIPS):
        raise PlanError("unknown_clip", "clips[0]", f"silver.clips does not exist yet in {lake.settings.lake.uri}: "
                        "nothing to render from (run ads_parse)")
    rows = {r["clip_id"]: r for r in lake.read(CLIPS, where=f"{quote('clip_id')} IN ({_in(ids)})").to_pylist()}
    for i, c in enumerate(plan.clips):
        if c.clip_id not in rows:
            raise PlanError("unknown_clip", f"clips[{i}]", f"clip {c.clip_id!r} is not in silver.clips")
    video_ids = sorted({r["video_id"] for r in rows.values()})
    videos = {v["video_id"]: v for v in lake.read(VIDEOS, where=f"video_id IN ({_in(video_ids)})").to_pylist()}
    media = MediaStore(lake.settings)
    spans = []
    for i, c in enumerate(plan.clips):
        row = rows[c.clip_id]
        v = videos.get(row["video_id"])
        if v is None or not v["fps"]:
            raise PlanError("no_source", f"clips[{i}]", f"video {row['video_id']} of clip {c.clip_id} is not in "
                            "bronze.videos with a frame rate")
        source = Source(v["video_id"], media.key_of(v["media_uri"]), float(v["fps"]))
        first, end = round(row["start_s"] * source.fps), round(row["end_s"] * source.fps)
        if end <= first:
            raise PlanError("empty_clip", f"clips[{i}]", f"clip {c.clip_id} spans no frame")
        spans.append(Span(i, c.clip_id, source, first, end, c.script, row["script"], subtitles_of(c), c.narration,
                          c.narration_offset_s))
    versions = {spec.name: lake.version(spec) for spec in (CLIPS, VIDEOS, PARSED_VIDEOS)}
    return Resolved(plan, spans, _music(lake, plan), versions)


def _music(lake: Lake, plan: EditPlan) -> MusicSource | None:
    m = plan.bgm
    if m is None:
        return None
    if m.file is not None:
        if not Path(m.file).is_file():
            raise PlanError("missing_file", "bgm.file", f"no such audio file {m.file}")
        return MusicSource(None, m.file, 0.0, None, m.gain_db)
    parts = m.entity_id.split(":")
    if len(parts) != 3 or parts[1] != "bgm" or not parts[2].isdigit():
        raise PlanError("bad_bgm", "bgm.entity_id", f"{m.entity_id!r} is not a music window '<video_id>:bgm:<ms>'")
    found = lake.read(PARSED_VIDEOS, columns=["original_audio_uri", "duration_s"],
                      where=f"video_id = {sql_literal(parts[0])}").to_pylist() if lake.exists(PARSED_VIDEOS) else []
    if not found or not found[0]["original_audio_uri"]:
        raise PlanError("bad_bgm", "bgm.entity_id", f"video {parts[0]} has no parsed soundtrack")
    start = int(parts[2]) / 1000
    return MusicSource(MediaStore(lake.settings).key_of(found[0]["original_audio_uri"]), None, start,
                       lake.settings.embed.bgm.window_s, m.gain_db)
