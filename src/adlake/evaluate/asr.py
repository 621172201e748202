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
    # the same audio through plain sequential faster-whisper (same model, its default transcribe()), this run
    baseline_wer: float | None = None
    baseline_seconds: float | None = None
    by_part: dict[str, dict] = field(default_factory=dict)  # real recordings / synthetic voices: WER of each

    @property
    def timing_share(self) -> float:
        return self.timed_within / self.sentences if self.sentences else 0.0

    @property
    def real_time_factor(self) -> float:
        return self.seconds / self.audio_s if self.audio_s else 0.0

    @property
    def speed_up(self) -> float | None:
        """How many times faster than the sequential baseline (None: no baseline measured)."""
        return self.baseline_seconds / self.seconds if self.baseline_seconds and self.seconds else None

    def as_dict(self) -> dict:
        return {**asdict(self), "timing_share": round(self.timing_share, 4),
                "real_time_factor": round(self.real_time_factor, 4),
                "speed_up": None if self.speed_up is None else round(self.speed_up, 3)}


def timed_within(true_sentences: list[dict], found: list[tuple[float, float]], tolerance_s: float) -> int:
    """True sentences whose best-overlapping found sentence starts and ends within the tolerance."""
    hits = 0
    for s in true_sentences:
        best = max(found, default=None, key=lambda g: min(g[1], s["end_s"]) - max(g[0], s["start_s"]))
        if best and abs(best[0] - s["start_s"]) <= tolerance_s and abs(best[1] - s["end_s"]) <= tolerance_s:
            hits += 1
    return hits


def sequential_baseline(transcriber: Transcriber, conf: AsrConf):
    """Plain faster-whisper on the same model: one sequential ``transcribe()`` per soundtrack, its defaults."""
    from faster_whisper import WhisperModel

    model = WhisperModel(transcriber.model_path, device=transcriber.device, compute_type=transcriber.compute_type,
                         cpu_threads=conf.cpu_threads or 0)

    def transcribe(audio) -> str:
        segments, _ = model.transcribe(audio, language=conf.language)
        return " ".join(seg.text.strip() for seg in segments)
    return transcribe


def score_corpus(corpus: Path, conf: AsrConf, tolerance_s: float = 0.5, baseline: bool = False) -> AsrScore:
    """WER, sentence timing and speed on every ad with sound; with ``baseline``, plain sequential
    faster-whisper on the same audio in the same run, and the WER of each part of a mixed corpus."""
    import jiwer
    import whisperx

    truth = json.loads((Path(corpus) / "ground_truth.json").read_text())["ads"]
    transcriber = Transcriber(conf)
    plain = sequential_baseline(transcriber, conf) if baseline else None
    score = AsrScore(tolerance_s=tolerance_s)
    refs, hyps, base_hyps, parts = [], [], [], []
    base_seconds = 0.0
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
        if plain is not None:
            t0 = time.perf_counter()
            base_text = plain(audio)
            base_seconds += time.perf_counter() - t0
        if not t["has_voiceover"]:
            continue
        refs.append(normalise(" ".join(s["text"] for s in t["sentences"])))
        hyps.append(normalise(" ".join(s.text for s in got.sentences)))
        parts.append("real" if t.get("real") else "synthetic")
        if plain is not None:
            base_hyps.append(normalise(base_text))
        score.sentences += len(t["sentences"])
        score.timed_within += timed_within(t["sentences"], [(g.start_s, g.end_s) for g in got.sentences], tolerance_s)
        score.per_video.append({"ad": ad, "true": len(t["sentences"]), "found": len(got.sentences)})
    score.wer = round(jiwer.wer(refs, hyps), 4) if refs else 0.0
    if plain is not None:
        score.baseline_wer = round(jiwer.wer(refs, base_hyps), 4) if refs else 0.0
        score.baseline_seconds = round(base_seconds, 2)
    for part in sorted(set(parts)):
        mine = [i for i, p in enumerate(parts) if p == part]
        score.by_part[part] = {"ads": len(mine), "wer": round(jiwer.wer([refs[i] for i in mine], [hyps[i] for i in mine]), 4)}
        if plain is not None:
            score.by_part[part]["baseline_wer"] = round(jiwer.wer([refs[i] for i in mine],
                                                                  [base_hyps[i] for i in mine]), 4)
    score.seconds = round(score.seconds, 2)
    score.audio_s = round(score.audio_s, 2)
    return score
