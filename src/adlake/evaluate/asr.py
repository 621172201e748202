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
    redone_chunks: int = 0  # VAD chunks the sequential decoder transcribed again
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
    """WER, sentence timing and speed on every ad with sound, transcribed as ads_parse does (batched across
    ``conf.batch_size`` videos); with ``baseline``, plain sequential faster-whisper on the same audio in the
    same run, and the WER of each part of a mixed corpus. ``per_video`` lists each ad's WER (and the
    baseline's) and its sentences missed in time."""
    import jiwer
    import whisperx

    truth = json.loads((Path(corpus) / "ground_truth.json").read_text())["ads"]
    ads = [(ad, t) for ad, t in sorted(truth.items()) if t["kind"] != "bad" and t.get("has_audio")]
    audios = [whisperx.load_audio(str(Path(corpus) / t["file"])) for _, t in ads]
    transcriber = Transcriber(conf)
    score = AsrScore(tolerance_s=tolerance_s)
    t0 = time.perf_counter()
    heard = [got for i in range(0, len(audios), conf.batch_size)
             for got in transcriber.transcribe_many(audios[i:i + conf.batch_size])]
    score.seconds = round(time.perf_counter() - t0, 2)
    score.audio_s = round(sum(len(a) for a in audios) / 16_000, 2)
    score.videos = len(ads)
    base_texts: list[str | None] = [None] * len(ads)
    if baseline:
        plain = sequential_baseline(transcriber, conf)
        t0 = time.perf_counter()
        base_texts = [plain(a) for a in audios]
        score.baseline_seconds = round(time.perf_counter() - t0, 2)
    refs, hyps, base_hyps, parts = [], [], [], []
    for (ad, t), got, base_text in zip(ads, heard, base_texts, strict=True):
        score.voiceover_correct += int(got.voiceover == t["has_voiceover"])
        score.redone_chunks += got.redone
        if not t["has_voiceover"]:
            if got.sentences:
                score.per_video.append({"ad": ad, "true": 0, "found": len(got.sentences),
                                        "heard_in_music": [s.text for s in got.sentences]})
            continue
        refs.append(normalise(" ".join(s["text"] for s in t["sentences"])))
        hyps.append(normalise(" ".join(s.text for s in got.sentences)))
        parts.append("real" if t.get("real") else "synthetic")
        found = [(g.start_s, g.end_s) for g in got.sentences]
        timed = timed_within(t["sentences"], found, tolerance_s)
        score.sentences += len(t["sentences"])
        score.timed_within += timed
        row = {"ad": ad, "part": parts[-1], "true": len(t["sentences"]), "found": len(got.sentences),
               "wer": round(jiwer.wer(refs[-1], hyps[-1]), 4), "timed_within": timed}
        if base_text is not None:
            base_hyps.append(normalise(base_text))
            row["baseline_wer"] = round(jiwer.wer(refs[-1], base_hyps[-1]), 4)
        score.per_video.append(row)
    score.wer = round(jiwer.wer(refs, hyps), 4) if refs else 0.0
    if baseline:
        score.baseline_wer = round(jiwer.wer(refs, base_hyps), 4) if refs else 0.0
    for part in sorted(set(parts)):
        mine = [i for i, p in enumerate(parts) if p == part]
        score.by_part[part] = {"ads": len(mine), "wer": round(jiwer.wer([refs[i] for i in mine], [hyps[i] for i in mine]), 4)}
        if baseline:
            score.by_part[part]["baseline_wer"] = round(jiwer.wer([refs[i] for i in mine],
                                                                  [base_hyps[i] for i in mine]), 4)
    return score
