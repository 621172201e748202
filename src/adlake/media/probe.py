"""Probing untrusted files safely with ffprobe.

Before ffprobe sees a file its first bytes are checked for playlists (HLS, DASH, ffconcat, PLS); ffprobe
and ffmpeg then run with ``-protocol_whitelist file`` and a container allow-list, under a timeout, so a
playlist disguised as a video can neither read other local files nor reach the network.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adlake.errors import ClassifiedError

PLAYLIST_MARKERS = (b"#EXTM3U", b"#EXT-X-", b"#EXTINF", b"ffconcat version", b"<MPD", b"[playlist]")
PLAYLIST_FORMATS = ("hls", "concat", "dash", "webm_dash_manifest", "applehttp")


class ProbeError(ClassifiedError):
    pass


@dataclass
class ProbeResult:
    duration_s: float
    width: int
    height: int
    fps: float | None
    vcodec: str
    acodec: str | None
    has_audio: bool
    format_name: str
    bytes: int

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def sniff_playlist(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(4096)
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    return any(stripped.startswith(m) for m in PLAYLIST_MARKERS) or b"#EXT-X-" in head or b"#EXTINF:" in head


def _ratio(value: str | None) -> float | None:
    if not value or value in ("0/0", "N/A"):
        return None
    num, _, den = value.partition("/")
    try:
        return float(num) / float(den or 1)
    except (ValueError, ZeroDivisionError):
        return None


def _rotation(stream: dict) -> int:
    for side in stream.get("side_data_list", []) or []:
        if "rotation" in side:
            return int(float(side["rotation"]))
    tag = (stream.get("tags") or {}).get("rotate")
    return int(float(tag)) if tag else 0


def _run(cmd: list[str], timeout_s: float) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise ProbeError("probe_timeout", f"{cmd[0]} did not finish within {timeout_s:.0f} s") from e


def _classify_failure(stderr: str) -> ProbeError:
    text = stderr.strip()
    low = text.lower()
    if "not on whitelist" in low or "not on the whitelist" in low:
        if any(f"[{fmt} @" in low for fmt in PLAYLIST_FORMATS):
            return ProbeError("unsafe_playlist", f"playlist container refused: {text[-300:]}")
        return ProbeError("not_a_video", f"container not allowed: {text[-300:]}")
    if "protocol" in low and "whitelist" in low:
        return ProbeError("unsafe_playlist", f"refers to other resources: {text[-300:]}")
    if "invalid data found" in low or "moov atom not found" in low or "could not find codec" in low:
        return ProbeError("not_a_video", f"not a video file: {text[-300:]}")
    return ProbeError("corrupt", f"ffprobe failed: {text[-300:]}")


def probe_video(path: Path, formats: list[str], timeout_s: float = 30.0, check_packets: bool = True) -> ProbeResult:
    """Probe one local file; raise :class:`ProbeError` with the error class when it is not a usable video."""
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise ProbeError("empty", "the file is empty")
    if sniff_playlist(path):
        raise ProbeError("unsafe_playlist", "the file is a playlist, not a video; it was not opened")
    guard = ["-protocol_whitelist", "file", "-format_whitelist", ",".join(formats)]
    res = _run(["ffprobe", "-v", "error", *guard, "-show_format", "-show_streams", "-of", "json", str(path)],
               timeout_s)
    if res.returncode:
        raise _classify_failure(res.stderr)
    info = json.loads(res.stdout or "{}")
    streams = info.get("streams", [])
    video = [s for s in streams if s.get("codec_type") == "video" and not (s.get("disposition") or {}).get("attached_pic")]
    audio = [s for s in streams if s.get("codec_type") == "audio"]
    fmt = info.get("format", {})
    if not video:
        raise ProbeError("no_video_stream", f"no video stream (streams: {[s.get('codec_type') for s in streams]})")
    v = video[0]
    duration = _ratio(fmt.get("duration")) or _ratio(v.get("duration"))
    if not duration or duration <= 0 or not v.get("width"):
        raise ProbeError("corrupt", "the video stream has no duration or size")
    if check_packets:
        res = _run(["ffmpeg", "-nostdin", "-v", "error", *guard, "-i", str(path), "-map", "0", "-c", "copy",
                    "-f", "null", "-"], max(timeout_s, duration))
        err = res.stderr.strip()
        if res.returncode or err:
            low = err.lower()
            truncated = any(s in low for s in ("partial file", "end of file", "truncat", "eof"))
            raise ProbeError("truncated" if truncated else "corrupt",
                             f"{'truncated' if truncated else 'corrupt'} media: {err[-300:]}")
    width, height = int(v["width"]), int(v["height"])
    if abs(_rotation(v)) % 180 == 90:
        width, height = height, width
    return ProbeResult(duration_s=round(duration, 3), width=width, height=height,
                       fps=_ratio(v.get("avg_frame_rate")) or _ratio(v.get("r_frame_rate")),
                       vcodec=v.get("codec_name", "unknown"), acodec=audio[0].get("codec_name") if audio else None,
                       has_audio=bool(audio), format_name=fmt.get("format_name", ""), bytes=size)
