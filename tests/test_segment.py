"""Clip segmentation: sentence pauses snapped to shot cuts, shot fallback, length and count rules."""

from __future__ import annotations

from adlake.clips.segment import segment
from adlake.config import ClipsConf

CONF = ClipsConf()


def spans(seg) -> list[tuple[float, float]]:
    return [(c.start_s, c.end_s) for c in seg.clips]


def test_voiceover_cuts_in_the_pauses_snapped_to_shot_cuts() -> None:
    sentences = [(0.5, 2.4, "Meet the lamp."), (4.2, 5.4, "It is bright."), (6.9, 8.7, "Buy it.")]
    seg = segment(10.0, sentences, shot_cuts=[3.9, 6.5], voiceover=True, conf=CONF)
    assert spans(seg) == [(0.0, 3.9), (3.9, 6.5), (6.5, 10.0)]
    assert [c.script for c in seg.clips] == ["Meet the lamp.", "It is bright.", "Buy it."]
    assert {c.source for c in seg.clips} == {"asr"} and seg.reason is None


def test_without_a_nearby_cut_the_pause_midpoint_is_used() -> None:
    sentences = [(0.5, 2.0, "One."), (4.0, 6.0, "Two.")]
    seg = segment(8.0, sentences, shot_cuts=[7.0], voiceover=True, conf=CONF)
    assert spans(seg) == [(0.0, 3.0), (3.0, 8.0)]


def test_no_voiceover_cuts_at_shots() -> None:
    seg = segment(12.0, [], shot_cuts=[3.0, 7.5], voiceover=False, conf=CONF)
    assert spans(seg) == [(0.0, 3.0), (3.0, 7.5), (7.5, 12.0)]
    assert {c.source for c in seg.clips} == {"shot"} and all(c.script == "" for c in seg.clips)


def test_short_clips_merge_into_the_shorter_neighbour() -> None:
    seg = segment(12.0, [], shot_cuts=[4.0, 5.0, 9.0], voiceover=False, conf=CONF)
    assert spans(seg) == [(0.0, 5.0), (5.0, 9.0), (9.0, 12.0)]
    assert all(c.duration_s >= CONF.min_clip_s for c in seg.clips)


def test_long_clips_split_at_inner_cuts_or_evenly() -> None:
    conf = ClipsConf(max_clip_s=10.0, max_duration_s=200)
    sentences = [(0.5, 24.0, "A very long sentence."), (25.0, 27.0, "Short.")]
    seg = segment(30.0, sentences, shot_cuts=[8.0, 16.0, 24.5], voiceover=True, conf=conf)
    assert spans(seg) == [(0.0, 8.0), (8.0, 16.0), (16.0, 24.5), (24.5, 30.0)]
    assert seg.clips[0].script == "A very long sentence." and seg.clips[1].script == ""
    even = segment(25.0, [], shot_cuts=[], voiceover=False, conf=conf)
    assert spans(even) == [(0.0, 8.333), (8.333, 16.667), (16.667, 25.0)]


def test_ads_outside_the_rules_get_a_reason() -> None:
    assert segment(5.0, [], shot_cuts=[], voiceover=False, conf=CONF).reason == "clip_count"  # one clip
    many = segment(40.0, [], shot_cuts=[3.0 * i for i in range(1, 13)], voiceover=False, conf=CONF)
    assert many.reason == "clip_count" and len(many.clips) > CONF.max_clips
    assert segment(130.0, [], shot_cuts=[60.0], voiceover=False, conf=CONF).reason == "too_long"


def test_sentences_split_at_full_stops_and_long_pauses_and_clip_to_speech() -> None:
    from types import SimpleNamespace as W

    from adlake.asr.sentences import split_sentences

    words = [W(word=" Meet", start=0.5, end=0.8, probability=0.9), W(word=" the", start=0.8, end=1.0, probability=0.9),
             W(word=" lamp", start=1.0, end=2.9, probability=0.9),  # Whisper's end runs into the pause
             W(word=" Order", start=3.5, end=3.9, probability=0.9), W(word=" now.", start=3.9, end=4.3, probability=0.9),
             W(word=" Really.", start=4.4, end=4.8, probability=0.9)]
    segments = [W(words=words, avg_logprob=-0.3)]
    regions = [(0.45, 1.9), (3.45, 4.9)]
    got = split_sentences(segments, regions, pause_split_s=0.6)
    assert [s.text for s in got] == ["Meet the lamp", "Order now.", "Really."]
    assert (got[0].start_s, got[0].end_s) == (0.5, 1.9)  # clipped to the speech the VAD heard
    assert [w.word for w in got[0].words] == ["Meet", "the", "lamp"]
    assert [s.text for s in split_sentences(segments, regions, pause_split_s=None)] == [
        "Meet the lamp Order now.", "Really."]
