"""Sentences from Whisper's words: pure logic, no model.

A sentence ends after a word ending in . ! or ?, and between two speech regions a pause apart (small
models drop full stops). Whisper's word ends run on into the following pause, so each sentence is clipped
to the speech the VAD heard.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

SENTENCE_END = re.compile(r"[.!?]+[\"')\]]*$")


@dataclass
class Word:
    idx: int
    word: str
    start_s: float | None  # None: alignment found no character of it to place
    end_s: float | None
    score: float | None


@dataclass
class Sentence:
    idx: int
    start_s: float
    end_s: float
    text: str
    avg_logprob: float
    words: list[Word] = field(default_factory=list)

    @property
    def confidence(self) -> float:
        """Mean word probability (alignment score when words were aligned)."""
        scores = [w.score for w in self.words if w.score is not None]
        return round(float(np.mean(scores)), 4) if scores else 0.0


def overlaps(word, region: tuple[float, float], margin: float = 0.05) -> bool:
    return float(word.start) < region[1] + margin and float(word.end) > region[0] - margin


def _region_index(word, regions: list[tuple[float, float]]) -> int | None:
    """The speech region a word belongs to: the one holding its midpoint, else the nearest."""
    if not regions:
        return None
    mid = (float(word.start) + float(word.end)) / 2
    return min(range(len(regions)), key=lambda i: max(regions[i][0] - mid, mid - regions[i][1], 0.0))


def split_sentences(segments: list, regions: list[tuple[float, float]], pause_split_s: float | None = None
                    ) -> list[Sentence]:
    """Sentences from Whisper's segments; a segment boundary ends a sentence too."""
    out: list[Sentence] = []
    for seg in segments:
        for s in split_words([(w, float(seg.avg_logprob)) for w in seg.words or []], regions, pause_split_s):
            s.idx = len(out)
            out.append(s)
    return out


def split_words(words: list[tuple[object, float]], regions: list[tuple[float, float]],
                pause_split_s: float | None = None) -> list[Sentence]:
    """Sentences from Whisper's words: a new one after each word ending in . ! or ?, and between two speech
    regions at least ``pause_split_s`` apart; times clipped to the speech heard."""
    sentences: list[Sentence] = []
    current: list[tuple[object, float, int | None]] = []  # (word, avg_logprob, region index)

    def close() -> None:
        if not current:
            return
        ws = [w for w, _, _ in current]
        start, end = float(ws[0].start), float(ws[-1].end)
        first, last = current[0][2], current[-1][2]
        if first is not None:
            start = max(start, regions[first][0])
        if last is not None:
            end = min(end, regions[last][1])
        sentences.append(Sentence(
            idx=len(sentences), start_s=round(start, 3), end_s=round(max(end, start), 3),
            text="".join(w.word for w in ws).strip(),
            avg_logprob=round(float(np.mean([lp for _, lp, _ in current])), 4),
            words=[Word(i, w.word.strip(), round(float(w.start), 3), round(float(w.end), 3),
                        round(float(w.probability), 4)) for i, w in enumerate(ws)]))
        current.clear()

    for w, lp in words:
        region = _region_index(w, regions)
        if current and pause_split_s is not None and region is not None and current[-1][2] is not None \
                and region != current[-1][2] and regions[region][0] - regions[current[-1][2]][1] >= pause_split_s:
            close()
        current.append((w, lp, region))
        if SENTENCE_END.search(w.word.strip()):
            close()
    close()
    return sentences


def align_words(sentences: list[Sentence], aligned: list[list[dict]]) -> None:
    """Replace Whisper's word times with forced-alignment ones (kept where alignment found nothing)."""
    for s, words in zip(sentences, aligned, strict=True):
        if any(w.get("start") is not None for w in words):
            s.words = [Word(i, w["word"].strip(), _rounded(w.get("start")), _rounded(w.get("end")),
                            _rounded(w.get("score"), 4)) for i, w in enumerate(words)]


def _rounded(value, digits: int = 3):
    return None if value is None else round(float(value), digits)
