"""``adlake render PLAN``: a plan → an H.264/AAC MP4 (faststart) with SRT and WebVTT sidecars.

Renders are content-addressed: the key hashes the plan, the resolved sources (blob, first frame, frame
count), the music, the narration inputs and the render settings. A plan that was rendered before is not
rendered again, and a render that fails leaves nothing behind (files are committed to the media store
only when whole, the MP4 last).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adlake.lake import Lake
from adlake.media.store import MediaStore
from adlake.render import subtitles as subs
from adlake.render.errors import PlanError, RenderFailed
from adlake.render.graph import Music, Placed, Timeline, ffmpeg_inputs, filter_graph, lay_out
from adlake.render.resolve import Resolved, resolve, segmented
from adlake.render.ssmp import place_narrations, text_similarity
from adlake.render.tts import narrate, speak
from schemas.edit_plan import EditPlan, has_cjk

RENDERER = "adlake-render/4"


@dataclass
class Rendered:
    digest: str
    mp4_uri: str
    srt_uri: str
    vtt_uri: str
    cached: bool
    duration_s: float
    clips: list[dict[str, Any]] = field(default_factory=list)  # clip_id, start_s, duration_s, narration_start_s
    cues: list[dict[str, Any]] = field(default_factory=list)
    versions: dict[str, int | None] = field(default_factory=dict)
    out: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def _file_sha(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def render_key(resolved: Resolved, conf: dict[str, Any]) -> str:
    plan = resolved.plan
    identity = {
        "renderer": RENDERER,
        "plan": json.loads(plan.canonical_json()),
        "spans": [(s.source.media_key, s.first_frame, s.frames, s.source.fps) for s in resolved.spans],
        "narration_files": [_file_sha(s.narration_file) if s.narration_file else None for s in resolved.spans],
        "music": None if resolved.music is None else (
            resolved.music.media_key or _file_sha(resolved.music.file), resolved.music.start_s,
            resolved.music.length_s),
        "settings": conf,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()


def _probe_duration(path: str) -> float:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", path],
                         capture_output=True, text=True, timeout=60)
    try:
        return float(out.stdout.strip())
    except ValueError:
        raise PlanError("bad_audio", path, f"not an audio file ffprobe can read: {out.stderr.strip()[-200:]}") from None


class _Job:
    """One render in a temporary folder."""

    def __init__(self, lake: Lake, resolved: Resolved, tmp: Path):
        self.lake, self.resolved, self.tmp = lake, resolved, tmp
        self.conf = lake.settings.render
        self.store = MediaStore(lake.settings)
        self.copies: list[Path] = []

    def local(self, key: str) -> str:
        path, temporary = self.store.local_copy(key)
        if temporary:
            self.copies.append(path)
        return str(path)

    def timeline(self) -> Timeline:
        plan, spans = self.resolved.plan, self.resolved.spans
        dissolve = plan.dissolve_s if plan.transition == "dissolve" else None
        if dissolve is not None:
            for s in spans:
                if s.duration_s <= 2 * dissolve:
                    raise PlanError("clip_too_short", f"clips[{s.position}]", f"{s.duration_s:.2f} s is too short "
                                    f"for {dissolve:.2f} s dissolves on both sides")
        sources = {s.source.media_key: None for s in spans}
        paths = {k: self.local(k) for k in sources}
        placed, duration = lay_out([(s, paths[s.source.media_key]) for s in spans], dissolve, plan.target_duration_s,
                                   plan.output.fps)
        self._narrate(placed)
        cues = []
        for p in placed:
            end = p.start_s + p.duration_s
            a, b = ((p.narration_start_s, p.narration_start_s + p.narration_s) if p.narration_path
                    else (p.start_s, end))
            cues += subs.place(p.span.subtitles, a, b, p.start_s, end)
        music = None
        if self.resolved.music is not None:
            m = self.resolved.music
            path = self.local(m.media_key) if m.media_key else m.file
            length = m.length_s if m.length_s is not None else _probe_duration(path)
            music = Music(path, m.start_s, length, m.gain_db)
        return Timeline(placed, duration, plan.output, dissolve, cues, music)

    def _narrate(self, placed: list[Placed]) -> None:
        c, plan = self.conf, self.resolved.plan
        if plan.narrations is not None:
            self._ssmp(placed, plan.narrations)
            return
        for p in placed:
            room = p.duration_s - p.span.narration_offset_s - 0.05
            where = f"clips[{p.span.position}]"
            if p.span.narration_file:
                p.narration_path, p.narration_s = p.span.narration_file, _probe_duration(p.span.narration_file)
                if p.narration_s > room:
                    raise PlanError("narration_too_long", where, f"narration {p.narration_s:.2f} s; the clip leaves "
                                    f"{room:.2f} s")
            elif p.span.script and p.span.script.strip():
                wav = self.tmp / f"narration-{p.span.position}.wav"
                p.narration_s = narrate(p.span.script, wav, room, c.tts_voice, c.tts_wpm, c.tts_max_wpm, where)
                p.narration_path = str(wav)

    def _ssmp(self, placed: list[Placed], narrations: list[str]) -> None:
        c = self.conf
        wavs, lengths = [], []
        for i, text in enumerate(narrations):
            wav = self.tmp / f"ssmp-{i}.wav"
            lengths.append(speak(text, wav, c.tts_voice, c.tts_wpm))
            wavs.append(str(wav))
        rooms = [p.duration_s - p.span.narration_offset_s - 0.05 for p in placed]
        sim = text_similarity(narrations, [p.span.library_script for p in placed])
        try:
            where = place_narrations(sim, lengths, rooms)
        except ValueError as e:
            raise PlanError("narrations_do_not_fit", "narrations", str(e)) from None
        for i, j in enumerate(where):
            placed[j].narration_path, placed[j].narration_s = wavs[i], lengths[i]
            placed[j].span.subtitles = placed[j].span.subtitles or segmented(narrations[i])

    def check_fonts(self, tl: Timeline) -> None:
        """libass draws boxes for glyphs its font lacks: Han or kana subtitles need the CJK font installed."""
        if any(has_cjk(c.text) for c in tl.cues):
            found = subprocess.run(["fc-list", f":family={self.conf.cjk_font}", "file"], capture_output=True,
                                   text=True, timeout=30).stdout.strip()
            if not found:
                raise RenderFailed(f"subtitles in Chinese or Japanese need the font {self.conf.cjk_font!r} "
                                   "(render.cjk_font; apt fonts-wqy-microhei), which is not installed", "font_missing")

    def run(self, out_mp4: Path, tl: Timeline, srt_path: Path, progress: Callable[[float], None] | None) -> None:
        self.check_fonts(tl)
        script = self.tmp / "graph.txt"
        script.write_text(filter_graph(tl, self.conf, srt_path if tl.cues else None))
        fps = tl.output.fps
        cmd = ["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-y", *ffmpeg_inputs(tl),
               "-filter_complex_script", str(script), "-map", "[vout]", "-map", "[aout]",
               "-c:v", "libx264", "-preset", self.conf.preset, "-crf", str(self.conf.crf), "-pix_fmt", "yuv420p",
               "-r", f"{fps:g}", "-c:a", "aac", "-b:a", "160k", "-ar", str(self.conf.audio_rate),
               "-movflags", "+faststart", "-progress", "pipe:1", "-nostats", str(out_mp4)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for line in proc.stdout:
            if line.startswith("out_time_us=") and progress and line.strip()[12:].isdigit():
                progress(min(1.0, int(line.strip()[12:]) / 1e6 / max(tl.duration_s, 1e-6)))
        err = proc.stderr.read()
        if proc.wait() != 0:
            raise RenderFailed(f"ffmpeg exited {proc.returncode}: {err.strip()[-800:]}")


def render_plan(lake: Lake, plan: EditPlan, out: Path | None = None,
                progress: Callable[[float], None] | None = None) -> Rendered:
    resolved = resolve(lake, plan)
    store = MediaStore(lake.settings)
    digest = render_key(resolved, lake.settings.render.model_dump())
    keys = {ext: store.blob_key(f"{digest}.{ext}", "renders") for ext in ("mp4", "srt", "vtt", "json")}
    cached = store.exists(keys["mp4"])
    if cached:
        meta = json.loads(store.read_bytes(keys["json"]))
    else:
        with tempfile.TemporaryDirectory(prefix="adlake-render-") as d:
            tmp = Path(d)
            job = _Job(lake, resolved, tmp)
            try:
                tl = job.timeline()
                srt_path = tmp / "subtitles.srt"
                srt_path.write_text(subs.srt(tl.cues), encoding="utf-8")
                mp4 = tmp / "render.mp4"
                job.run(mp4, tl, srt_path, progress)
            finally:
                for c in job.copies:
                    c.unlink(missing_ok=True)
            meta = {"duration_s": round(tl.duration_s, 6),
                    "clips": [{"clip_id": p.span.clip_id, "start_s": round(p.start_s, 6),
                               "duration_s": round(p.duration_s, 6), "source_first_frame": p.span.first_frame,
                               "frames": p.frames, "fps": p.span.source.fps,
                               "narration_start_s": round(p.narration_start_s, 6) if p.narration_path else None,
                               "narration_s": round(p.narration_s, 3) if p.narration_path else None}
                              for p in tl.placed],
                    "cues": [c.__dict__ for c in tl.cues], "versions": resolved.versions, "renderer": RENDERER}
            store.commit(srt_path, f"{digest}.srt", "renders")  # the file ffmpeg burned in
            for ext, text in (("vtt", subs.vtt(tl.cues)), ("json", json.dumps(meta))):
                path = tmp / f"sidecar.{ext}"
                path.write_text(text, encoding="utf-8")
                store.commit(path, f"{digest}.{ext}", "renders")
            store.commit(mp4, f"{digest}.mp4", "renders")  # last: its presence means the render is whole
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        for ext in ("mp4", "srt", "vtt"):
            target = out if ext == "mp4" else out.with_suffix(f".{ext}")
            part = target.with_name(target.name + ".part")
            part.write_bytes(store.read_bytes(keys[ext]))
            part.replace(target)
    return Rendered(digest, store.uri(keys["mp4"]), store.uri(keys["srt"]), store.uri(keys["vtt"]), cached,
                    meta["duration_s"], meta["clips"], meta["cues"], meta["versions"],
                    str(out) if out is not None else None)
