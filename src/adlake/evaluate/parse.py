"""What ads_parse wrote to the lake, scored against the synthetic corpus it came from.

Videos are matched to the corpus files by content (a video id is the sha256 of its bytes). Scores the tables themselves
(silver.shots, silver.asr_sentences, silver.parsed_videos, silver.clips, silver.frames), so this checks
the pipeline as it ran, not a re-run of its parts.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from adlake.evaluate.asr import normalise, timed_within
from adlake.evaluate.clips import expected_clips
from adlake.evaluate.shots import ShotScore
from adlake.lake import Lake
from adlake.media.frames import MAX_TEMPORAL, SPATIAL_LONG_SIDE, TEMPORAL_LONG_SIDE
from schemas.registry import ASR_SENTENCES, CLIPS, FRAMES, PARSED_VIDEOS, SHOTS, VIDEOS


def _grouped(lake: Lake, spec, key: str = "video_id") -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = defaultdict(list)
    if lake.exists(spec):
        for r in lake.read(spec).to_pylist():
            out[r[key]].append(r)
    return out


def score_lake(lake: Lake, corpus: Path, tolerance_s: float = 0.5) -> dict[str, Any]:
    import jiwer

    # A video's id is the sha256 of its bytes: match the corpus files by content, whatever URL they came from.
    truth_by_id = {}
    for t in json.loads((Path(corpus) / "ground_truth.json").read_text())["ads"].values():
        if t["kind"] != "bad":
            truth_by_id[hashlib.sha256((Path(corpus) / t["file"]).read_bytes()).hexdigest()] = t
    videos = lake.read(VIDEOS, columns=["video_id", "width", "height"]).to_pylist()
    outcomes = {r["video_id"]: r for r in lake.read(PARSED_VIDEOS).to_pylist()} if lake.exists(PARSED_VIDEOS) else {}
    shots, sentences = _grouped(lake, SHOTS), _grouped(lake, ASR_SENTENCES)
    clips, frames = _grouped(lake, CLIPS), _grouped(lake, FRAMES, "clip_id")

    shot_score = ShotScore(0, 0, 0, 0, 0, 0, tolerance_s)
    refs, hyps, n_sentences, n_timed, voiceover_right, audio_videos = [], [], 0, 0, 0, 0
    clip_count = {"videos": 0, "right": 0, "misses": []}
    frame_check = {"clips": 0, "fps1_within_1": 0, "spatial_ok": 0, "temporal_ok": 0, "problems": []}
    matched = 0
    labels = {"found": 0, "right": 0, "dissolves_labelled": 0}
    for v in videos:
        t = truth_by_id.get(v["video_id"])
        outcome = outcomes.get(v["video_id"])
        if t is None or outcome is None:
            continue
        matched += 1
        vid = v["video_id"]
        found_shots = sorted(shots[vid], key=lambda s: s["idx"])[1:]
        found = [s["start_s"] for s in found_shots]
        for s in found_shots:  # is a found boundary labelled as the true one it lies on?
            near = min(t["boundaries"], default=None, key=lambda b: abs(b["t_s"] - s["start_s"]))
            if near is not None and abs(near["t_s"] - s["start_s"]) <= tolerance_s:
                labels["found"] += 1
                labels["right"] += near["type"] == s["transition"]
                labels["dissolves_labelled"] += near["type"] == s["transition"] == "dissolve"
        shot_score.add(found, t["boundaries"])

        got = sorted(sentences[vid], key=lambda s: s["idx"])
        if t["has_audio"]:
            audio_videos += 1
            voiceover_right += int(outcome["voiceover"] == t["has_voiceover"])
        if t["has_voiceover"]:
            refs.append(normalise(" ".join(s["text"] for s in t["sentences"])))
            hyps.append(normalise(" ".join(s["text"] for s in got)))
            n_sentences += len(t["sentences"])
            n_timed += timed_within(t["sentences"], [(s["start_s"], s["end_s"]) for s in got], tolerance_s)

        expected = expected_clips(t, lake.settings.parse)
        clip_count["videos"] += 1
        if outcome["clips"] == expected:
            clip_count["right"] += 1
        else:
            clip_count["misses"].append({"file": t["file"], "kind": t["kind"], "expected": expected,
                                         "found": outcome["clips"]})

        landscape = v["width"] >= v["height"]
        for c in clips[vid]:
            rows = frames[c["clip_id"]]
            by_role = {role: [r for r in rows if r["role"] == role] for role in ("fps1", "spatial", "temporal")}
            duration = c["end_s"] - c["start_s"]
            frame_check["clips"] += 1
            fps1_ok = abs(len(by_role["fps1"]) - duration) <= 1
            spatial_ok = len(by_role["spatial"]) == 1 and all(
                max(r["width"], r["height"]) == SPATIAL_LONG_SIDE and (r["width"] >= r["height"]) == landscape
                for r in by_role["spatial"])
            temporal_ok = 1 <= len(by_role["temporal"]) <= min(MAX_TEMPORAL, max(1, len(by_role["fps1"]))) and all(
                max(r["width"], r["height"]) == TEMPORAL_LONG_SIDE and (r["width"] >= r["height"]) == landscape
                for r in by_role["temporal"])
            frame_check["fps1_within_1"] += fps1_ok
            frame_check["spatial_ok"] += spatial_ok
            frame_check["temporal_ok"] += temporal_ok
            if not (fps1_ok and spatial_ok and temporal_ok):
                frame_check["problems"].append({"clip_id": c["clip_id"], "duration_s": round(duration, 3),
                                                **{k: len(v) for k, v in by_role.items()}})

    wer = round(jiwer.wer(refs, hyps), 4) if refs else None
    timing = round(n_timed / n_sentences, 4) if n_sentences else None
    clip_share = round(clip_count["right"] / clip_count["videos"], 4) if clip_count["videos"] else None
    frames_ok = frame_check["clips"] > 0 and frame_check["fps1_within_1"] == frame_check["spatial_ok"] == \
        frame_check["temporal_ok"] == frame_check["clips"]
    return {
        "videos_scored": matched,
        "shots": {**shot_score.as_dict(), "transition_labels": labels, "bar_f1": 0.95, "pass": shot_score.f1 >= 0.95},
        "asr": {"videos": audio_videos, "sentences": n_sentences, "wer": wer, "timed_within": n_timed,
                "timing_share": timing, "voiceover_correct": voiceover_right,
                "pass": wer is not None and wer <= 0.25 and timing is not None and timing >= 0.9},
        "clips": {**clip_count, "share": clip_share, "pass": clip_share is not None and clip_share >= 0.9},
        "frames": {**frame_check, "pass": frames_ok},
    }
