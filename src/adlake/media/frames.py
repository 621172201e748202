"""1 fps frames taken from the decode PySceneDetect already does, and the views VC-LLM feeds a model.

:class:`FrameTap` is PySceneDetect's OpenCV video stream with one addition: each frame it hands to the
scene detector is also looked at by the tap, which keeps the frame nearest the middle of every second
(t = 0.5, 1.5, …) as JPEGs at the two sizes the views need. So a video is decoded once for shots and
frames. OpenCV applies the container's rotation, so frames keep the orientation a viewer sees.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scenedetect.backends.opencv import VideoStreamCv2

SPATIAL_LONG_SIDE = 996  # VC-LLM's high-resolution middle frame (996×560 landscape)
TEMPORAL_LONG_SIDE = 560  # its low-resolution motion frames (560×315 landscape)
MAX_TEMPORAL = 5


@dataclass
class Jpeg:
    data: bytes
    width: int
    height: int


@dataclass
class Sample:
    t_s: float
    views: dict[int, Jpeg] = field(default_factory=dict)  # long side → JPEG


def fit_long_side(width: int, height: int, long_side: int) -> tuple[int, int]:
    """The size with the given long side and the same aspect ratio (and orientation)."""
    if width >= height:
        return long_side, max(1, round(height * long_side / width))
    return max(1, round(width * long_side / height)), long_side


def encode(frame: np.ndarray, long_side: int, quality: int) -> Jpeg:
    import cv2

    h, w = frame.shape[:2]
    tw, th = fit_long_side(w, h, long_side)
    interp = cv2.INTER_AREA if tw < w else cv2.INTER_CUBIC
    resized = cv2.resize(frame, (tw, th), interpolation=interp) if (tw, th) != (w, h) else frame
    ok, buf = cv2.imencode(".jpg", resized, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return Jpeg(buf.tobytes(), tw, th)


class FrameTap(VideoStreamCv2):
    """A PySceneDetect video stream that keeps the frame nearest each second's middle."""

    def __init__(self, path: str, long_sides: tuple[int, ...] = (SPATIAL_LONG_SIDE, TEMPORAL_LONG_SIDE),
                 quality: int = 90):
        super().__init__(path)
        self.long_sides, self.quality = long_sides, quality
        self.samples: list[Sample] = []
        self.frames_read = 0
        fps = float(self.frame_rate) or 25.0
        self._half_frame = 0.5 / fps
        self._next = 0.5  # the next grid time

    def read(self, decode: bool = True):
        frame = super().read(decode)
        if isinstance(frame, np.ndarray):
            self.frames_read += 1
            t = float(self.position.seconds)
            if t + self._half_frame >= self._next:
                self.samples.append(Sample(round(t, 3), {s: encode(frame, s, self.quality) for s in self.long_sides}))
                self._next = math.floor(t + self._half_frame - 0.5) + 1.5
        return frame


# -- views of a clip --------------------------------------------------------------------------------------
def clip_samples(samples: list[Sample], start_s: float, end_s: float, last: bool) -> list[Sample]:
    """The 1 fps samples inside a clip; the video's last clip keeps its end."""
    return [s for s in samples if start_s <= s.t_s < end_s or (last and s.t_s == end_s)]


def spatial_view(samples: list[Sample], start_s: float, end_s: float) -> Sample | None:
    """The sample nearest the clip's middle."""
    if not samples:
        return None
    mid = (start_s + end_s) / 2
    return min(samples, key=lambda s: (abs(s.t_s - mid), s.t_s))


def temporal_views(samples: list[Sample], k: int = MAX_TEMPORAL) -> list[Sample]:
    """Up to ``k`` samples spread uniformly over the clip (all of them when there are fewer)."""
    if len(samples) <= k:
        return list(samples)
    picks = sorted({round(i * (len(samples) - 1) / (k - 1)) for i in range(k)})
    return [samples[i] for i in picks]
