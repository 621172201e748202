"""Subtitle cues on the output timeline, and their SRT and WebVTT sidecars."""

from __future__ import annotations

from dataclasses import dataclass

from schemas.edit_plan import Subtitle


@dataclass(frozen=True)
class Cue:
    start_s: float
    end_s: float
    text: str


def place(subtitles: list[Subtitle], span_start: float, span_end: float, clip_start: float, clip_end: float
          ) -> list[Cue]:
    """Cues of one clip on the output timeline. Timed segments keep their times (from the clip's start);
    untimed ones share ``[span_start, span_end)`` (the narration, or the clip) by their length in characters.
    Nothing runs past the clip."""
    cues: list[Cue] = []
    untimed = [s for s in subtitles if s.start_s is None]
    total = sum(max(len(s.text), 1) for s in untimed)
    t = span_start
    for s in subtitles:
        if s.start_s is not None:
            a, b = clip_start + s.start_s, clip_start + s.end_s
        else:
            a = t
            b = t = t + (span_end - span_start) * max(len(s.text), 1) / total
        a, b = max(a, clip_start), min(b, clip_end)
        if b > a:
            cues.append(Cue(round(a, 3), round(b, 3), s.text))
    return cues


def _stamp(t: float, sep: str) -> str:
    ms = round(t * 1000)
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def srt(cues: list[Cue]) -> str:
    return "".join(f"{i}\n{_stamp(c.start_s, ',')} --> {_stamp(c.end_s, ',')}\n{c.text}\n\n"
                   for i, c in enumerate(cues, 1))


def vtt(cues: list[Cue]) -> str:
    return "WEBVTT\n\n" + "".join(f"{_stamp(c.start_s, '.')} --> {_stamp(c.end_s, '.')}\n{c.text}\n\n" for c in cues)


def parse_srt(text: str) -> list[Cue]:
    """The cues of an SRT file (what a test reads back from a sidecar)."""
    def seconds(stamp: str) -> float:
        h, m, rest = stamp.strip().split(":")
        s, ms = rest.split(",")
        return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000

    cues = []
    for block in text.strip().split("\n\n"):
        lines = block.splitlines()
        if len(lines) >= 3:
            a, b = lines[1].split(" --> ")
            cues.append(Cue(seconds(a), seconds(b), "\n".join(lines[2:])))
    return cues
