"""Cutting an ad into clips (VC-LLM): at sentence boundaries when it has a voiceover, else at shots.

A boundary between two sentences sits in the pause between them, moved onto a shot cut when one lies in
that pause (or within ``snap_tolerance_s`` of it). Clips shorter than ``min_clip_s`` merge into a
neighbour, longer than ``max_clip_s`` split at shot cuts (else evenly). An ad outside
``min_clips``–``max_clips`` clips or over ``max_duration_s`` is rejected with a reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from adlake.config import ClipsConf


@dataclass
class Clip:
    idx: int
    start_s: float
    end_s: float
    script: str
    source: str  # "asr" or "shot"

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass
class Segmentation:
    clips: list[Clip]
    reason: str | None  # why the ad is filtered, or None


def _sentence_cuts(sentences: list[tuple[float, float, str]], cuts: list[float], tolerance: float) -> list[float]:
    out = []
    for (_, end, _), (start, _, _) in zip(sentences, sentences[1:], strict=False):
        lo, hi = min(end, start), max(end, start)
        near = [c for c in cuts if lo - tolerance <= c <= hi + tolerance]
        mid = (lo + hi) / 2
        out.append(min(near, key=lambda c: abs(c - mid)) if near else mid)
    return out


def _merge_short(clips: list[Clip], min_s: float) -> list[Clip]:
    clips = list(clips)
    while len(clips) > 1:
        short = [i for i, c in enumerate(clips) if c.duration_s < min_s]
        if not short:
            break
        i = min(short, key=lambda j: clips[j].duration_s)
        # into the shorter neighbour, so merged clips stay as even as possible
        j = i - 1 if i == len(clips) - 1 or (i > 0 and clips[i - 1].duration_s <= clips[i + 1].duration_s) else i + 1
        a, b = sorted((i, j))
        merged = Clip(0, clips[a].start_s, clips[b].end_s, " ".join(t for t in (clips[a].script, clips[b].script) if t),
                      clips[a].source)
        clips[a: b + 1] = [merged]
    return clips


def _split_long(clips: list[Clip], cuts: list[float], max_s: float) -> list[Clip]:
    """Pieces of at most ``max_s``: at the shot cuts inside the clip when they suffice, else evenly."""
    out: list[Clip] = []
    for c in clips:
        if c.duration_s <= max_s:
            out.append(c)
            continue
        inner = [x for x in cuts if c.start_s < x < c.end_s]
        edges = [c.start_s]
        for x, nxt in zip(inner, [*inner[1:], c.end_s], strict=False):
            if nxt - edges[-1] > max_s:  # the piece would grow too long without this cut
                edges.append(x)
        edges.append(c.end_s)
        if all(b - a <= max_s for a, b in zip(edges, edges[1:], strict=False)):
            out += [Clip(0, round(a, 3), round(b, 3), c.script if k == 0 else "", c.source)
                    for k, (a, b) in enumerate(zip(edges, edges[1:], strict=False))]
            continue
        parts = max(1, math.ceil(c.duration_s / max_s))
        step = c.duration_s / parts
        edges = [c.start_s + k * step for k in range(parts)] + [c.end_s]
        for k in range(parts):  # the script stays with the first piece
            out.append(Clip(0, round(edges[k], 3), round(edges[k + 1], 3), c.script if k == 0 else "", c.source))
    return out


def segment(duration_s: float, sentences: list[tuple[float, float, str]], shot_cuts: list[float],
            voiceover: bool, conf: ClipsConf) -> Segmentation:
    cuts = sorted(c for c in shot_cuts if 0 < c < duration_s)
    if voiceover and sentences:
        bounds = _sentence_cuts(sentences, cuts, conf.snap_tolerance_s)
        edges = [0.0, *bounds, duration_s]
        clips = [Clip(i, round(edges[i], 3), round(edges[i + 1], 3), sentences[i][2], "asr")
                 for i in range(len(sentences))]
    else:
        edges = [0.0, *cuts, duration_s]
        clips = [Clip(i, round(edges[i], 3), round(edges[i + 1], 3), "", "shot") for i in range(len(edges) - 1)]
    clips = _split_long(_merge_short(clips, conf.min_clip_s), cuts, conf.max_clip_s)
    for i, c in enumerate(clips):
        c.idx = i
    reason = None
    if duration_s > conf.max_duration_s:
        reason = "too_long"
    elif not conf.min_clips <= len(clips) <= conf.max_clips:
        reason = "clip_count"
    return Segmentation(clips, reason)
