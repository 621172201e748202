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
    a, b = a.astype(np.float64), b.astype(np.float64)  # running sums of squares overflow float32's precision

    def box(x: np.ndarray) -> np.ndarray:
        s = np.pad(x, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
        return (s[win:, win:] - s[:-win, win:] - s[win:, :-win] + s[:-win, :-win]) / win ** 2

    mu_a, mu_b = box(a), box(b)
    va, vb = box(a * a) - mu_a ** 2, box(b * b) - mu_b ** 2
    cov = box(a * b) - mu_a * mu_b
    m = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (va + vb + c2))
    return float(m.mean())


def audio(path: Path | str, rate: int = 16000, start_s: float = 0.0, length_s: float | None = None,
          loop_to: float | None = None) -> np.ndarray:
    """The first audio stream as mono float32 at ``rate``, from ``start_s`` for ``length_s`` (default: all);
    repeated to ``loop_to`` seconds when given (how the renderer loops music)."""
    args = ["ffmpeg", "-v", "error", "-nostdin", "-ss", f"{start_s:.3f}"] + (
        ["-t", f"{length_s:.3f}"] if length_s else []) + ["-i", str(path), "-map", "0:a:0", "-ac", "1", "-ar",
                                                          str(rate), "-f", "f32le", "-"]
    x = np.frombuffer(subprocess.run(args, capture_output=True, timeout=120, check=True).stdout, np.float32)
    if loop_to is not None and len(x):
        x = np.tile(x, int(np.ceil(loop_to * rate / len(x))) + 1)[: int(loop_to * rate)]
    return x


def onset(samples: np.ndarray, rate: int, around_s: float, rise_db: float = 12.0, hop_s: float = 0.01) -> float | None:
    """The first time after ``around_s - 0.5`` where the level rises ``rise_db`` over the median level of
    the half second before ``around_s``, and to within 20 dB of the loud part of the second after it (what
    is left of a music bed in a mix does not count as the voice)."""
    hop = int(rate * hop_s)
    lo = max(0, int((around_s - 0.5) * rate))
    frames = samples[lo: lo + int(1.5 * rate)]
    levels = 10 * np.log10(np.array([np.mean(frames[i:i + hop] ** 2) + 1e-12 for i in range(0, len(frames) - hop, hop)]))
    before = levels[: max(5, int((around_s - lo / rate) / hop_s))]  # up to the placed start
    floor = float(np.median(before)) if len(before) else -120.0
    after = levels[len(before):]
    peak = float(np.percentile(after, 90)) if len(after) else floor  # the narration's own loud level
    above = np.nonzero(levels > max(floor + rise_db, peak - 20.0))[0]
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


