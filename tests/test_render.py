"""adlake render: plans → MP4s, checked on the decoded output (issue 17, point 5)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from adlake.render import checks
from adlake.render.errors import PlanError
from adlake.render.graph import fit_filter
from adlake.render.resolve import load_plan, parse_plan
from adlake.render.ssmp import place_narrations
from schemas.edit_plan import Output
from tests.conftest import adlake_home

FPS = 25
SPANS = [(0.0, 2.0, "A red bicycle."), (2.0, 4.4, "Fast and light."), (4.4, 8.0, "Built to last.")]
TONE_HZ = 1000.0


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("render-media")
    src, bgm = d / "src.mp4", d / "tone.wav"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size=320x240:rate={FPS}:duration=8",
                    "-c:v", "libx264", "-g", "50", "-pix_fmt", "yuv420p", str(src)], check=True)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"sine=frequency={TONE_HZ:g}:duration=2.5",
                    "-ac", "2", str(bgm)], check=True)
    return {"src": src, "bgm": bgm, "dir": d}


@pytest.fixture(scope="module")
def library(media, tmp_path_factory):
    """A lake holding one real video and its three clips in silver.clips."""
    from adlake.lake import Lake
    from adlake.provenance import RunContext
    from adlake.synth.register import register_videos
    from schemas.registry import CLIPS

    with adlake_home(tmp_path_factory.mktemp("render-home")):
        lake = Lake(RunContext.create("test", run_id="render-test"))
        vid = register_videos(lake, [media["src"]])[0]
        rows = [{"clip_id": f"{vid}:{i}", "video_id": vid, "idx": i, "start_s": a, "end_s": b, "script": s,
                 "source": "shot", "run_id": "render-test"} for i, (a, b, s) in enumerate(SPANS)]
        lake.merge(CLIPS, pa.Table.from_pylist(rows, schema=CLIPS.schema))
        yield lake, vid


def plan_dict(vid: str, **extra) -> dict:
    return {"clips": [{"clip_id": f"{vid}:2", "script": "Fresh coffee every morning. Try it today."},
                      {"clip_id": f"{vid}:0", "script": "Order now."}],
            "output": {"width": 360, "height": 640}, **extra}


def render(lake, plan: dict, out: Path | None = None):
    from adlake.render.render import render_plan

    return render_plan(lake, parse_plan(plan), out=out)


def source_frame(media, output: Output, index: int) -> np.ndarray:
    return checks.frame(media["src"], (output.width, output.height), index=index, vf=f"{fit_filter(output)},setsar=1,format=yuv420p")


def picture(img: np.ndarray) -> np.ndarray:
    """The frame without its bottom fifth, where subtitles are burned in."""
    return img[: int(img.shape[0] * 0.8)]


@pytest.fixture(scope="module")
def with_music(library, media):
    lake, vid = library
    out = media["dir"] / "with_music.mp4"
    return render(lake, plan_dict(vid, bgm={"file": str(media["bgm"]), "gain_db": -6}), out), out


def test_a_plan_renders_to_an_mp4_of_its_clips_with_subtitles_music_and_loudness(library, media, with_music
                                                                                 ) -> None:
    lake, vid = library
    result, out = with_music
    info = checks.probe(out)
    video = next(s for s in info["streams"] if s["codec_type"] == "video")
    audio = next(s for s in info["streams"] if s["codec_type"] == "audio")
    assert video["codec_name"] == "h264" and audio["codec_name"] == "aac"
    assert (video["width"], video["height"]) == (360, 640) and checks.faststart(out)
    expected = (8.0 - 4.4) + 2.0  # the clips' own lengths: 90 + 50 frames
    assert abs(int(video["nb_frames"]) - expected * FPS) <= 1
    assert abs(float(info["format"]["duration"]) - expected) <= 1 / FPS + 0.03

    # each clip's frames are its source's frames, in the plan's order
    output = Output(width=360, height=640)
    for clip in result.clips:
        first_out = round(clip["start_s"] * FPS)
        for k in (3, clip["frames"] // 2, clip["frames"] - 2):
            got = checks.frame(out, (360, 640), index=first_out + k)
            want = source_frame(media, output, clip["source_first_frame"] + k)
            assert checks.ssim(picture(got), picture(want)) >= 0.98, (clip["clip_id"], k)
        # and not a neighbour's: one frame off scores lower on this moving test pattern
        assert checks.ssim(picture(checks.frame(out, (360, 640), index=first_out + 3)),
                           picture(source_frame(media, output, clip["source_first_frame"] + 13))) < 0.98

    # subtitles: the sidecars hold the plan's cues; burned-in text is in the frame during a cue, not before
    cues = checks.sidecar_cues(out.with_suffix(".srt"))
    assert [c["text"] for c in cues] == ["Fresh coffee", "every morning", "Try it today", "Order now"]
    assert checks.same_cues(cues, result.cues) and out.with_suffix(".vtt").read_text().startswith("WEBVTT")
    for cue in cues:
        mid = round((cue["start_s"] + cue["end_s"]) / 2 * FPS)
        band = checks.frame(out, (360, 640), index=mid)[int(640 * 0.8):]
        assert (band > 200).sum() > 150, cue
    assert (checks.frame(out, (360, 640), index=1)[int(640 * 0.8):] > 200).sum() == 0

    # the music is ducked under the narration: the tone is ≥ 6 dB lower while the narration speaks
    samples = checks.audio(out)
    spoken = checks.tone_level_db(samples, 16000, TONE_HZ, 0.6, 1.0)
    free = checks.tone_level_db(samples, 16000, TONE_HZ, 5.15, 5.55)
    assert free - spoken >= 6, (free, spoken)
    # loudness normalised (EBU R128)
    assert abs(checks.loudness(out) - lake.settings.render.loudness_lufs) <= 2.0
    # and `adlake render --check`'s checks, which measure the ducking on any music by projection, agree
    verdict = checks.verify(lake, parse_plan(plan_dict(vid, bgm={"file": str(media["bgm"]), "gain_db": -6})),
                            result, out)
    assert all(v["ok"] for v in verdict.values()), json.dumps(verdict)
    assert verdict["music_ducked"]["ducking_db"] >= 6


def test_narration_starts_where_the_plan_says(library, media) -> None:
    lake, vid = library
    out = media["dir"] / "voice_only.mp4"
    result = render(lake, plan_dict(vid), out)
    samples = checks.audio(out)
    for clip in result.clips:
        t = checks.onset(samples, 16000, clip["narration_start_s"])
        assert t is not None and abs(t - clip["narration_start_s"]) <= 0.1, (clip, t)


def test_the_same_plan_renders_once_and_a_changed_plan_renders_again(library, media, with_music) -> None:
    lake, vid = library
    first, out = with_music
    mtime = Path(first.mp4_uri).stat().st_mtime_ns
    again = render(lake, plan_dict(vid, bgm={"file": str(media["bgm"]), "gain_db": -6}))
    assert again.cached and again.digest == first.digest and Path(again.mp4_uri).stat().st_mtime_ns == mtime
    changed = render(lake, plan_dict(vid, bgm={"file": str(media["bgm"]), "gain_db": -9}))
    assert not changed.cached and changed.digest != first.digest


def test_dissolves_overlap_the_clips(library, media) -> None:
    lake, vid = library
    out = media["dir"] / "dissolve.mp4"
    result = render(lake, plan_dict(vid, transition="dissolve", dissolve_s=0.4), out)
    video = next(s for s in checks.probe(out)["streams"] if s["codec_type"] == "video")
    assert abs(int(video["nb_frames"]) - (5.6 - 0.4) * FPS) <= 1
    second = result.clips[1]
    assert abs(second["start_s"] - (3.6 - 0.4)) < 1e-6
    output = Output(width=360, height=640)
    mid_fade = round((second["start_s"] + 0.2) * FPS)
    a = picture(checks.frame(out, (360, 640), index=mid_fade))
    first_src = picture(source_frame(media, output, 110 + mid_fade))
    assert checks.ssim(a, first_src) < 0.98  # a blend of both clips, not the first alone
    late = round((second["start_s"] + 1.0) * FPS)
    assert checks.ssim(picture(checks.frame(out, (360, 640), index=late)),
                       picture(source_frame(media, output, 25))) >= 0.98


def test_chinese_subtitles_are_burned_with_a_cjk_font(library, media) -> None:
    lake, vid = library
    plan = {"clips": [{"clip_id": f"{vid}:0", "subtitles": [{"text": "新鲜咖啡", "start_s": 0.2, "end_s": 1.8}]}],
            "output": {"width": 360, "height": 640}}
    result = render(lake, plan, media["dir"] / "cjk.mp4")
    assert [c["text"] for c in result.cues] == ["新鲜咖啡"]
    band = checks.frame(media["dir"] / "cjk.mp4", (360, 640), index=25)[int(640 * 0.8):]
    assert (band > 200).sum() > 100


def test_chinese_subtitles_without_the_cjk_font_are_an_error_not_boxes(library, media, monkeypatch) -> None:
    from adlake.render.errors import RenderFailed

    lake, vid = library
    monkeypatch.setattr(lake.settings.render, "cjk_font", "No Such Font Family")
    plan = {"clips": [{"clip_id": f"{vid}:1", "subtitles": [{"text": "好", "start_s": 0.2, "end_s": 1.0}]}]}
    with pytest.raises(RenderFailed) as e:
        render(lake, plan, media["dir"] / "no_font.mp4")
    assert e.value.error_class == "render.font_missing" and not (media["dir"] / "no_font.mp4").exists()


def test_ssmp_places_narrations_in_order_on_clips_long_enough() -> None:
    # narration 0 fits clips 0 and 2, narration 1 only clip 2 (3 s): the DP must leave clip 2 to narration 1
    sim = np.array([[0.1, 0.0, 0.9], [0.0, 0.2, 0.5]])
    assert place_narrations(sim, [1.5, 2.5], [2.0, 1.0, 3.0]) == [0, 2]
    # order kept: 0.8 + 0.7 beats 0.1 + 0.7
    assert place_narrations(np.array([[0.1, 0.8, 0.0], [0.0, 0.0, 0.7]]), [1, 1], [2, 2, 2]) == [1, 2]
    with pytest.raises(ValueError, match="do not fit"):
        place_narrations(np.ones((2, 2)), [3.0, 1.0], [2.0, 2.0])


def test_narrations_given_apart_are_placed_by_ssmp(library, media) -> None:
    lake, vid = library
    plan = {"clips": [{"clip_id": f"{vid}:{i}"} for i in range(3)], "output": {"width": 320, "height": 240},
            "narrations": ["A red bicycle.", "Built to last."]}
    result = render(lake, plan)
    narrated = [c["clip_id"] for c in result.clips if c["narration_start_s"] is not None]
    assert narrated == [f"{vid}:0", f"{vid}:2"]  # each on the clip whose own script it matches
    assert [c["text"] for c in result.cues] == ["A red bicycle", "Built to last"]
    plan["narrations"] = ["Fast and light.", "A red bicycle."]  # order is kept: the second cannot go back
    narrated = [c["clip_id"] for c in render(lake, plan).clips if c["narration_start_s"] is not None]
    assert narrated[0] == f"{vid}:1" and narrated[1] == f"{vid}:2"


BAD = {
    "not_json": lambda vid: "{not json",
    "wrong_format": lambda vid: {"format": "otio", "clips": []},
    "unknown_version": lambda vid: {"version": 9, "clips": [{"clip_id": f"{vid}:0"}]},
    "invalid": lambda vid: {"clips": []},
    "invalid:duplicate": lambda vid: {"clips": [{"clip_id": f"{vid}:0"}, {"clip_id": f"{vid}:0"}]},
    "invalid:odd_size": lambda vid: {"clips": [{"clip_id": f"{vid}:0"}], "output": {"width": 361, "height": 640}},
    "unknown_clip": lambda vid: {"clips": [{"clip_id": f"{vid}:0"}, {"clip_id": "nope:7"}]},
    "missing_file": lambda vid: {"clips": [{"clip_id": f"{vid}:0"}], "bgm": {"file": "/no/such.wav"}},
    "bad_bgm": lambda vid: {"clips": [{"clip_id": f"{vid}:0"}], "bgm": {"entity_id": "not-a-window"}},
    "narration_too_long": lambda vid: {"clips": [{"clip_id": f"{vid}:0", "script": " ".join(["Extraordinary"] * 40)}]},
    "clip_too_short": lambda vid: {"clips": [{"clip_id": f"{vid}:0"}, {"clip_id": f"{vid}:1"}],
                                   "transition": "dissolve", "dissolve_s": 1.5},
    "narrations_do_not_fit": lambda vid: {"clips": [{"clip_id": f"{vid}:0"}],
                                          "narrations": [" ".join(["Extraordinary"] * 40)]},
}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_a_bad_plan_gets_its_own_clear_error_and_writes_nothing(kind, library, media, tmp_path) -> None:
    from adlake.media.store import MediaStore
    from adlake.render.render import render_plan

    lake, vid = library
    path = tmp_path / "plan.json"
    raw = BAD[kind](vid)
    path.write_text(raw if isinstance(raw, str) else json.dumps(raw))
    renders_before = set(MediaStore(lake.settings).files("renders"))
    out = tmp_path / "out.mp4"
    with pytest.raises(PlanError) as e:
        render_plan(lake, load_plan(path), out=out)
    assert e.value.error_class == f"plan.{kind.split(':')[0]}"
    assert str(e.value).strip() and "Traceback" not in str(e.value)
    assert not list(tmp_path.glob("out*")) and set(MediaStore(lake.settings).files("renders")) == renders_before


def _seq(clips: list[list[str]], script: str = "Hi.", audio: str = "") -> str:
    body = "".join(f"<|clip_start|><|text_start|>{script}<|text_end|><|video_start|>"
                   + "".join(f"<|frame_start|>{f}<|frame_end|>" for f in frames) + "<|video_end|><|clip_end|>"
                   for frames in clips)
    return f"<|ad_start|>{body}{audio}<|ad_end|>"


F = "<v_0_1><v_1_2>"


def test_a_token_sequence_reads_back_into_clips_frames_and_audio() -> None:
    from adlake.render.sequence import parse_sequence

    parsed = parse_sequence(_seq([[F, F], [F]], audio="<|audio_start|><a_0_3><a_1_4><|audio_end|>"), 2, 2)
    assert [len(c.frames) for c in parsed.clips] == [2, 1] and parsed.clips[0].script == "Hi."
    assert parsed.audio == ["<a_0_3><a_1_4>"]


MODEL_OUTPUT_ERRORS = {
    "unknown_token": (_seq([[F]]).replace("<|text_end|>", "<|txt_end|>"), "position 43"),
    "unknown_token:code": (_seq([["<v_0_1><x_1_2>"]]), "position"),
    "bad_nesting": (_seq([[F]])[len("<|ad_start|>"):], "position 0"),
    "bad_nesting:after_end": (_seq([[F]]) + "<|clip_start|>", "after <|ad_end|>"),
    "bad_codes": (_seq([["<v_1_1><v_0_2>"]]), "level 0"),
    "bad_codes:partial": (_seq([["<v_0_1>"]]), "level 1"),
    "empty_clip": (_seq([[]]), "no frame tokens"),
    "empty_plan": ("<|ad_start|><|ad_end|>", "no clip"),
}


@pytest.mark.parametrize("kind", sorted(MODEL_OUTPUT_ERRORS))
def test_bad_model_output_is_an_error_naming_its_position(kind) -> None:
    from adlake.render.sequence import parse_sequence

    text, says = MODEL_OUTPUT_ERRORS[kind]
    with pytest.raises(PlanError) as e:
        parse_sequence(text, 2, 2)
    assert e.value.error_class == f"plan.{kind.split(':')[0]}" and says in str(e.value), str(e.value)


SAMPLE = {"sample_id": "vc_benchmark:ad1", "product_id": "p1",
          "candidates": json.dumps([{"label": "C1", "clip_id": "v:0"}, {"label": "C2", "clip_id": "v:1"},
                                    {"label": "C3", "clip_id": "w:0"}])}


def test_a_compound_answer_becomes_a_plan_and_bad_answers_say_where() -> None:
    from adlake.render.plans import plan_from_compound

    plan = plan_from_compound(json.dumps([{"clip": "C2", "script": "Go.", "subtitles": ["Go"]},
                                          {"clip": "C1", "script": "Now."}]), SAMPLE)
    assert [c.clip_id for c in plan.clips] == ["v:1", "v:0"] and plan.clips[0].subtitles[0].text == "Go"
    for answer, kind, where in (("[{\"clip\": \"C1\"", "not_json", "position"),
                                ("[]", "empty_plan", "answer"),
                                ("[{\"clip\": \"C9\"}]", "unknown_clip", "answer[0]"),
                                ("[{\"clip\": \"C1\"}, {\"clip\": \"C1\"}]", "clip_reused", "answer[1]"),
                                ("[{\"clip\": \"C1\", \"subtitles\": \"Go\"}]", "bad_answer", "answer[0].subtitles"),
                                ("[\"C1\"]", "bad_answer", "answer[0]")):
        with pytest.raises(PlanError) as e:
            plan_from_compound(answer, SAMPLE)
        assert e.value.error_class == f"plan.{kind}" and str(e.value).startswith(where), (answer, str(e.value))


def test_a_target_duration_cuts_the_ad_at_that_length(library, media) -> None:
    lake, vid = library
    out = media["dir"] / "target.mp4"
    result = render(lake, {**plan_dict(vid), "clips": [{"clip_id": f"{vid}:2"}, {"clip_id": f"{vid}:0"}],
                           "target_duration_s": 3.0}, out)
    video = next(s for s in checks.probe(out)["streams"] if s["codec_type"] == "video")
    assert int(video["nb_frames"]) == 3 * FPS and [c["clip_id"] for c in result.clips] == [f"{vid}:2"]
