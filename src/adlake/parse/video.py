"""One video through ads_parse: soundtrack → ASR (batched across videos); one decode → shots + 1 fps frames;
clips; views.

Returns the rows of every silver table the video contributes to; writes only blobs (content-addressed,
so a retry rewrites nothing). Errors a bad video can cause are classified (``ParseError``, ``AudioError``: an ``error_class`` each).
"""

from __future__ import annotations

import datetime as dt
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adlake.clips.segment import Segmentation, segment
from adlake.clips.shots import Shot, boundaries, detect_shots, small_frames
from adlake.config import Settings
from adlake.errors import ClassifiedError
from adlake.media.audio import extract_soundtrack
from adlake.media.frames import (
    SPATIAL_LONG_SIDE,
    TEMPORAL_LONG_SIDE,
    Decoded,
    DecodeError,
    Jpeg,
    Sample,
    clip_samples,
    decode_once,
    spatial_view,
    temporal_views,
)
from adlake.media.store import MediaStore
from schemas.registry import ASR_SENTENCES, ASR_WORDS, CLIPS, FRAMES, PARSED_VIDEOS, SHOTS


class ParseError(ClassifiedError):
    pass


@dataclass
class ParsedVideo:
    video_id: str
    status: str
    reason: str | None
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def _decode(path: Path, duration_s: float, settings: Settings) -> tuple[list[Shot], Decoded]:
    # A video too long to keep gets no 1 fps frames: they would only be held in memory and dropped.
    frames = duration_s <= settings.parse.clips.max_duration_s
    try:
        decoded = decode_once(path, small_frames(settings.parse.shots), samples=frames,
                              max_seconds=max(duration_s, settings.parse.clips.max_duration_s) + 10)
    except DecodeError as e:
        raise ParseError("video_decode", str(e)) from e
    if frames and not decoded.samples:
        raise ParseError("video_decode", "no frame could be decoded at 1 fps")
    return detect_shots(decoded, settings.parse.shots), decoded


@dataclass
class Heard:
    """What the soundtrack gave: the first of a video's two stages (ASR), the input of the second (vision)."""
    sentences: list = field(default_factory=list)
    speech_s: float = 0.0
    voiceover: bool = False
    audio_uris: tuple[str | None, str | None] = (None, None)
    asr_model: str | None = None
    timings: dict[str, float] = field(default_factory=dict)


def listen(video: dict[str, Any], path: Path, store: MediaStore) -> tuple[Heard, Any]:
    """The soundtrack: its speech and original tracks go to the store; returns its 16 kHz samples for ASR
    (None when the video has no audio). ``AudioError``: classified, quarantined by the batch."""
    heard = Heard(timings={"audio_s": 0.0, "asr_s": 0.0, "write_s": 0.0})
    if not video["has_audio"]:
        return heard, None
    with tempfile.TemporaryDirectory(prefix="adlake-audio-") as tmp:
        t0 = time.perf_counter()
        track = extract_soundtrack(path, Path(tmp))
        samples = track.samples()
        heard.timings["audio_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        heard.audio_uris = (store.uri(store.put_file(track.speech_wav, "audio")),
                            store.uri(store.put_file(track.original, "audio")))
        heard.timings["write_s"] = time.perf_counter() - t0
    return heard, samples


def transcribe_all(listened: list[tuple[Heard, Any]], transcriber) -> None:
    """ASR of every soundtrack at once, batched across the videos; each video's ``asr_s`` is its share of
    the batch's time by audio length."""
    todo = [(heard, samples) for heard, samples in listened if samples is not None]
    if not todo:
        return
    t0 = time.perf_counter()
    transcripts = transcriber.transcribe_many([samples for _, samples in todo])
    seconds = time.perf_counter() - t0
    total = sum(len(samples) for _, samples in todo) or 1
    for (heard, samples), transcript in zip(todo, transcripts, strict=True):
        heard.sentences, heard.speech_s, heard.voiceover = \
            transcript.sentences, transcript.speech_s, transcript.voiceover
        heard.asr_model = transcriber.model_name
        heard.timings["asr_s"] = seconds * len(samples) / total


