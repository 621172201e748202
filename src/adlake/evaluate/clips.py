"""Clip segmentation end to end on a synthetic corpus: shots + ASR + segmentation, counted against truth.

The truth: the clips VC-LLM's rules cut from the true sentences and shots (as many clips as voiceover
sentences on voiceover ads, as many as shots on the others, less those the rules merge: a true shot under
``min_clip_s`` joins a neighbour whatever the detector finds).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from adlake.asr.transcribe import Transcriber
from adlake.clips.segment import segment
from adlake.clips.shots import boundaries, shots_of_file
from adlake.config import ParseConf


@dataclass
class ClipScore:
    ads: int = 0
    exact: int = 0
    misses: list[dict] = field(default_factory=list)

    @property
    def share(self) -> float:
        return self.exact / self.ads if self.ads else 0.0

    def as_dict(self) -> dict:
        return {**asdict(self), "share": round(self.share, 4)}


def expected_clips(t: dict, conf: ParseConf) -> int:
    """The clip count of one ad's ground truth under the configured rules."""
    sentences = [(s["start_s"], s["end_s"], s["text"]) for s in t["sentences"]] if t["has_voiceover"] else []
    cuts = [b["t_s"] for b in t["boundaries"]]
    return len(segment(t["duration_s"], sentences, cuts, bool(t["has_voiceover"]), conf.clips).clips)


def score_corpus(corpus: Path, conf: ParseConf) -> ClipScore:
    import whisperx

    truth = json.loads((Path(corpus) / "ground_truth.json").read_text())["ads"]
    transcriber = Transcriber(conf.asr)
    score = ClipScore()
    for ad, t in sorted(truth.items()):
        if t["kind"] == "bad":
            continue
        path = Path(corpus) / t["file"]
        cuts = boundaries(shots_of_file(path, conf.shots))
        sentences, voiceover = [], False
        if t["has_audio"]:
            got = transcriber.transcribe(whisperx.load_audio(str(path)))
            sentences = [(s.start_s, s.end_s, s.text) for s in got.sentences]
            voiceover = got.voiceover
        seg = segment(t["duration_s"], sentences, cuts, voiceover, conf.clips)
        expected = expected_clips(t, conf)
        score.ads += 1
        if len(seg.clips) == expected:
            score.exact += 1
        else:
            score.misses.append({"ad": ad, "kind": t["kind"], "expected": expected, "found": len(seg.clips)})
    return score
