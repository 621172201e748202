"""A synthetic ad corpus with real media and exact ground truth, deterministic per seed.

Each ad is 2–8 visually distinct scenes of 2–8 s (ffmpeg lavfi sources with product text overlays),
joined by hard cuts or dissolves, in portrait or landscape, with one espeak-ng voiceover sentence per
scene over a background track from a small library made with sox. A few ads carry music only or no
audio at all, and a handful of inputs are bad on purpose (truncated, empty, not a video, a playlist
disguised as a video, over-long, a byte-duplicate under another id, a missing URL, rows that break the
manifest contract, low engagement). ``ground_truth.json`` holds, per ad, what is in its media and where
the pipeline is expected to put it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
import shutil
import subprocess
import tempfile
import wave
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from adlake.synth.words import (
    ADJECTIVES,
    CALLS_TO_ACTION,
    INDUSTRIES,
    NOUNS,
    OPENERS,
    SELLING_POINTS,
    VOICES,
    WIDE_LANGUAGES,
    WIDE_VARIANTS,
)

FPS = 25
SAMPLE_RATE = 16_000
DISSOLVE_S = 0.6
MAX_AD_S = 120.0
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
LANDSCAPE, PORTRAIT = (640, 360), (360, 640)
# A fixed thread count and the bitexact flags keep ffmpeg's own output free of run-dependent headers, and sox
# runs with -R (its dither is random otherwise: the voiceover ads' audio differed between runs of one seed).
# The corpus is still not byte-identical across runs: measured, one music-only ad's video differed on a few
# frames by at most 3 pixel levels in a 30 x 16 patch (cause not found), so nothing may rely on the bytes.
ENCODE = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "26", "-pix_fmt", "yuv420p", "-r", str(FPS),
          "-g", str(2 * FPS), "-threads", "2", "-movflags", "+faststart", "-map_metadata", "-1",
          "-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact"]
AUDIO = ["-c:a", "aac", "-b:a", "96k", "-ar", "44100", "-ac", "2"]
LOOKS = ("gradients", "testsrc2", "color", "smptehdbars", "radial", "rgbtestsrc")
BGM_NOTES = (
    ("C4", "E4", "G4", "C5"), ("A3", "C4", "E4", "A4"), ("D4", "F#4", "A4", "D5"),
    ("G3", "B3", "D4", "G4"), ("E4", "G#4", "B4", "E5"), ("F3", "A3", "C4", "F4"),
)
BGM_STYLES = (("pluck", 0.25), ("sine", 0.4), ("triangle", 0.3), ("pluck", 0.18), ("square", 0.5), ("sine", 0.2))


class SynthError(RuntimeError):
    pass


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=300, **kw)
    except FileNotFoundError as e:
        raise SynthError(f"{cmd[0]} is not installed (make setup installs ffmpeg, espeak-ng and sox)") from e
    except subprocess.CalledProcessError as e:
        raise SynthError(f"{' '.join(cmd[:3])}… failed: {e.stderr.strip()[-800:]}") from e


@dataclass
class Scene:
    look: str
    hue: int
    duration_s: float = 0.0
    overlay: str = ""
    sentence: str | None = None
    voice: str | None = None
    speech_start_s: float | None = None  # in the ad's timeline
    speech_end_s: float | None = None
    footage: str | None = None  # a real recording (adlake.synth.real): this window of it, not a lavfi source
    footage_start_s: float = 0.0


@dataclass
class AdPlan:
    ad_id: str
    kind: str  # voiceover | music_only | silent
    size: tuple[int, int]
    product_id: str
    product_name: str
    selling_points: list[str]
    scenes: list[Scene] = field(default_factory=list)
    transitions: list[str] = field(default_factory=list)  # between scene i and i+1: 'cut' | 'dissolve'
    bgm_id: str | None = None
    file_name: str = ""
    real: bool = False  # cut from real recordings (adlake.synth.real)
    music_db_under_voice: float | None = None  # None: the music at a fixed level (the original corpus)


# -- audio helpers --------------------------------------------------------------------------------------
def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1 or w.getframerate() != SAMPLE_RATE:
            raise SynthError(f"{path}: expected 16-bit mono {SAMPLE_RATE} Hz")
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float32) / 32768.0


def write_wav(path: Path, samples: np.ndarray) -> None:
    pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).astype(np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(pcm.tobytes())


def trimmed_16k(raw: Path, out: Path) -> np.ndarray:
    """Speech resampled to 16 kHz mono and trimmed of leading and trailing silence."""
    _run(["sox", "-R", str(raw), "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", str(out),
          "silence", "1", "0.02", "0.5%", "reverse", "silence", "1", "0.02", "0.5%", "reverse"])
    return read_wav(out)


def speak(text: str, voice: str, out: Path, rate: int = 160) -> np.ndarray:
    """espeak-ng speech, resampled to 16 kHz and trimmed of leading and trailing silence."""
    raw = out.with_suffix(".raw.wav")
    _run(["espeak-ng", "-v", voice, "-s", str(rate), "-w", str(raw), text])
    audio = trimmed_16k(raw, out)
    raw.unlink()
    return audio


def make_bgm_library(out_dir: Path, count: int = len(BGM_NOTES)) -> dict[str, Path]:
    """Distinct background tracks (own key, timbre and tempo each), 16 s, looped under the ads."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tracks = {}
    for i in range(count):
        notes, (timbre, beat) = BGM_NOTES[i % len(BGM_NOTES)], BGM_STYLES[i % len(BGM_STYLES)]
        path = out_dir / f"bgm_{i:02d}.wav"
        if not path.exists():
            pattern = [notes[j % 4] for j in (0, 1, 2, 3, 2, 1)]
            repeats = max(1, int(16 / (beat * len(pattern))))
            cmd = ["sox", "-R", "-n", "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", str(path)]
            for note in pattern:
                cmd += ["synth", str(beat), timbre, note, ":"]
            cmd = cmd[:-1] + ["repeat", str(repeats - 1), "vol", "0.6", "fade", "0.05", "16", "0.5"]
            _run(cmd)
        tracks[f"bgm_{i:02d}"] = path
    return tracks


