"""WhisperX forced alignment of sentence words with a local wav2vec2 CTC checkpoint.

Used when ``parse.asr.alignment_model_path`` names a folder written by ``save_pretrained`` (a
``Wav2Vec2ForCTC`` with its processor). Nothing is downloaded: the checkpoint is loaded from that folder
only, and WhisperX's sentence splitter (which would fetch NLTK data) is given a plain Punkt splitter;
each segment handed to it is already one sentence.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np


def check_alignment_model(path: str) -> Path:
    folder = Path(path)
    if not (folder / "config.json").exists():
        raise FileNotFoundError(f"asr.alignment_model_path {folder} is not a wav2vec2 checkpoint (no config.json)")
    return folder


@contextlib.contextmanager
def _offline_sentence_splitter():
    import whisperx.alignment as wa
    from nltk.tokenize.punkt import PunktSentenceTokenizer

    original = wa.nltk_load
    wa.nltk_load = lambda *_args, **_kwargs: PunktSentenceTokenizer()
    try:
        yield
    finally:
        wa.nltk_load = original


class Aligner:
    def __init__(self, path: str, language: str, device: str):
        import whisperx

        folder = check_alignment_model(path)
        self.device = device
        self.model, self.metadata = whisperx.load_align_model(language, device, model_name=str(folder),
                                                              model_cache_only=True)
        self.name = folder.name

    def align(self, sentences: list[tuple[float, float, str]], audio: np.ndarray) -> list[list[dict]]:
        """Per sentence, its words with start, end and score (None where a word has no alignable character)."""
        import whisperx

        if not sentences:
            return []
        with _offline_sentence_splitter():
            result = whisperx.align([{"start": s, "end": e, "text": t} for s, e, t in sentences], self.model,
                                    self.metadata, audio, self.device, return_char_alignments=False)
        per_sentence: list[list[dict]] = [[] for _ in sentences]
        for seg in result["segments"]:
            # WhisperX may split a segment further; its pieces stay inside the sentence's time span
            mid = (seg["start"] + seg["end"]) / 2 if seg.get("start") is not None else None
            idx = 0 if mid is None else min(range(len(sentences)), key=lambda i: max(
                sentences[i][0] - mid, mid - sentences[i][1], 0.0))
            per_sentence[idx].extend(seg.get("words", []))
        return per_sentence
