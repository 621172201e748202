"""One decode of a video: small frames for the shot detector, 1 fps frames for the views VC-LLM feeds a model.

:func:`decode_once` reads the video with PyAV (FFmpeg's decoders, threaded) and, for every frame, lets
swscale shrink it in C to the size the shot detector works at; only the frame nearest the middle of every
second (t = 0.5, 1.5, …) is converted in full, JPEG-encoded at the temporal size and kept for the spatial
view, which is encoded only for the samples a clip takes as its middle. So the detector never sees a
full-size frame in Python, and nothing is decoded twice. Frames are turned as the container's display
matrix says (what OpenCV and FFmpeg's players do), so views keep the orientation a viewer sees.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from adlake.errors import AdlakeError

SPATIAL_LONG_SIDE = 996  # VC-LLM's high-resolution middle frame (996×560 landscape)
TEMPORAL_LONG_SIDE = 560  # its low-resolution motion frames (560×315 landscape)
MAX_TEMPORAL = 5
MAX_BAD_PACKETS = 50  # a video with more undecodable packets than this is not a video


class DecodeError(AdlakeError):
    """The file cannot be decoded as a video (the caller classifies it)."""


@dataclass
class Jpeg:
    data: bytes
    width: int
    height: int


@dataclass
class Sample:
    """One 1 fps frame: its JPEG views by long side, encoded on first use from the kept frame."""
    t_s: float
    views: dict[int, Jpeg] = field(default_factory=dict)  # long side → JPEG
    frame: np.ndarray | None = field(default=None, repr=False)  # BGR, display orientation
    quality: int = 90

    def view(self, long_side: int) -> Jpeg:
        if long_side not in self.views:
            if self.frame is None:
                raise ValueError(f"no frame kept for a {long_side} view at {self.t_s} s")
            self.views[long_side] = encode(self.frame, long_side, self.quality)
        return self.views[long_side]


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


@dataclass(frozen=True)
class Small:
    """What the shot detector asks of the decode: every frame at ``size(width, height)`` (display
    orientation) in ``pix_fmt`` (``bgr24`` for PySceneDetect, ``rgb24`` for TransNetV2)."""
    pix_fmt: str
    width: int | None = None  # None: the source's width // downscale (and height likewise)
    height: int | None = None
    downscale: int = 1

    def size(self, width: int, height: int) -> tuple[int, int]:
        if self.width and self.height:
            return self.width, self.height
        return max(1, width // self.downscale), max(1, height // self.downscale)


@dataclass
class Decoded:
    fps: float
    small: np.ndarray  # (frames, h, w, 3) uint8, the detector's input
    samples: list[Sample]

    @property
    def frames(self) -> int:
        return len(self.small)


def _turns(frame) -> int:
    """Quarter turns (counter-clockwise, as ``np.rot90``) that put a frame the way a viewer sees it."""
    return round((getattr(frame, "rotation", 0) or 0) / 90) % 4


def decode_once(path: Path | str, small: Small, samples: bool = True, quality: int = 90,
                keep_long_side: int = SPATIAL_LONG_SIDE, max_seconds: float | None = None) -> Decoded:
    """Every frame of the first video stream at the detector's size, and (``samples``) the 1 fps frames:
    the temporal JPEG at once, the frame itself (at most ``keep_long_side``) for views encoded later.
    Frame times are frame number / frame rate, as PySceneDetect counts them. ``DecodeError``: unreadable,
    or running past ``max_seconds`` (what is held grows with the video: a bound, not a crash)."""
    import av
    from av.video.reformatter import VideoReformatter

    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as e:
        raise DecodeError(f"cannot open the video: {e}") from e
    with container:
        if not container.streams.video:
            raise DecodeError("the file has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        fps = float(stream.average_rate or stream.guessed_rate or 25.0)
        shrink, full = VideoReformatter(), VideoReformatter()
        half_frame, next_t = 0.5 / fps, 0.5
        out: list[np.ndarray] = []
        kept: list[Sample] = []
        bad = 0

        def frames():
            nonlocal bad
            packets = container.demux(stream)
            while True:
                try:
                    packet = next(packets)
                except StopIteration:
                    return
                except av.FFmpegError:  # the container breaks off (a truncated file): what came before stands
                    bad += 1
                    return
                try:
                    yield from packet.decode()
                except av.FFmpegError:  # a corrupt packet: skipped, as players do
                    bad += 1
                    if bad > MAX_BAD_PACKETS:
                        raise DecodeError(f"more than {MAX_BAD_PACKETS} packets cannot be decoded") from None

        for frame in frames():
            turns = _turns(frame)
            w, h = (frame.height, frame.width) if turns % 2 else (frame.width, frame.height)
            sw, sh = small.size(w, h)
            if turns % 2:
                sw, sh = sh, sw
            img = shrink.reformat(frame, sw, sh, small.pix_fmt, interpolation="AREA").to_ndarray()
            out.append(np.rot90(img, turns) if turns else img)
            t = (len(out) - 1) / fps
            if max_seconds is not None and t > max_seconds:
                raise DecodeError(f"the video runs past {max_seconds:.0f} s, longer than it was probed to be")
            if samples and t + half_frame >= next_t:
                kw, kh = fit_long_side(frame.width, frame.height, keep_long_side)
                if kw >= frame.width:  # never scaled up here: the view's encoder does that
                    kw, kh = frame.width, frame.height
                bgr = full.reformat(frame, kw, kh, "bgr24", interpolation="AREA").to_ndarray()
                bgr = np.ascontiguousarray(np.rot90(bgr, turns)) if turns else bgr
                sample = Sample(round(t, 3), frame=bgr, quality=quality)
                sample.view(TEMPORAL_LONG_SIDE)
                kept.append(sample)
                next_t = math.floor(t + half_frame - 0.5) + 1.5
    if not out:
        raise DecodeError("no frame could be decoded")
    return Decoded(fps, np.stack(out), kept)


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