# -- planning -------------------------------------------------------------------------------------------
def _product(rng: random.Random, i: int) -> tuple[str, str, list[str], str]:
    name = f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)}"
    points = rng.sample(SELLING_POINTS, 3)
    return f"p{i:05d}", name, points, rng.choice(INDUSTRIES)


def _looks(rng: random.Random, n: int) -> list[tuple[str, int]]:
    """Adjacent scenes never share a look, and their hues sit far apart."""
    out: list[tuple[str, int]] = []
    base = rng.randrange(360)
    for i in range(n):
        look = rng.choice([lk for lk in LOOKS if not out or lk != out[-1][0]])
        out.append((look, (base + i * 137) % 360))
    return out


def _color(hue: int) -> str:
    import colorsys

    r, g, b = colorsys.hsv_to_rgb(hue / 360.0, 0.75, 0.85)
    return f"0x{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}"


def _source(scene: Scene, size: tuple[int, int], seed: int) -> str:
    w, h = size
    common = f"s={w}x{h}:r={FPS}:d={scene.duration_s:.3f}"
    return {
        "gradients": f"gradients={common}:seed={seed}:speed=0.015:c0={_color(scene.hue)}:c1={_color(scene.hue + 40)}",
        "radial": f"gradients={common}:seed={seed}:speed=0.01:type=radial:c0={_color(scene.hue)}:c1=0x101010",
        "testsrc2": f"testsrc2={common}",
        "color": f"color=c={_color(scene.hue)}:{common}",
        "smptehdbars": f"smptehdbars={common}",
        "rgbtestsrc": f"rgbtestsrc={common}",
    }[scene.look]


