"""ASR against a synthetic corpus's ground truth: word error rate and sentence timing."""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from adlake.asr.transcribe import Transcriber
from adlake.config import AsrConf

_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def normalise(text: str) -> str:
    """Lower case, numbers spelled out, punctuation stripped: how WER is computed here."""
    from num2words import num2words

    text = text.lower().replace("%", " percent ").replace("&", " and ")
    text = _NUMBER.sub(lambda m: " " + num2words(float(m.group()) if "." in m.group() else int(m.group())) + " ",
                       text)
    text = re.sub(r"[^a-z' ]+", " ", text.replace("-", " "))
    return " ".join(text.replace("'", "").split())


@dataclass
class AsrScore:
    videos: int = 0
    sentences: int = 0
    wer: float = 0.0
    timed_within: int = 0  # true sentences whose start and end are both within the tolerance
    tolerance_s: float = 0.5
    audio_s: float = 0.0
    seconds: float = 0.0
    voiceover_correct: int = 0
    per_video: list[dict] = field(default_factory=list)

    @property
    def timing_share(self) -> float:
        return self.timed_within / self.sentences if self.sentences else 0.0

    @property
    def real_time_factor(self) -> float:
        return self.seconds / self.audio_s if self.audio_s else 0.0

    def as_dict(self) -> dict:
        return {**asdict(self), "timing_share": round(self.timing_share, 4),
                "real_time_factor": round(self.real_time_factor, 4)}


def timed_within(true_sentences: list[dict], found: list[tuple[float, float]], tolerance_s: float) -> int:
    """True sentences whose best-overlapping found sentence starts and ends within the tolerance."""
    hits = 0
    for s in true_sentences:
        best = max(found, default=None, key=lambda g: min(g[1], s["end_s"]) - max(g[0], s["start_s"]))
        if best and abs(best[0] - s["start_s"]) <= tolerance_s and abs(best[1] - s["end_s"]) <= tolerance_s:
            hits += 1
    return hits


def score_corpus(corpus: Path, conf: AsrConf, tolerance_s: float = 0.5) -> AsrScore:
    import jiwer
    import whisperx

    truth = json.loads((Path(corpus) / "ground_truth.json").read_text())["ads"]
    transcriber = Transcriber(conf)
    score = AsrScore(tolerance_s=tolerance_s)
    refs, hyps = [], []
    for ad, t in sorted(truth.items()):
        if t["kind"] == "bad" or not t.get("has_audio"):
            continue
        audio = whisperx.load_audio(str(Path(corpus) / t["file"]))
        t0 = time.perf_counter()
        got = transcriber.transcribe(audio)
        score.seconds += time.perf_counter() - t0
        score.audio_s += len(audio) / 16_000
        score.videos += 1
        score.voiceover_correct += int(got.voiceover == t["has_voiceover"])
        if not t["has_voiceover"]:
            continue
        refs.append(normalise(" ".join(s["text"] for s in t["sentences"])))
        hyps.append(normalise(" ".join(s.text for s in got.sentences)))
        score.sentences += len(t["sentences"])
        score.timed_within += timed_within(t["sentences"], [(g.start_s, g.end_s) for g in got.sentences], tolerance_s)
        score.per_video.append({"ad": ad, "true": len(t["sentences"]), "found": len(got.sentences)})
    score.wer = round(jiwer.wer(refs, hyps), 4) if refs else 0.0
    score.seconds = round(score.seconds, 2)
    score.audio_s = round(score.audio_s, 2)
    return score
