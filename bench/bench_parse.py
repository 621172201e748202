"""ads_parse per stage on a synthetic corpus, each against a baseline measured in the same run.

- Seconds of processing per minute of video for each stage of ``parse_video`` (soundtrack, VAD + ASR,
  one decode for shots and 1 fps frames, blob writes).
- Shots + frames against the physical floor: a bare ``ffmpeg -f null`` decode of the same video streams;
  and against decoding twice (PySceneDetect alone, then ffmpeg extracting the 1 fps frames).
- ASR real-time factor of the batched WhisperX path (VAD chunks, batched CTranslate2) against plain
  sequential faster-whisper with the same model on the same audio: per ad (short clips, one chunk each)
  and on all the ads' soundtracks joined into one long recording, where batching has chunks to batch.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np


def _ffmpeg_null(path: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map", "0:v:0", "-f", "null", "-"],
                   check=True)
    return time.perf_counter() - t0


def _two_pass(path: Path, shots_conf, out: Path) -> float:
    """Shots with PySceneDetect's own decode, then 1 fps frames with a second ffmpeg decode."""
    from adlake.clips.shots import detect_shots

    t0 = time.perf_counter()
    detect_shots(path, shots_conf)
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(path), "-vf",
                    "fps=1,scale='if(gte(iw,ih),996,-2)':'if(gte(iw,ih),-2,996)'", "-q:v", "3",
                    str(out / "f%04d.jpg")], check=True)
    return time.perf_counter() - t0


def run(n: int | None = None, seed: int = 5) -> None:
    from faster_whisper import WhisperModel

    from adlake.asr.transcribe import SAMPLE_RATE, Transcriber
    from adlake.config import get_settings
    from adlake.media.audio import extract_soundtrack
    from adlake.media.store import MediaStore
    from adlake.parse.video import parse_video
    from adlake.synth import generate

    n = n or int(os.environ.get("ADLAKE_BENCH_ADS", "16"))
    with tempfile.TemporaryDirectory(prefix="adlake-bench-parse-") as tmp:
        os.environ["ADLAKE_HOME"] = str(Path(tmp) / "home")
        get_settings.cache_clear()
        settings = get_settings()
        corpus = Path(tmp) / "corpus"
        generate(corpus, n=n, seed=seed)
        import json

        truth = json.loads((corpus / "ground_truth.json").read_text())["ads"]
        files = sorted({corpus / t["file"]: t for t in truth.values() if t["kind"] != "bad"}.items())
        store = MediaStore(settings)
        transcriber = Transcriber(settings.parse.asr)  # loaded once, outside every measurement
        stage = {"audio_s": 0.0, "asr_s": 0.0, "decode_s": 0.0, "write_s": 0.0}
        floor_s = two_pass_s = video_s = 0.0
        soundtracks = []
        for i, (path, t) in enumerate(files):
            video = {"video_id": f"bench{i}", "duration_s": t["duration_s"], "has_audio": t["has_audio"]}
            parsed = parse_video(video, path, settings, store, lambda: transcriber, "bench")
            row = parsed.rows["silver.parsed_videos"][0]
            for k in stage:
                stage[k] += row[k]
            video_s += t["duration_s"]
            floor_s += _ffmpeg_null(path)
            two_pass_s += _two_pass(path, settings.parse.shots, Path(tmp) / "frames" / str(i))
            if t["has_audio"]:
                soundtracks.append(extract_soundtrack(path, Path(tmp) / "audio" / str(i)).samples())

        minutes = video_s / 60
        print(f"\n== ads_parse stages ({len(files)} ads, {video_s:.0f} s of video, {os.cpu_count()} cores, "
              f"ASR {transcriber.model_name} on {transcriber.device}/{transcriber.compute_type})")
        for k, label in (("audio_s", "soundtrack (ffmpeg)"), ("asr_s", "VAD + ASR"),
                         ("decode_s", "shots + 1 fps frames, one decode"), ("write_s", "blob writes")):
            print(f"  {label:<34} {stage[k] / minutes:7.2f} s per minute of video")
        total = sum(stage.values())
        print(f"  {'all stages':<34} {total / minutes:7.2f} s per minute of video")
        print(f"  shots + frames {stage['decode_s']:.1f} s vs bare ffmpeg -f null decode {floor_s:.1f} s: "
              f"{stage['decode_s'] / floor_s:.1f}x the floor; decoding twice (PySceneDetect, then ffmpeg fps=1) "
              f"{two_pass_s:.1f} s: one decode takes {stage['decode_s'] / two_pass_s:.2f}x of it")

        model = WhisperModel(transcriber.model_path, device=transcriber.device, compute_type=transcriber.compute_type,
                             cpu_threads=settings.parse.asr.cpu_threads or 0)
        conf = settings.parse.asr

        def sequential(audio: np.ndarray) -> None:
            segments, _ = model.transcribe(audio, language=conf.language, beam_size=conf.beam_size,
                                           word_timestamps=True, vad_filter=False)
            list(segments)

        def rtf(fn, clips: list[np.ndarray]) -> float:
            t0 = time.perf_counter()
            for a in clips:
                fn(a)
            return (time.perf_counter() - t0) / (sum(len(a) for a in clips) / SAMPLE_RATE)

        gap = np.zeros(SAMPLE_RATE, dtype=np.float32)
        joined = np.concatenate([x for a in soundtracks for x in (a, gap)])
        print(f"== ASR real-time factor (lower is faster), batch size {conf.batch_size}")
        for label, clips in (("per ad", soundtracks), (f"joined ({len(joined) / SAMPLE_RATE:.0f} s)", [joined])):
            batched, plain = rtf(transcriber.transcribe, clips), rtf(sequential, clips)
            print(f"  {label:<16} WhisperX batched {batched:.3f} · sequential faster-whisper {plain:.3f} · "
                  f"speed-up {plain / batched:.2f}x")
