"""Checks on a rendered MP4 against what its plan asked for: streams, size and length; each clip's frames
against its source; subtitle cues and burned-in pixels; narration onsets; the music ducked under speech;
loudness. Every figure is measured on the decoded file."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from adlake.render.subtitles import parse_srt


def probe(path: Path) -> dict[str, Any]:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
                         capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout)


def faststart(path: Path) -> bool:
    """The moov atom comes before mdat (playback can start before the whole file arrives)."""
    data = path.read_bytes()
    pos, order = 0, []
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos:pos + 4], "big")
        order.append(data[pos + 4:pos + 8].decode("latin-1"))
        if size == 1:
            size = int.from_bytes(data[pos + 8:pos + 16], "big")
        if size < 8:
            break
        pos += size
    return "moov" in order and "mdat" in order and order.index("moov") < order.index("mdat")


def frame(path: Path | str, size: tuple[int, int], *, index: int | None = None, t: float | None = None,
          vf: str | None = None) -> np.ndarray:
    """One decoded frame of ``size`` (after ``vf``) as gray float32: by frame index (exact) or by time."""
    chain = [f"select=eq(n\\,{index})"] if index is not None else []
    if vf:
        chain.append(vf)
    cmd = ["ffmpeg", "-v", "error", "-nostdin"] + (["-ss", f"{t:.4f}"] if t is not None else []) + [
        "-i", str(path)] + (["-vf", ",".join(chain)] if chain else []) + [
        "-frames:v", "1", "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "gray", "-"]
    out = subprocess.run(cmd, capture_output=True, timeout=120, check=True).stdout
    w, h = size
    if len(out) < w * h:
        raise ValueError(f"no frame {index if index is not None else t} in {path}")
    return np.frombuffer(out, np.uint8)[: w * h].reshape(h, w).astype(np.float32)


def ssim(a: np.ndarray, b: np.ndarray, win: int = 7) -> float:
    """Mean SSIM of two gray images (box windows, the usual constants for 8-bit)."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def box(x: np.ndarray) -> np.ndarray:
        s = np.pad(x, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
        return (s[win:, win:] - s[:-win, win:] - s[win:, :-win] + s[:-win, :-win]) / win ** 2

    mu_a, mu_b = box(a), box(b)
    va, vb = box(a * a) - mu_a ** 2, box(b * b) - mu_b ** 2
    cov = box(a * b) - mu_a * mu_b
    m = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (va + vb + c2))
    return float(m.mean())


def audio(path: Path, rate: int = 16000) -> np.ndarray:
    out = subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-i", str(path), "-map", "0:a:0", "-ac", "1", "-ar",
                          str(rate), "-f", "f32le", "-"], capture_output=True, timeout=120, check=True).stdout
    return np.frombuffer(out, np.float32)


def onset(samples: np.ndarray, rate: int, around_s: float, rise_db: float = 12.0, hop_s: float = 0.01) -> float | None:
    """The first time after ``around_s - 0.5`` where the level rises ``rise_db`` over the quietest 100 ms
    of the half second before ``around_s``."""
    hop = int(rate * hop_s)
    lo = max(0, int((around_s - 0.5) * rate))
    frames = samples[lo: lo + int(1.5 * rate)]
    levels = 10 * np.log10(np.array([np.mean(frames[i:i + hop] ** 2) + 1e-12 for i in range(0, len(frames) - hop, hop)]))
    before = levels[: int(0.5 / hop_s)]
    floor = float(np.min(np.convolve(before, np.ones(10) / 10, mode="valid"))) if len(before) >= 10 else -120.0
    above = np.nonzero(levels > floor + rise_db)[0]
    return None if not len(above) else lo / rate + above[0] * hop_s


def tone_level_db(samples: np.ndarray, rate: int, hz: float, start_s: float, end_s: float) -> float:
    """The level of a pure tone at ``hz`` in a window, from its FFT bin (what a ducking check measures)."""
    x = samples[int(start_s * rate): int(end_s * rate)]
    x = x * np.hanning(len(x))
    spec = np.abs(np.fft.rfft(x))
    freqs = np.fft.rfftfreq(len(x), 1 / rate)
    band = (freqs > hz - 5) & (freqs < hz + 5)
    return float(20 * np.log10(spec[band].max() + 1e-9))


def loudness(path: Path) -> float:
    """Integrated loudness (LUFS) by ffmpeg's EBU R128 meter."""
    out = subprocess.run(["ffmpeg", "-v", "info", "-nostdin", "-i", str(path), "-map", "0:a:0", "-af", "ebur128",
                          "-f", "null", "-"], capture_output=True, text=True, timeout=120).stderr
    summary = out[out.rfind("Summary:"):]
    for line in summary.splitlines():
        if line.strip().startswith("I:"):
            return float(line.split()[1])
    raise ValueError("no loudness summary from ebur128")


def sidecar_cues(path: Path) -> list[dict[str, Any]]:
    return [c.__dict__ for c in parse_srt(path.read_text(encoding="utf-8"))]
