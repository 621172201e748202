"""Shot boundaries from the frames of the single decode, with the detector configuration names.

``adaptive`` and ``content`` are PySceneDetect's detectors, fed the decode's downscaled frames (never a
full-size frame in Python); ``transnetv2`` is the TransNetV2 network (``adlake.clips.transnet``) on the same
decode's 48 × 27 frames; ``auto`` takes TransNetV2 where CUDA is present and the adaptive detector on CPU,
where the network costs many times the decode (figures in the README).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adlake.config import ShotsConf
from adlake.media.frames import Decoded, Small, decode_once


@dataclass(frozen=True)
class Shot:
    idx: int
    start_s: float
    end_s: float
    transition: str = "start"  # how the shot begins: 'start', 'cut' or 'dissolve'


def detector_name(conf: ShotsConf) -> str:
    if conf.detector != "auto":
        return conf.detector
    from adlake.config import resolve_device

    return "transnetv2" if resolve_device("auto") == "cuda" else "adaptive"


def small_frames(conf: ShotsConf) -> Small:
    """The frames the configured detector reads from the decode."""
    if detector_name(conf) == "transnetv2":
        from adlake.clips.transnet import INPUT_HEIGHT, INPUT_WIDTH

        return Small("rgb24", INPUT_WIDTH, INPUT_HEIGHT)
    return Small("bgr24", downscale=conf.downscale)


def _transition(scores: np.ndarray, frame: int, window: int = 10) -> str:
    """A hard cut changes one frame; a dissolve spreads its change over several. Counts the frames
    around the boundary whose content change is at least a quarter of the largest one."""
    values = scores[max(0, frame - window):frame + window + 1]
    peak = float(values.max(initial=0.0))
    return "dissolve" if peak > 0 and int((values > 0.25 * peak).sum()) >= 2 else "cut"


def content_scores(small: np.ndarray, chunk: int = 256) -> np.ndarray:
    """PySceneDetect's content score of every frame at once: the mean absolute change of hue, saturation
    and value from the frame before (0 for the first), its default weights, edges left out as they are."""
    import cv2

    n, h, w, _ = small.shape
    out = np.zeros(n)
    for lo in range(0, n - 1, chunk):
        part = np.ascontiguousarray(small[lo:lo + chunk + 1])
        hsv = cv2.cvtColor(part.reshape(-1, w, 3), cv2.COLOR_BGR2HSV).reshape(len(part), h * w, 3)
        change = cv2.absdiff(hsv[1:], hsv[:-1]).reshape(len(part) - 1, h, w, 3)
        sums = np.array([cv2.sumElems(frame)[:3] for frame in change])  # hue, saturation, value per frame
        dist = sums / float(h * w)
        out[lo + 1:lo + len(part)] = (dist[:, 0] + dist[:, 1] + dist[:, 2]) / 3.0
    return out


def blends(small: np.ndarray, half: int, min_change: float, max_residual: float, chunk: int = 256) -> list[int]:
    """Middle frames of cross-dissolves (and fades). Inside a dissolve every frame is a weighted mean of the
    two shots, so at its middle the frame is the average of the frames ``half`` before and after it: the
    residual |F(i) - (F(i-h) + F(i+h)) / 2| against their difference |F(i-h) - F(i+h)| falls to ~0, where a
    hard cut in the window leaves 0.5 and motion a ghost image. And the change is the transition's alone:
    over the ``half`` frames before F(i-h) and after F(i+h) the picture changes less than half as much
    (a slow zoom or a colour drift changes as much there too). One frame per run: the smallest residual."""
    import cv2

    n = len(small)
    if n <= 2 * half:
        return []
    # every other pixel both ways: the same verdicts (measured) at a quarter of the work; copied once into rows,
    # so that the five gathers below are row copies (gathering from the strided view cost more than the maths)
    grid = np.ascontiguousarray(small[:, ::2, ::2]).reshape(n, -1)
    ratio = np.full(n, np.inf)
    for lo in range(half, n - half, chunk):
        hi = min(lo + chunk, n - half)
        idx = np.arange(lo, hi)
        before, after, middle, earlier, later = (
            grid[i] for i in (idx - half, idx + half, idx, np.maximum(idx - 2 * half, 0),
                              np.minimum(idx + 2 * half, n - 1)))
        change = cv2.absdiff(before, after).mean(axis=1)
        residual = cv2.absdiff(middle, cv2.addWeighted(before, 0.5, after, 0.5, 0)).mean(axis=1)
        outside = np.maximum(cv2.absdiff(earlier, before).mean(axis=1), cv2.absdiff(after, later).mean(axis=1))
        ok = (change > min_change) & (outside < 0.5 * change)
        ratio[lo:hi] = np.where(ok, residual / np.maximum(change, 1e-6), np.inf)
    found: list[int] = []
    for a, b in runs(ratio < max_residual):
        found.append(a + int(np.argmin(ratio[a:b + 1])))
    return found


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive (first, last) index of every run of True."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _with_blends(cuts: list[tuple[int, str]], found: list[int], near: int) -> list[tuple[int, str]]:
    """Dissolves the blend check found, merged into the detector's cuts: a cut within ``near`` frames of
    one is that dissolve (moved to its middle, where the detector tends to fire at the fade's start)."""
    out = dict(cuts)
    for d in found:
        close = [c for c in out if abs(c - d) <= near]
        for c in close:
            del out[c]
        out[d] = "dissolve"
    return sorted(out.items())


def _scenedetect(conf: ShotsConf, decoded: Decoded) -> list[tuple[int, str]]:
    """PySceneDetect's detector over the decode's small frames: (cut frame, transition) pairs. Its scores
    are computed for all frames at once (``content_scores``); its own logic (adaptive ratio, flash filter,
    minimum scene length) then decides, frame by frame, exactly as it does on its own decode."""
    from scenedetect import AdaptiveDetector, ContentDetector, FrameTimecode

    scores = content_scores(decoded.small)
    base = ContentDetector if detector_name(conf) == "content" else AdaptiveDetector

    class Scored(base):  # type: ignore[misc, valid-type]
        def _calculate_frame_score(self, timecode, frame_img) -> float:
            return float(scores[timecode.frame_num])

    if base is ContentDetector:
        detector = Scored(threshold=conf.threshold, min_scene_len=conf.min_scene_len_frames)
    else:  # each frame's change against its neighbourhood's: hard cuts plus some dissolves
        detector = Scored(adaptive_threshold=conf.adaptive_threshold, min_scene_len=conf.min_scene_len_frames)
    cuts: list = []
    timecode = FrameTimecode(0, decoded.fps)
    for i in range(decoded.frames):
        timecode = FrameTimecode(i, decoded.fps)
        cuts += detector.process_frame(timecode, None)
    cuts += detector.post_process(timecode)
    frames = sorted({c.frame_num for c in cuts if 0 < c.frame_num < decoded.frames})
    found = [(f, _transition(scores, f)) for f in frames]
    if not conf.blend_check:
        return found
    half = max(2, round(conf.blend_half_window_s * decoded.fps))
    return _with_blends(found, blends(decoded.small, half, conf.blend_min_change, conf.blend_max_residual),
                        conf.min_scene_len_frames)


def detect_shots(decoded: Decoded, conf: ShotsConf) -> list[Shot]:
    """The shots of one decoded video, covering it from start to end."""
    if detector_name(conf) == "transnetv2":
        from adlake.clips.transnet import transitions

        cuts = transitions(decoded.small, conf.transnet_threshold)
    else:
        cuts = _scenedetect(conf, decoded)
    edges = [0, *(f for f, _ in cuts), decoded.frames]
    kinds = ["start", *(k for _, k in cuts)]
    return [Shot(i, round(edges[i] / decoded.fps, 3), round(edges[i + 1] / decoded.fps, 3), kinds[i])
            for i in range(len(kinds))]


def shots_of_file(path: Path | str, conf: ShotsConf) -> list[Shot]:
    """Shots alone (no 1 fps frames): what the evaluation and the benchmark's baselines need."""
    return detect_shots(decode_once(path, small_frames(conf), samples=False), conf)


def boundaries(shots: list[Shot]) -> list[float]:
    return [s.start_s for s in shots[1:]]