def plan_voiceover(plan: AdPlan, rng: random.Random, work: Path, voices: str = "narrow") -> list[np.ndarray]:
    """Speak one sentence per scene and size each scene around its speech. ``voices="wide"``: any English
    espeak-ng voice with any of its variants, 130–200 words a minute, the music 6–18 dB under the voice."""
    voice, rate = rng.choice(VOICES), 160
    if voices == "wide":
        voice, rate = f"{rng.choice(WIDE_LANGUAGES)}+{rng.choice(WIDE_VARIANTS)}", rng.randint(130, 200)
        plan.music_db_under_voice = round(rng.uniform(6.0, 18.0), 1)
    n = len(plan.scenes)
    extra = rng.sample([p for p in SELLING_POINTS if p not in plan.selling_points], max(0, n - 5))
    middle = [f"It {p}." for p in plan.selling_points] + [f"It also {p}." for p in extra]
    lines = [rng.choice(OPENERS).format(name=plan.product_name), *middle[: n - 2],
             rng.choice(CALLS_TO_ACTION).format(name=plan.product_name)]
    speech = []
    for i, line in enumerate(lines):
        audio = speak(line, voice, work / f"s{i}.wav", rate=rate)
        if len(audio) / SAMPLE_RATE > 6.4:  # keep every scene within 8 s
            audio = speak(line, voice, work / f"s{i}.wav", rate=max(rate, 200))
        fit_scene(plan, i, audio, line, voice, rng)
        speech.append(audio)
    return speech


def fit_scene(plan: AdPlan, i: int, audio: np.ndarray, line: str, voice: str, rng: random.Random,
              longest_s: float = 8.0) -> None:
    """Size scene ``i`` around its speech (a lead-in and a tail, a dissolve's length more at a dissolve)."""
    n, scene = len(plan.scenes), plan.scenes[i]
    lead = rng.uniform(0.3, 0.6) + (DISSOLVE_S if i > 0 and plan.transitions[i - 1] == "dissolve" else 0)
    tail = rng.uniform(0.4, 0.9) + (DISSOLVE_S if i < n - 1 and plan.transitions[i] == "dissolve" else 0)
    scene.duration_s = round(max(2.0, min(longest_s, lead + len(audio) / SAMPLE_RATE + tail)) * FPS) / FPS
    scene.sentence, scene.voice = line, voice
    scene.speech_start_s = lead  # relative for now


def timeline(plan: AdPlan) -> tuple[list[float], list[dict], float]:
    """Scene start times, true shot boundaries and total duration of the joined video."""
    starts, boundaries, t = [], [], 0.0
    for i, scene in enumerate(plan.scenes):
        starts.append(t)
        end = t + scene.duration_s
        if i < len(plan.transitions):
            kind = plan.transitions[i]
            nxt = end - DISSOLVE_S if kind == "dissolve" else end
            at = nxt + DISSOLVE_S / 2 if kind == "dissolve" else nxt
            boundaries.append({"t_s": round(at, 3), "type": kind,
                               **({"start_s": round(nxt, 3), "end_s": round(end, 3)} if kind == "dissolve" else {})})
            t = nxt
        else:
            t = end
    return starts, boundaries, round(t, 3)


