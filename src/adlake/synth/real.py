"""Ads cut from real recordings (``adlake.synth.sources``): each scene a window of real camera footage, the
voiceover a professional voice reading prompts whose transcripts are known, the music a recorded song.

The ground truth is as exact as for the synthetic ads: cut and dissolve times come from frame counts (every
window is resampled to the corpus's frame rate and trimmed to a whole number of frames), utterance times from
where each prompt is placed. Only the pixels and the sound are real. Adjacent scenes never come from the
same recording, so that every cut is a change of shot.
"""

from __future__ import annotations

import random
import subprocess
import wave
from pathlib import Path

import numpy as np

from adlake.synth.corpus import (
    FPS,
    SAMPLE_RATE,
    AdPlan,
    Scene,
    SynthError,
    fit_scene,
    read_wav,
    trimmed_16k,
    write_wav,
)
from adlake.synth.sources import Prompt, Sources

SPEAKER = "asterisk-allison"  # the one voice of the prompts
SONG_OFFSET_S, SONG_WINDOW_S = 20.0, 45.0  # background music: windows of 45 s from 20 s into each track
MARGIN_S = 0.4  # a window ends this far before its recording does


def _seconds(path: Path) -> float:
    if path.suffix == ".wav":
        with wave.open(str(path)) as w:
            return w.getnframes() / w.getframerate()
    res = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0",
                          str(path)], capture_output=True, text=True, check=True)
    return float(res.stdout.strip())


def footage_lengths(sources: Sources) -> dict[str, float]:
    return {str(p): _seconds(p) for p in sources.footage}


def song_windows(sources: Sources, lengths: dict[Path, float]) -> list[tuple[str, Path, float]]:
    """Every track of every song (the full mix and its backing tracks), cut into consecutive windows: so
    that ads scored to the same song do not all carry the same seconds of music."""
    windows = []
    for name, files in sources.songs.items():
        for track in files:
            offset = SONG_OFFSET_S
            while offset + SONG_WINDOW_S <= lengths[track] - MARGIN_S:
                windows.append((f"song_{name}_{track.stem}_{int(offset)}", track, offset))
                offset += SONG_WINDOW_S
    return windows


def make_song_library(out_dir: Path, sources: Sources) -> dict[str, Path]:
    """The background-music windows (``song_windows``), each a 16 kHz mono WAV, peak-normalised."""
    out_dir.mkdir(parents=True, exist_ok=True)
    lengths = {f: _seconds(f) for files in sources.songs.values() for f in files}
    tracks = {}
    for bgm_id, song, offset in song_windows(sources, lengths):
        path = out_dir / f"{bgm_id}.wav"
        if not path.exists():
            raw = out_dir / f".{bgm_id}.raw.wav"
            res = subprocess.run(["ffmpeg", "-v", "error", "-y", "-ss", str(offset), "-t", str(SONG_WINDOW_S),
                                  "-i", str(song), "-ac", "1", "-ar", str(SAMPLE_RATE), "-c:a", "pcm_s16le",
                                  "-map_metadata", "-1", "-fflags", "+bitexact", str(raw)],
                                 capture_output=True, text=True)
            if res.returncode:
                raise SynthError(f"{song}: cannot be decoded: {res.stderr.strip()[-500:]}")
            audio = read_wav(raw)
            raw.unlink()
            fade = int(0.05 * SAMPLE_RATE)
            audio[:fade] *= np.linspace(0, 1, fade, dtype=np.float32)
            audio[-fade:] *= np.linspace(1, 0, fade, dtype=np.float32)
            write_wav(path, audio * (0.9 / max(float(np.abs(audio).max()), 1e-6)))
        tracks[bgm_id] = path
    return tracks


def plan_real(plan: AdPlan, rng: random.Random, sources: Sources, songs: list[str]) -> None:
    """Make ``plan`` an ad of real recordings: 2–5 scenes, a recorded song under it (if it has sound)."""
    n = rng.randint(2, 5)
    recordings = [str(p) for p in sources.footage]
    chosen: list[str] = []
    for _ in range(n):
        chosen.append(rng.choice([r for r in recordings if not chosen or r != chosen[-1]]))
    overlays = [plan.product_name] + [p.capitalize() for p in plan.selling_points] + ["Order now"]
    plan.scenes = [Scene(look="footage", hue=0, footage=f, overlay=overlays[j % len(overlays)])
                   for j, f in enumerate(chosen)]
    plan.transitions = ["dissolve" if rng.random() < 0.35 else "cut" for _ in range(n - 1)]
    plan.real = True
    if plan.kind != "silent":
        plan.bgm_id = rng.choice(songs)
    plan.music_db_under_voice = round(rng.uniform(6.0, 18.0), 1)


def speak_prompts(plan: AdPlan, rng: random.Random, work: Path, sources: Sources,
                  lengths: dict[str, float]) -> list[np.ndarray]:
    """One prompt per scene (1–6 s of speech, no prompt twice in an ad), each scene sized around it."""
    usable = [p for p in sources.prompts if 1.0 <= _seconds(p.path) <= 6.0]
    if len(usable) < len(plan.scenes):
        raise SynthError(f"only {len(usable)} usable speech prompts under {sources.root}")
    prompts: list[Prompt] = rng.sample(usable, len(plan.scenes))
    speech = []
    for i, prompt in enumerate(prompts):
        audio = trimmed_16k(prompt.path, work / f"s{i}.wav")
        fit_scene(plan, i, audio, prompt.text, SPEAKER, rng,
                  longest_s=min(8.0, lengths[plan.scenes[i].footage] - MARGIN_S))
        speech.append(audio)
    return speech


def place_footage(plan: AdPlan, rng: random.Random, lengths: dict[str, float]) -> None:
    """Where in its recording each scene's window starts (scenes without speech get their length here)."""
    for scene in plan.scenes:
        room = lengths[scene.footage] - MARGIN_S
        if not scene.duration_s:
            scene.duration_s = round(rng.uniform(2.0, min(8.0, room)) * FPS) / FPS
        if scene.duration_s > room:
            raise SynthError(f"{scene.footage}: {lengths[scene.footage]:.1f} s is too short for a "
                             f"{scene.duration_s:.1f} s scene")
        scene.footage_start_s = round(rng.uniform(0.0, room - scene.duration_s) * FPS) / FPS


class RealMedia:
    """The real recordings a corpus draws on, with what planning and rendering need of them."""

    def __init__(self, sources: Sources, songs: dict[str, Path]) -> None:
        self.sources, self.songs = sources, songs
        self.lengths = footage_lengths(sources)
        self.versions = sources.versions

    @classmethod
    def load(cls, sources_dir: Path | None, bgm_dir: Path) -> RealMedia:
        from adlake.synth.sources import default_sources_dir

        sources = Sources.load(Path(sources_dir) if sources_dir else default_sources_dir())
        return cls(sources, make_song_library(bgm_dir, sources))

    def plan(self, plans: list[AdPlan], count: int, rng: random.Random) -> None:
        """Make ``count`` of the planned ads (drawn by ``rng``) ads of real recordings."""
        for i in sorted(rng.sample(range(len(plans)), min(count, len(plans)))):
            plan_real(plans[i], random.Random(f"{rng.random()}:{plans[i].ad_id}"), self.sources, sorted(self.songs))

    def speak(self, plan: AdPlan, rng: random.Random, work: Path) -> list[np.ndarray]:
        return speak_prompts(plan, rng, work, self.sources, self.lengths)

    def place(self, plan: AdPlan, rng: random.Random) -> None:
        place_footage(plan, rng, self.lengths)
