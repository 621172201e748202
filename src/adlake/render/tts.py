"""Narration by espeak-ng (installed with the system packages): a script → a mono WAV that fits its clip."""

from __future__ import annotations

import subprocess
import wave
from pathlib import Path

from adlake.render.errors import PlanError, RenderFailed


def wav_duration(path: Path) -> float:
    with wave.open(str(path), "rb") as w:
        return w.getnframes() / w.getframerate()


def speak(text: str, out: Path, voice: str, wpm: int) -> float:
    """Write the spoken ``text`` to ``out``; returns its length in seconds."""
    try:
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(wpm), "-w", str(out), "--", text], check=True,
                       capture_output=True, timeout=120)
    except subprocess.CalledProcessError as e:
        raise RenderFailed(f"espeak-ng failed on {text[:60]!r}: {e.stderr.decode(errors='replace')[-300:]}") from None
    return trim_leading_silence(out)


def trim_leading_silence(path: Path, threshold: float = 0.01) -> float:
    """Cut the silence a synthesiser puts before the first word (espeak-ng: tens of milliseconds), so the
    voice starts where the plan places the narration; returns the new length."""
    import numpy as np

    with wave.open(str(path), "rb") as w:
        params, data = w.getparams(), w.readframes(w.getnframes())
    if params.sampwidth != 2:
        return params.nframes / params.framerate
    x = np.frombuffer(data, np.int16).reshape(-1, params.nchannels)
    loud = np.nonzero(np.abs(x).max(axis=1) > threshold * 32768)[0]
    first = max(0, int(loud[0]) - params.framerate // 200) if len(loud) else 0  # keep 5 ms before the onset
    with wave.open(str(path), "wb") as w:
        w.setparams(params)
        w.writeframes(x[first:].tobytes())
    return (len(x) - first) / params.framerate


def narrate(text: str, out: Path, room_s: float, voice: str, wpm: int, max_wpm: int, where: str) -> float:
    """Speak ``text`` at ``wpm``; if it runs past ``room_s``, again as fast as needed, up to ``max_wpm``.
    A script that cannot fit even then is a plan error for its clip."""
    length = speak(text, out, voice, wpm)
    if length <= room_s:
        return length
    faster = min(max_wpm, int(wpm * length / room_s * 1.05) + 1)
    length = speak(text, out, voice, faster)
    if length > room_s:
        raise PlanError("narration_too_long", where, f"the script takes {length:.2f} s at {faster} wpm; "
                        f"the clip leaves {room_s:.2f} s for it")
    return length