def same_cues(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> bool:
    """The same texts at the same times (to the millisecond SRT keeps)."""
    return len(a) == len(b) and all(x["text"] == y["text"] and abs(x["start_s"] - y["start_s"]) < 0.0015
                                    and abs(x["end_s"] - y["end_s"]) < 0.0015 for x, y in zip(a, b, strict=True))


def sidecar_cues(path: Path) -> list[dict[str, Any]]:
    return [c.__dict__ for c in parse_srt(path.read_text(encoding="utf-8"))]


def music_gain_db(samples: np.ndarray, music: np.ndarray, rate: int, start_s: float, end_s: float) -> float:
    """The music's gain in a window of the output, by projecting the output on the (aligned) music: what
    else plays (the narration) is uncorrelated with it, so the estimate needs no separation."""
    a, b = int(start_s * rate), int(end_s * rate)
    x, m = samples[a:b], music[a:b]
    return float(20 * np.log10(abs(np.dot(x, m)) / (np.dot(m, m) + 1e-12) + 1e-9))


def without_music(samples: np.ndarray, music: np.ndarray, rate: int, window_s: float = 0.05) -> np.ndarray:
    """The output less its music, window by window (each window's music gain by projection)."""
    out = samples.copy()
    n = int(window_s * rate)
    for a in range(0, min(len(samples), len(music)) - n + 1, n):
        m = music[a:a + n]
        g = float(np.dot(samples[a:a + n], m) / (np.dot(m, m) + 1e-12))
        out[a:a + n] -= g * m
    return out


def verify(lake, plan, rendered, mp4: Path) -> dict[str, dict[str, Any]]:
    """Every check of a render against its plan; each ``{"ok": bool | None, ...figures}`` (None: does not apply)."""
    from adlake.media.store import MediaStore
    from adlake.render.graph import fit_filter
    from adlake.render.resolve import resolve

    out, fps = plan.output, plan.output.fps
    size = (out.width, out.height)
    result: dict[str, dict[str, Any]] = {}
    info = probe(mp4)
    v = next((s for s in info["streams"] if s["codec_type"] == "video"), {})
    a = next((s for s in info["streams"] if s["codec_type"] == "audio"), {})
    fast = faststart(mp4)
    result["streams"] = {"ok": v.get("codec_name") == "h264" and a.get("codec_name") == "aac"
                         and (v.get("width"), v.get("height")) == size and fast,
                         "video": v.get("codec_name"), "audio": a.get("codec_name"),
                         "size": f"{v.get('width')}x{v.get('height')}", "faststart": fast}
    expected = round(rendered.duration_s * fps)
    result["duration"] = {"ok": abs(int(v.get("nb_frames", -99)) - expected) <= 1, "frames": int(v.get("nb_frames", 0)),
                          "expected_frames": expected}
    store = MediaStore(lake.settings)
    resolved = resolve(lake, plan)
    spans = {s.clip_id: s for s in resolved.spans}
    fit = f"{fit_filter(out)},setsar=1,format=yuv420p"
    scores = []
    edge = round(plan.dissolve_s * fps) + 2 if plan.transition == "dissolve" else 1
    for clip in rendered.clips:
        span = spans[clip["clip_id"]]
        src, temporary = store.local_copy(span.source.media_key)
        try:
            n_src = clip["frames"]
            for k in sorted({edge, n_src // 2, max(edge, n_src - edge - 1)}):
                t_out = clip["start_s"] + k / span.source.fps
                got = frame(mp4, size, index=round(t_out * fps))
                want = frame(src, size, index=clip["source_first_frame"] + k, vf=fit)
                h = int(size[1] * 0.8)
                scores.append(ssim(got[:h], want[:h]))
        finally:
            if temporary:
                src.unlink(missing_ok=True)
    result["clip_frames"] = {"ok": bool(scores) and min(scores) >= 0.98, "sampled": len(scores),
                             "min_ssim": round(min(scores), 4) if scores else None}
    srt = mp4.with_suffix(".srt")
    cues = sidecar_cues(srt) if srt.exists() else None
    shown = 0
    for c in rendered.cues:
        band = frame(mp4, size, index=round((c["start_s"] + c["end_s"]) / 2 * fps))[int(size[1] * 0.8):]
        shown += int((band > 200).sum() > 30)
    same = cues is not None and same_cues(cues, rendered.cues)
    result["subtitles"] = {"ok": same and shown == len(rendered.cues) if rendered.cues else None,
                           "cues": len(rendered.cues), "sidecar_matches": same, "burned_in_visible": shown}
    samples = audio(mp4)
    narrated = [c for c in rendered.clips if c["narration_start_s"] is not None]
    music = None
    if plan.bgm is not None:
        res = resolved.music
        path, temporary = (store.local_copy(res.media_key) if res.media_key else (Path(res.file), False))
        try:
            music = audio(path, 16000, res.start_s, res.length_s, loop_to=len(samples) / 16000)
        finally:
            if temporary:
                path.unlink(missing_ok=True)
    voice = samples if music is None else without_music(samples, music, 16000)
    offsets = [None if (t := onset(voice, 16000, c["narration_start_s"])) is None
               else round(float(t - c["narration_start_s"]), 3) for c in narrated]
    result["narration_onsets"] = {
        "ok": all(o is not None and abs(o) <= 0.1 for o in offsets) if narrated else None, "offsets_s": offsets}
    result["music_ducked"] = {"ok": None, "reason": "no music in the plan" if music is None else "no narration"}
    if music is not None and narrated:
        speech = [(c["narration_start_s"] + 0.1, c["narration_start_s"] + c["narration_s"] - 0.1) for c in narrated
                  if c["narration_s"] > 0.4]
        gaps, t = [], 0.0
        for s, e in sorted((c["narration_start_s"], c["narration_start_s"] + c["narration_s"]) for c in narrated):
            if s - t > 0.6:  # the compressor has released (duck_release_ms) 0.3 s after a narration
                gaps.append((t + 0.3, s - 0.05))
            t = e
        if rendered.duration_s - t > 0.6:
            gaps.append((t + 0.3, rendered.duration_s - 0.05))
        if speech and gaps:
            under = float(np.median([music_gain_db(samples, music, 16000, *w) for w in speech]))
            free = float(np.median([music_gain_db(samples, music, 16000, *w) for w in gaps]))
            result["music_ducked"] = {"ok": free - under >= 3.0, "ducking_db": round(free - under, 2)}
        else:
            result["music_ducked"] = {"ok": None, "reason": "no stretch of music without narration to compare"}
    if not narrated and music is None:
        result["loudness"] = {"ok": None, "reason": "a silent mix (no narration, no music)"}
    else:
        lufs = loudness(mp4)
        result["loudness"] = {"ok": abs(lufs - lake.settings.render.loudness_lufs) <= 2.0, "lufs": round(lufs, 2),
                              "target": lake.settings.render.loudness_lufs}
    return result
