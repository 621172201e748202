"""The soundtrack of a video: 16 kHz mono PCM for ASR and the original stream, untouched, for music.

One ffmpeg call writes both. Matroska audio holds any codec, so the original stream is copied
bit for bit whatever it is.
"""

from __future__ import annotations

import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adlake.errors import ClassifiedError

SAMPLE_RATE = 16_000


class AudioError(ClassifiedError):
    def __init__(self, message: str):
        super().__init__("audio_decode", message)


@dataclass
class Soundtrack:
    speech_wav: Path  # 16 kHz mono s16le WAV
    original: Path  # the first audio stream, copied into Matroska

    def samples(self) -> np.ndarray:
        return read_wav(self.speech_wav)


def read_wav(source) -> np.ndarray:
    """Float32 samples in [-1, 1] of a 16-bit mono WAV (a path or a binary file object)."""
    with wave.open(source if hasattr(source, "read") else str(source)) as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise AudioError(f"{source}: expected 16-bit mono PCM")
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float32) / 32768.0


def extract_soundtrack(video: Path, out_dir: Path, timeout_s: float = 300.0) -> Soundtrack:
    out_dir.mkdir(parents=True, exist_ok=True)
    wav, original = out_dir / "speech16k.wav", out_dir / "original.mka"
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(video),
           "-map", "0:a:0", "-vn", "-ac", "1", "-ar", str(SAMPLE_RATE), "-c:a", "pcm_s16le", "-f", "wav", str(wav),
           # bitexact: no random segment UID or muxing date, so a rerun writes the same blob
           "-map", "0:a:0", "-vn", "-c:a", "copy", "-fflags", "+bitexact", "-f", "matroska", str(original)]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as e:
        raise AudioError(f"ffmpeg took over {timeout_s:.0f} s extracting the soundtrack") from e
    if res.returncode or not wav.exists():
        raise AudioError(f"ffmpeg could not extract the soundtrack: {res.stderr.strip()[-500:]}")
    return Soundtrack(wav, original)