# -- rendering ------------------------------------------------------------------------------------------
def render(plan: AdPlan, out: Path, work: Path, rng_seed: int, speech: list[np.ndarray],
           bgm: dict[str, Path]) -> dict:
    starts, boundaries, total = timeline(plan)
    n_samples = int(round(total * SAMPLE_RATE))
    mix = np.zeros(n_samples, dtype=np.float32)
    if plan.bgm_id:
        track = read_wav(bgm[plan.bgm_id])
        reps = int(np.ceil(n_samples / len(track)))
        music = np.tile(track, reps)[:n_samples]
        if plan.kind == "voiceover" and plan.music_db_under_voice is not None and speech:
            voiced = np.concatenate(speech)
            gain = _rms(voiced) / max(_rms(music), 1e-6) * 10 ** (-plan.music_db_under_voice / 20)
        else:
            gain = 0.12 if plan.kind == "voiceover" else 0.5
        mix += music * gain
    sentences = []
    for i, (scene, audio) in enumerate(zip(plan.scenes, speech, strict=False)):
        begin = starts[i] + scene.speech_start_s
        at = int(round(begin * SAMPLE_RATE))
        mix[at: at + len(audio)] += audio[: max(0, n_samples - at)]
        scene.speech_start_s, scene.speech_end_s = round(begin, 3), round(begin + len(audio) / SAMPLE_RATE, 3)
        sentences.append({"idx": i, "text": scene.sentence, "start_s": scene.speech_start_s,
                          "end_s": scene.speech_end_s, "voice": scene.voice})

    inputs, filters = [], []
    w, h = plan.size
    for i, scene in enumerate(plan.scenes):
        if scene.footage:  # a window of a real recording, filling the frame, at the corpus's frame rate
            inputs += ["-ss", f"{scene.footage_start_s:.3f}", "-t", f"{scene.duration_s + 1:.3f}", "-i", scene.footage]
            fit = (f"scale={w}:{h}:force_original_aspect_ratio=increase,crop={w}:{h},setsar=1,fps={FPS},"
                   f"trim=duration={scene.duration_s:.3f},")
        else:
            inputs += ["-f", "lavfi", "-i", _source(scene, plan.size, rng_seed + i)]
            fit = ""
        text = work / f"overlay{i}.txt"
        text.write_text(scene.overlay)
        fontsize = max(18, plan.size[0] // 18)
        filters.append(
            f"[{i}:v]{fit}format=yuv420p,drawtext=fontfile={FONT}:textfile={text}:fontsize={fontsize}:"
            f"fontcolor=white:borderw=2:bordercolor=black:x=(w-tw)/2:y=h*0.08,settb=AVTB,setpts=PTS-STARTPTS[s{i}]")
    current = "s0"
    for i, kind in enumerate(plan.transitions, start=1):
        if kind == "dissolve":
            filters.append(f"[{current}][s{i}]xfade=transition=fade:duration={DISSOLVE_S}:offset={starts[i]:.3f}[c{i}]")
        else:
            filters.append(f"[{current}][s{i}]concat=n=2:v=1:a=0,settb=AVTB[c{i}]")
        current = f"c{i}"
    cmd = ["ffmpeg", "-v", "error", "-y", *inputs]
    audio_args: list[str] = []
    if plan.kind != "silent":
        wav = work / "mix.wav"
        write_wav(wav, mix / max(1.0, float(np.abs(mix).max())))
        cmd += ["-i", str(wav)]
        audio_args = ["-map", f"{len(plan.scenes)}:a", *AUDIO]
    cmd += ["-filter_complex", ";".join(filters), "-map", f"[{current}]", *audio_args, *ENCODE,
            "-t", f"{total:.3f}", str(out)]
    _run(cmd)
    shots = []
    edges = [0.0] + [b["t_s"] for b in boundaries] + [total]
    for i in range(len(plan.scenes)):
        shots.append({"idx": i, "start_s": round(edges[i], 3), "end_s": round(edges[i + 1], 3),
                      "transition": "start" if i == 0 else boundaries[i - 1]["type"]})
    return {"duration_s": total, "boundaries": boundaries, "shots": shots, "sentences": sentences}


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0


def render_long(out: Path, seconds: float) -> None:
    """An over-long ad: a plain card with a tone, cheap to encode."""
    _run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"color=c=0x224488:s=320x180:r={FPS}:d={seconds}",
          "-f", "lavfi", "-i", f"sine=frequency=330:sample_rate=44100:duration={seconds}",
          "-map", "0:v", "-map", "1:a", *ENCODE[:4], "-preset", "ultrafast", *ENCODE[6:], *AUDIO, str(out)])


def probe(path: Path) -> dict:
    """ffprobe's view of a file: duration, streams and the video size."""
    res = _run(["ffprobe", "-v", "error", "-show_entries",
                "format=duration:stream=codec_type,codec_name,width,height,avg_frame_rate", "-of", "json",
                str(path)])
    info = json.loads(res.stdout)
    video = [s for s in info.get("streams", []) if s["codec_type"] == "video"]
    audio = [s for s in info.get("streams", []) if s["codec_type"] == "audio"]
    return {"duration_s": float(info["format"]["duration"]), "has_video": bool(video), "has_audio": bool(audio),
            "width": video[0]["width"] if video else None, "height": video[0]["height"] if video else None}


# -- the corpus -----------------------------------------------------------------------------------------
@dataclass
class CorpusSummary:
    out: str
    ads: int
    manifest: str
    ground_truth: str
    media_files: int
    expected: dict[str, int]