def see(video: dict[str, Any], path: Path, heard: Heard, settings: Settings, store: MediaStore,
        run_id: str) -> ParsedVideo:
    """One decode → shots + 1 fps frames; clips from the shots and what was heard; every table's rows."""
    vid = video["video_id"]
    duration = float(video["duration_s"])
    timings = {"audio_s": 0.0, "asr_s": 0.0, "decode_s": 0.0, "write_s": 0.0, **heard.timings}
    sentences, speech_s, voiceover, audio_uris = heard.sentences, heard.speech_s, heard.voiceover, heard.audio_uris

    t0 = time.perf_counter()
    shots, decoded = _decode(path, duration, settings)
    timings["decode_s"] = time.perf_counter() - t0

    seg: Segmentation = segment(duration, [(s.start_s, s.end_s, s.text) for s in sentences], boundaries(shots),
                                voiceover, settings.parse.clips)
    # A filtered video's ads are out: its clips and frames would only feed embeddings nobody uses.
    clips = [] if seg.reason else seg.clips
    t0 = time.perf_counter()
    views = [] if seg.reason else _views(vid, seg, decoded)  # JPEGs encoded: the decode's work, timed with it
    timings["decode_s"] += time.perf_counter() - t0
    t0 = time.perf_counter()
    frames = _frame_rows(vid, views, store, run_id)
    timings["write_s"] += time.perf_counter() - t0

    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    rows: dict[str, list[dict[str, Any]]] = {
        ASR_SENTENCES.name: [{"video_id": vid, "idx": s.idx, "start_s": s.start_s, "end_s": s.end_s, "text": s.text,
                              "avg_logprob": s.avg_logprob, "confidence": s.confidence, "run_id": run_id}
                             for s in sentences],
        ASR_WORDS.name: [{"video_id": vid, "sentence_idx": s.idx, "idx": w.idx, "word": w.word, "start_s": w.start_s,
                          "end_s": w.end_s, "score": w.score, "run_id": run_id}
                         for s in sentences for w in s.words],
        SHOTS.name: [{"video_id": vid, "idx": s.idx, "start_s": s.start_s, "end_s": s.end_s,
                      "transition": s.transition, "run_id": run_id} for s in shots],
        CLIPS.name: [{"clip_id": f"{vid}:{c.idx}", "video_id": vid, "idx": c.idx, "start_s": c.start_s,
                      "end_s": c.end_s, "script": c.script or None, "source": c.source, "run_id": run_id}
                     for c in clips],
        FRAMES.name: frames,
    }
    status = "filtered" if seg.reason else "parsed"
    rows[PARSED_VIDEOS.name] = [{
        "video_id": vid, "status": status, "reason": seg.reason, "duration_s": duration,
        "has_audio": bool(video["has_audio"]), "voiceover": bool(voiceover), "speech_s": speech_s,
        "sentences": len(sentences), "shots": len(shots), "clips": len(seg.clips), "frames": len(frames),
        "speech_audio_uri": audio_uris[0], "original_audio_uri": audio_uris[1],
        "asr_model": heard.asr_model,
        **{k: round(v, 3) for k, v in timings.items()}, "parsed_at": now, "run_id": run_id}]
    return ParsedVideo(vid, status, seg.reason, rows)


def _views(vid: str, seg: Segmentation, decoded: Decoded) -> list[tuple[str, str, Sample, Jpeg]]:
    """(clip id, role, sample, JPEG) of every frame row: each clip's 1 fps frames, its spatial view (the
    sample nearest its middle, at the high resolution) and up to five temporal views."""
    out: list[tuple[str, str, Sample, Jpeg]] = []
    for i, clip in enumerate(seg.clips):
        clip_id = f"{vid}:{clip.idx}"
        inside = clip_samples(decoded.samples, clip.start_s, clip.end_s, last=i == len(seg.clips) - 1)
        out += [(clip_id, "fps1", s, s.view(TEMPORAL_LONG_SIDE)) for s in inside]
        middle = spatial_view(inside or decoded.samples, clip.start_s, clip.end_s)
        if middle is not None:
            out.append((clip_id, "spatial", middle, middle.view(SPATIAL_LONG_SIDE)))
        out += [(clip_id, "temporal", s, s.view(TEMPORAL_LONG_SIDE)) for s in temporal_views(inside)]
    return out


def _frame_rows(vid: str, views: list[tuple[str, str, Sample, Jpeg]], store: MediaStore, run_id: str) -> list[dict]:
    uris: dict[tuple[float, int], str] = {}  # a frame in two roles is one blob
    rows: list[dict] = []
    for clip_id, role, sample, jpeg in views:
        key = (sample.t_s, max(jpeg.width, jpeg.height))
        if key not in uris:
            uris[key] = store.uri(store.put_bytes(jpeg.data, "frames"))
        rows.append({"frame_id": f"{clip_id}:{role}:{round(sample.t_s * 1000)}", "clip_id": clip_id,
                     "video_id": vid, "t_s": sample.t_s, "role": role, "media_uri": uris[key], "width": jpeg.width,
                     "height": jpeg.height, "run_id": run_id})
    return rows
