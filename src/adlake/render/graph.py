"""The output timeline of a resolved plan, and the one ffmpeg filter graph that renders it (pure functions).

Each clip is its own input, seeked to half a frame before its first frame (ffmpeg's accurate seek decodes
from the key frame before and drops what precedes) and trimmed to its frame count, so cuts are exact to the
frame without decoding a source twice over. The clips are scaled into the output frame, joined by hard cuts
(concat) or cross-dissolves (each clip fading in over the one before, overlaid at its start), converted to the output rate once, and the subtitles burned in by
libass. Narrations are delayed to their places and mixed; the music is looped or trimmed to the ad's length,
ducked under the narration by a sidechain compressor, and the mix loudness-normalised (EBU R128).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from adlake.config import RenderConf
from adlake.render.resolve import Span
from adlake.render.subtitles import Cue
from schemas.edit_plan import Output, has_cjk


@dataclass
class Placed:
    span: Span
    source_path: str
    start_s: float  # on the output timeline
    frames: int  # source frames used (fewer than the span's when the target duration cuts it)
    narration_path: str | None = None
    narration_s: float = 0.0

    @property
    def duration_s(self) -> float:
        return self.frames / self.span.source.fps

    @property
    def narration_start_s(self) -> float:
        return self.start_s + self.span.narration_offset_s


@dataclass
class Music:
    path: str
    start_s: float
    length_s: float
    gain_db: float


@dataclass
class Timeline:
    placed: list[Placed]
    duration_s: float
    output: Output
    dissolve_s: float | None  # None: hard cuts
    cues: list[Cue]
    music: Music | None


def lay_out(spans: list[tuple[Span, str]], dissolve_s: float | None, target_s: float | None, fps: float
            ) -> tuple[list[Placed], float]:
    """Where each clip starts on the output timeline and how many of its frames play; clips past the
    target duration are left out and the last one is cut to it. With dissolves, each clip starts on a frame
    of the output (the overlap is a whole number of output frames), so that frame n of the output shows a
    known frame of each clip."""
    placed: list[Placed] = []
    overlap = round(dissolve_s * fps) / fps if dissolve_s else 0.0
    t = 0.0
    for span, path in spans:
        start = t - overlap if placed else 0.0
        if overlap:
            start = round(start * fps) / fps
        if target_s is not None and start >= target_s - 1e-9:
            break
        frames = span.frames
        if target_s is not None and start + span.duration_s > target_s:
            frames = max(1, round((target_s - start) * span.source.fps))
        placed.append(Placed(span, path, start, frames))
        t = start + frames / span.source.fps
    return placed, t


def _esc(path: str) -> str:
    """A path as a filter option value inside single quotes."""
    return path.replace("\\", "\\\\").replace("'", r"'\''").replace(":", r"\:")


def fit_filter(out: Output) -> str:
    """The filters that put a source frame into the output frame (what the checks apply to source frames too)."""
    w, h = out.width, out.height
    if out.fit == "crop":
        return f"scale={w}:{h}:force_original_aspect_ratio=increase,crop={w}:{h}"
    return (f"scale={w}:{h}:force_original_aspect_ratio=decrease:force_divisible_by=2,"
            f"pad={w}:{h}:(ow-iw)/2:(oh-ih)/2:color=black")


def ffmpeg_inputs(tl: Timeline) -> list[str]:
    args: list[str] = []
    for p in tl.placed:
        fps = p.span.source.fps
        seek = max(0.0, (p.span.first_frame - 0.5) / fps)
        args += ["-ss", f"{seek:.6f}", "-i", p.source_path]
    for p in tl.placed:
        if p.narration_path:
            args += ["-i", p.narration_path]
    if tl.music:
        args += ["-ss", f"{tl.music.start_s:.3f}", "-t", f"{tl.music.length_s:.3f}", "-i", tl.music.path]
    return args


def filter_graph(tl: Timeline, conf: RenderConf, subtitles_file: Path | None) -> str:
    out, n = tl.output, len(tl.placed)
    lines = []
    for i, p in enumerate(tl.placed):
        lines.append(f"[{i}:v:0]trim=end_frame={p.frames},setpts=PTS-STARTPTS,{fit_filter(out)},setsar=1,"
                     f"format=yuv420p,settb=AVTB[c{i}]")
    if n == 1:
        joined = "c0"
    elif tl.dissolve_s is None:
        lines.append("".join(f"[c{i}]" for i in range(n)) + f"concat=n={n}:v=1:a=0[joined]")
        joined = "joined"
    else:  # each clip fades in over the one before, placed at its start on a black canvas of the ad's length
        lines.append(f"color=c=black:s={out.width}x{out.height}:r={out.fps:g}:d={tl.duration_s + 1 / out.fps:.6f},"
                     f"format=yuva420p,settb=AVTB[x0]")
        for i, p in enumerate(tl.placed):
            d = round(tl.dissolve_s * out.fps) / out.fps
            fade = f"format=yuva420p,fade=t=in:st=0:d={d:.6f}:alpha=1," if i else "format=yuva420p,"
            lines.append(f"[c{i}]{fade}setpts=PTS+{p.start_s:.6f}/TB[f{i}]")
            lines.append(f"[x{i}][f{i}]overlay=eof_action=pass:repeatlast=0[x{i + 1}]")
        joined = f"x{n}"
    video = f"[{joined}]fps={out.fps:g},trim=duration={tl.duration_s:.6f}"
    if subtitles_file is not None and tl.cues:
        font = conf.cjk_font if any(has_cjk(c.text) for c in tl.cues) else conf.font
        video += (f",subtitles=filename='{_esc(str(subtitles_file))}':charenc=UTF-8:"
                  f"force_style='FontName={font},FontSize={conf.font_size},Outline=2,Shadow=0,MarginV=24'")
    lines.append(video + ",format=yuv420p[vout]")
    lines.extend(_audio(tl, conf))
    return ";\n".join(lines)


def _audio(tl: Timeline, conf: RenderConf) -> list[str]:
    rate, d = conf.audio_rate, tl.duration_s
    fmt = f"aresample={rate},aformat=sample_fmts=fltp:channel_layouts=stereo"
    lines = []
    voices = []
    k = len(tl.placed)
    for p in tl.placed:
        if p.narration_path:
            ms = round(p.narration_start_s * 1000)
            lines.append(f"[{k}:a:0]{fmt},adelay=delays={ms}:all=1[n{len(voices)}]")
            voices.append(f"n{len(voices)}")
            k += 1
    if voices:
        mixed = "".join(f"[{v}]" for v in voices)
        lines.append(f"{mixed}amix=inputs={len(voices)}:normalize=0:duration=longest,apad,"
                     f"atrim=duration={d:.6f}[voice]")
    if tl.music:
        loop = round(tl.music.length_s * rate)
        lines.append(f"[{k}:a:0]{fmt},asetpts=PTS-STARTPTS,aloop=loop=-1:size={loop},atrim=duration={d:.6f},"
                     f"volume={tl.music.gain_db:g}dB[music]")
    if voices and tl.music:
        lines.append("[voice]asplit=2[voice_key][voice_mix]")
        lines.append(f"[music][voice_key]sidechaincompress=threshold={conf.duck_threshold:g}:ratio={conf.duck_ratio:g}:"
                     f"attack=20:release={conf.duck_release_ms:g}[ducked]")
        lines.append("[ducked][voice_mix]amix=inputs=2:normalize=0:duration=first[mix]")
    elif voices:
        lines.append("[voice]anull[mix]")
    elif tl.music:
        lines.append("[music]anull[mix]")
    else:
        lines.append(f"anullsrc=r={rate}:cl=stereo,atrim=duration={d:.6f}[mix]")
    lines.append(f"[mix]loudnorm=I={conf.loudness_lufs:g}:TP={conf.true_peak_db:g}:LRA=11,{fmt},apad,"
                 f"atrim=duration={d:.6f}[aout]")
    return lines