def _plan_ads(n: int, rng: random.Random) -> list[AdPlan]:
    plans = []
    silent = {n - 1} if n >= 6 else set()
    music_only = {i for i in range(n) if i % 7 == 3}
    for i in range(n):
        pid, name, points, _ = _product(rng, i // 2)  # two ads per product, like a real crawl
        kind = "silent" if i in silent else ("music_only" if i in music_only else "voiceover")
        size = PORTRAIT if rng.random() < 0.4 else LANDSCAPE
        n_scenes = rng.randint(2, 8)
        looks = _looks(rng, n_scenes)
        overlays = [name] + [p.capitalize() for p in points] + ["Order now"]
        scenes = [Scene(look=lk, hue=h, overlay=overlays[j % len(overlays)]) for j, (lk, h) in enumerate(looks)]
        transitions = ["dissolve" if rng.random() < 0.25 else "cut" for _ in range(n_scenes - 1)]
        plan = AdPlan(ad_id=f"ad{i:05d}", kind=kind, size=size, product_id=pid, product_name=name,
                      selling_points=points, scenes=scenes, transitions=transitions,
                      bgm_id=None if kind == "silent" else f"bgm_{rng.randrange(len(BGM_NOTES)):02d}",
                      file_name=f"{rng.getrandbits(48):012x}.mp4")
        if kind != "voiceover":
            for s in scenes:
                s.duration_s = round(rng.uniform(2.0, 8.0) * FPS) / FPS
        plans.append(plan)
    return plans


def _build_one(plan: AdPlan, seed: int, videos: Path, bgm: dict[str, Path], voices: str = "narrow",
               real: Any = None) -> dict:
    """Render one planned ad; ``real`` (``adlake.synth.real.RealMedia``) for an ad of real recordings."""
    rng = random.Random(f"{seed}:{plan.ad_id}")
    with tempfile.TemporaryDirectory(prefix=f"synth-{plan.ad_id}-") as tmp:
        work = Path(tmp)
        if plan.real:
            speech = real.speak(plan, rng, work) if plan.kind == "voiceover" else []
            real.place(plan, rng)
        else:
            speech = plan_voiceover(plan, rng, work, voices) if plan.kind == "voiceover" else []
        truth = render(plan, videos / plan.file_name, work, seed % 100_000, speech, bgm)
    w, h = plan.size
    extra: dict[str, Any] = {}
    if plan.real:
        extra["real"] = {"footage": [{"file": Path(s.footage).name, "start_s": s.footage_start_s}
                                     for s in plan.scenes], "speech": "asterisk-core-sounds-en (8 kHz)"}
    if plan.music_db_under_voice is not None and plan.kind == "voiceover":
        extra["music_db_under_voice"] = plan.music_db_under_voice
    return {"kind": plan.kind, "file": f"videos/{plan.file_name}", "width": w, "height": h, "fps": FPS,
            "has_video": True, "has_audio": plan.kind != "silent", "has_voiceover": plan.kind == "voiceover",
            "bgm_id": plan.bgm_id, "scenes": len(plan.scenes), "transitions": plan.transitions, **truth, **extra}


def generate(out: Path, n: int = 24, seed: int = 7, base_url: str = "http://127.0.0.1:8765",
             crawl_date: dt.date | None = None, workers: int = 2,
             progress: Callable[[str], None] | None = None, real: float = 0.0, voices: str = "narrow",
             sources_dir: Path | None = None) -> CorpusSummary:
    """Write ``n`` good ads plus the bad inputs, a manifest and the ground truth under ``out``. ``real``: the
    share of ads cut from real recordings (``adlake.synth.real``; the sources under ``sources_dir``);
    ``voices``: ``narrow`` (four espeak-ng voices, the original corpus) or ``wide``."""
    if n < 4:
        raise ValueError("a corpus needs at least 4 ads")
    if not 0.0 <= real <= 1.0:
        raise ValueError(f"real is a share of the ads, between 0 and 1 (got {real})")
    if voices not in ("narrow", "wide"):
        raise ValueError(f"voices: narrow or wide (got {voices!r})")
    for tool in ("ffmpeg", "ffprobe", "espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise SynthError(f"{tool} is not installed (make setup installs ffmpeg, espeak-ng and sox)")
    out = Path(out)
    videos = out / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    crawl_date = crawl_date or dt.date(2026, 11, 1)
    rng = random.Random(seed)
    bgm = make_bgm_library(out / "bgm")
    plans = _plan_ads(n, rng)
    media = None
    if real:  # its own random stream: the synthetic ads stay what they are for the seed
        from adlake.synth.real import RealMedia

        media = RealMedia.load(sources_dir, out / "bgm")
        bgm.update(media.songs)
        media.plan(plans, round(real * n), random.Random(f"{seed}:real"))
    truth: dict[str, dict] = {}
    done = 0
    with ThreadPoolExecutor(max_workers=workers) as pool:
        build = lambda p: _build_one(p, seed, videos, bgm, voices, media)  # noqa: E731
        for plan, record in zip(plans, pool.map(build, plans), strict=True):
            truth[plan.ad_id] = record
            done += 1
            if progress:
                progress(f"{done}/{n} {plan.ad_id} {record['kind']} {record['duration_s']:.1f}s")

    url = base_url.rstrip("/")
    rows = []
    for i, plan in enumerate(plans):
        t = truth[plan.ad_id]
        t["expected"] = {"outcome": "selected"}
        rows.append(_manifest_row(plan.ad_id, f"{url}/{t['file']}", plan.product_id, plan.product_name,
                                  plan.selling_points, rng, duration=t["duration_s"] if i % 2 == 0 else None))
    rows, extra = _bad_inputs(out, plans, truth, rows, rng, url)
    truth.update(extra)
    # Low engagement: the last good ad's numbers are too small to be selected.
    low = rows[n - 2]
    low["play_count"], low["like_count"] = 37, 1
    truth[low["ad_id"]]["expected"] = {"outcome": "filtered", "reason": "low_engagement"}

    manifest = out / "manifest.parquet"
    write_manifest(rows, manifest)
    meta = {"seed": seed, "n": n, "crawl_date": crawl_date.isoformat(), "base_url": url, "fps": FPS,
            "dissolve_s": DISSOLVE_S, "manifest_rows": len(rows),
            "bgm": {k: f"bgm/{p.name}" for k, p in bgm.items()}, "ads": truth}
    if media or voices != "narrow":
        meta.update(real=real, voices=voices, **({"sources": media.versions} if media else {}))
    gt = out / "ground_truth.json"
    gt.write_text(json.dumps(meta, indent=1, sort_keys=True))
    expected: dict[str, int] = {}
    for t in truth.values():
        key = t["expected"]["outcome"]
        expected[key] = expected.get(key, 0) + 1
    return CorpusSummary(out=str(out), ads=len(rows), manifest=str(manifest), ground_truth=str(gt),
                         media_files=len(list(videos.iterdir())), expected=expected)


def _advertiser_of(product_id: str | None, drawn: int) -> str:
    # An advertiser owns its products, as on real platforms; the draw is kept so the rest of the corpus is unchanged.
    if not product_id:
        return f"adv{drawn:03d}"
    return f"adv{int(hashlib.sha256(product_id.encode()).hexdigest(), 16) % 16:03d}"


def _manifest_row(ad_id: str, url: str | None, product_id: str | None, product_name: str | None,
                  points: list[str] | None, rng: random.Random, duration: float | None = None) -> dict:
    plays = int(rng.lognormvariate(11, 1.2)) + 5_000
    return {"ad_id": ad_id, "url": url, "product_id": product_id, "product_name": product_name,
            "selling_points": points, "industry": rng.choice(INDUSTRIES),
            "advertiser_id": _advertiser_of(product_id, rng.randrange(40)),
            "title": f"{product_name} ad" if product_name else None, "play_count": plays,
            "like_count": plays // rng.randint(20, 80),
            "published_at": f"2026-{rng.randint(1, 10):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:00:00Z",
            "duration_s": duration}


def _bad_inputs(out: Path, plans: list[AdPlan], truth: dict, rows: list[dict], rng: random.Random,
                url: str) -> tuple[list[dict], dict]:
    videos = out / "videos"
    extra: dict[str, dict] = {}
    first = plans[0]
    source = videos / first.file_name

    def add(ad_id: str, file_name: str | None, expected: dict, *, row_url: str | None = "auto",
            product: tuple | None = None, duration: float | None = None, **truth_extra) -> dict:
        # each bad input is its own product, so per-product caps never hide what it is meant to test
        product = product or (f"p_{ad_id}", "Broken Thing")
        row = _manifest_row(ad_id, f"{url}/videos/{file_name}" if row_url == "auto" else row_url,
                            product[0], product[1], ["does nothing"], rng, duration)
        rows.append(row)
        extra[ad_id] = {"kind": "bad", "file": f"videos/{file_name}" if file_name else None,
                        "expected": expected, **truth_extra}
        return row

    data = source.read_bytes()
    (videos / "dup_copy.mp4").write_bytes(data)
    add("bad_duplicate", "dup_copy.mp4", {"outcome": "selected", "shares_video_with": first.ad_id})
    (videos / "truncated.mp4").write_bytes(data[: len(data) * 2 // 5])
    add("bad_truncated", "truncated.mp4", {"outcome": "quarantined", "error_class": "truncated"})
    (videos / "empty.mp4").write_bytes(b"")
    add("bad_empty", "empty.mp4", {"outcome": "quarantined", "error_class": "empty"})
    (videos / "not_video.mp4").write_text("<html><body>This is a landing page, not a video.</body></html>\n" * 20)
    add("bad_not_video", "not_video.mp4", {"outcome": "quarantined", "error_class": "not_a_video"})
    (videos / "playlist.mp4").write_text("#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:10.0,\nfile:///etc/passwd\n"
                                         "#EXTINF:10.0,\nhttp://127.0.0.1:9/leak\n#EXT-X-ENDLIST\n")
    add("bad_playlist", "playlist.mp4", {"outcome": "quarantined", "error_class": "unsafe_playlist"})
    add("bad_missing_url", "does_not_exist.mp4", {"outcome": "quarantined", "error_class": "http_error"})
    render_long(videos / "long.mp4", MAX_AD_S + 5)
    add("bad_too_long", "long.mp4", {"outcome": "filtered", "reason": "too_long"}, duration_s=MAX_AD_S + 5,
        width=320, height=180, has_audio=True, has_video=True)
    add("bad_claims_too_long", None, {"outcome": "filtered", "reason": "too_long"}, duration=150.0,
        row_url=f"{url}/videos/{first.file_name}?variant=long")
    _run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=4",
          *AUDIO, "-map_metadata", "-1", "-fflags", "+bitexact", "-flags:a", "+bitexact", str(videos / "audio_only.mp4")])
    add("bad_audio_only", "audio_only.mp4", {"outcome": "quarantined", "error_class": "no_video_stream"})
    # Rows that break the manifest contract: quarantined when the manifest is landed.
    add("bad_no_product", first.file_name, {"outcome": "quarantined", "error_class": "missing_field"},
        product=(None, "Nameless"))
    add("bad_scheme", None, {"outcome": "quarantined", "error_class": "bad_url"},
        row_url=f"ftp://127.0.0.1/videos/{first.file_name}")
    dup = dict(rows[1])
    rows.append(dup)
    extra_key = f"{dup['ad_id']}#dup"
    extra[extra_key] = {"kind": "bad", "file": None, "row_ad_id": dup["ad_id"],
                        "expected": {"outcome": "quarantined", "error_class": "duplicate_ad_id"}}
    bad_time = add("bad_timestamp", first.file_name, {"outcome": "quarantined", "error_class": "bad_value"})
    bad_time["published_at"] = "last tuesday"
    return rows, extra


MANIFEST_SCHEMA = pa.schema([
    ("ad_id", pa.string()), ("url", pa.string()), ("product_id", pa.string()), ("product_name", pa.string()),
    ("selling_points", pa.list_(pa.string())), ("industry", pa.string()), ("advertiser_id", pa.string()),
    ("title", pa.string()), ("play_count", pa.int64()), ("like_count", pa.int64()),
    ("published_at", pa.string()), ("duration_s", pa.float64()),
])


def write_manifest(rows: list[dict], path: Path) -> Path:
    """Write manifest rows as Parquet, CSV (selling points joined by '|') or JSONL, by suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA)
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, path)
    elif path.suffix == ".csv":
        import pyarrow.csv as pacsv

        points = [None if p is None else "|".join(p) for p in table["selling_points"].to_pylist()]
        pacsv.write_csv(table.set_column(4, "selling_points", pa.array(points, pa.string())), path)
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        raise ValueError(f"unsupported manifest format {path.suffix!r} (parquet, csv, jsonl)")
    return path
