"""ads_parse per stage on a synthetic corpus, each against a baseline measured in the same run.

- Seconds of processing per minute of video for each stage of a parse batch (soundtrack, VAD + ASR
  batched across the batch's videos, one decode for shots and 1 fps frames, blob writes), on a corpus half
  cut from real recordings.
- Shots + frames against the physical floor: a bare ``ffmpeg -f null`` decode of the same video streams;
  and against decoding twice (PySceneDetect alone, then ffmpeg extracting the 1 fps frames).
- ASR word error rate and speed of the parse path (VAD chunks batched across videos, doubtful chunks redone
  sequentially) against plain sequential faster-whisper with the same model on the same audio, per part
  of the corpus (real speech, synthetic voices).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path


def _two_pass(path: Path, shots_conf, out: Path) -> float:
    """Shots with PySceneDetect's own decode and detector, then 1 fps frames with a second ffmpeg decode."""
    from scenedetect import AdaptiveDetector, detect

    t0 = time.perf_counter()
    detect(str(path), AdaptiveDetector(adaptive_threshold=shots_conf.adaptive_threshold,
                                       min_scene_len=shots_conf.min_scene_len_frames))
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(path), "-vf",
                    "fps=1,scale='if(gte(iw,ih),996,-2)':'if(gte(iw,ih),-2,996)'", "-q:v", "3",
                    str(out / "f%04d.jpg")], check=True)
    return time.perf_counter() - t0


def run(n: int | None = None, seed: int = 5) -> None:
    from adlake.asr.transcribe import Transcriber
    from adlake.clips.shots import detector_name
    from adlake.config import get_settings
    from adlake.evaluate.asr import score_corpus
    from adlake.evaluate.shots import bare_decode_s
    from adlake.evaluate.shots import score_corpus as score_shots
    from adlake.media.store import MediaStore
    from adlake.parse.video import listen, see, transcribe_all
    from adlake.synth import generate

    n = n or int(os.environ.get("ADLAKE_BENCH_ADS", "16"))
    with tempfile.TemporaryDirectory(prefix="adlake-bench-parse-") as tmp:
        os.environ["ADLAKE_HOME"] = str(Path(tmp) / "home")
        get_settings.cache_clear()
        settings = get_settings()
        corpus = Path(tmp) / "corpus"
        sources = Path(settings.synth.sources_dir).expanduser()
        real = 0.5  # half the ads cut from real recordings (make bench fetches them: make media-sources)
        generate(corpus, n=n, seed=seed, real=real, voices="wide", sources_dir=sources)
        import json

        truth = json.loads((corpus / "ground_truth.json").read_text())["ads"]
        files = sorted({corpus / t["file"]: t for t in truth.values() if t["kind"] != "bad"}.items())
        store = MediaStore(settings)
        transcriber = Transcriber(settings.parse.asr)  # loaded once, outside every measurement
        stage = {"audio_s": 0.0, "asr_s": 0.0, "decode_s": 0.0, "write_s": 0.0}
        floor_s = two_pass_s = video_s = 0.0
        videos = [{"video_id": f"bench{i}", "duration_s": t["duration_s"], "has_audio": t["has_audio"]}
                  for i, (_, t) in enumerate(files)]
        size = settings.parse.asr.batch_size
        heards = []
        for start in range(0, len(files), size):  # as a parse batch: soundtracks, ASR across them, then vision
            listened = [listen(v, path, store) for v, (path, _) in zip(videos[start:start + size],
                                                                       files[start:start + size], strict=True)]
            transcribe_all(listened, transcriber)
            heards += [heard for heard, _ in listened]
            for v, (path, t), (heard, _) in zip(videos[start:start + size], files[start:start + size], listened,
                                                strict=True):
                row = see(v, path, heard, settings, store, "bench").rows["silver.parsed_videos"][0]
                for k in stage:
                    stage[k] += row[k]
                video_s += t["duration_s"]
                floor_s += bare_decode_s(path)
                two_pass_s += _two_pass(path, settings.parse.shots, Path(tmp) / "frames" / v["video_id"])

        # Timings on a shared VM vary by up to ±50 % from one pass to the next: two more passes of the vision
        # part and of the floor, and the best of each (the first pass above is the cold one)
        passes = [(stage["decode_s"], floor_s)]
        for _ in range(2):
            ours = floor = 0.0
            for v, (path, _), heard in zip(videos, files, heards, strict=True):
                ours += see(v, path, heard, settings, store, "bench").rows["silver.parsed_videos"][0]["decode_s"]
                floor += bare_decode_s(path)
            passes.append((ours, floor))
        best_ours, best_floor = min(o for o, _ in passes), min(f for _, f in passes)

        minutes = video_s / 60
        print(f"\n== ads_parse stages ({len(files)} ads, {real:.0%} cut from real recordings, {video_s:.0f} s of "
              f"video, {os.cpu_count()} cores, ASR {transcriber.model_name} on {transcriber.device}/"
              f"{transcriber.compute_type}, batched across {size} videos)")
        for k, label in (("audio_s", "soundtrack (ffmpeg)"), ("asr_s", "VAD + ASR"),
                         ("decode_s", "shots + 1 fps frames, one decode"), ("write_s", "blob writes")):
            print(f"  {label:<34} {stage[k] / minutes:7.2f} s per minute of video")
        total = sum(stage.values())
        print(f"  {'all stages':<34} {total / minutes:7.2f} s per minute of video")
        print(f"  shots + frames {stage['decode_s']:.1f} s vs bare ffmpeg -f null decode {floor_s:.1f} s: "
              f"{stage['decode_s'] / floor_s:.2f}x the floor; decoding twice (PySceneDetect, then ffmpeg fps=1) "
              f"{two_pass_s:.1f} s: one decode takes {stage['decode_s'] / two_pass_s:.2f}x of it")
        print(f"  shots + frames, best of {len(passes)} passes each: {best_ours:.1f} s vs {best_floor:.1f} s: "
              f"{best_ours / best_floor:.2f}x the floor (passes: "
              + ", ".join(f"{o:.1f}/{f:.1f}" for o, f in passes) + ")")

        print(f"== shot detectors on the same files (hard cuts, dissolves, false cuts; decode + detection "
              f"against a bare ffmpeg decode, this run; auto picks {detector_name(settings.parse.shots)} here)")
        for name in ("adaptive", "transnetv2"):
            conf = settings.parse.shots.model_copy(update={"detector": name})
            sh = score_shots(corpus, conf, floor=True)
            print(f"  {name:<10} cuts F1 {sh.f1:.3f} ({sh.cut_hits}/{sh.cuts}, {sh.false_positives} false) · "
                  f"dissolves {sh.dissolve_hits}/{sh.dissolves} · {sh.seconds:.1f} s vs {sh.floor_seconds:.1f} s: "
                  f"{sh.seconds / sh.floor_seconds:.2f}x the floor")

        score = score_corpus(corpus, settings.parse.asr, baseline=True)
        print(f"== ASR against plain sequential faster-whisper (same model, same audio, this run; "
              f"{score.videos} ads with sound, {score.audio_s:.0f} s)")
        print(f"  WER {score.wer:.3f} vs {score.baseline_wer:.3f} · {score.seconds:.1f} s vs "
              f"{score.baseline_seconds:.1f} s: {score.speed_up:.2f}x its speed · sentences in time "
              f"{score.timed_within}/{score.sentences} · chunks redone sequentially {score.redone_chunks}")
        for part, f in score.by_part.items():
            print(f"  {part:<10} {f['ads']:3d} ads · WER {f['wer']:.3f} vs baseline {f['baseline_wer']:.3f}")
