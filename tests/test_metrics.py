"""The editing metrics against cases worked by hand from their definitions."""

from __future__ import annotations

import pytest

from adlake.evaluate.metrics import (
    clip_order_accuracy,
    clip_selection_accuracy,
    count_words,
    hit_at_k,
    kendall_tau,
    mean_or_none,
    mean_reciprocal_rank,
    pairwise_order_accuracy,
    segment_subtitles,
    sequence_remix_accuracy,
    shot_selection_prf,
    subtitle_segmentation_accuracy,
    subtitle_segmentation_check,
    subtitle_segmentation_ok,
    subtitle_units,
    target_words,
    word_count_deviation,
)

CREAM = "这款面霜保湿效果很好，适合干性皮肤使用。"
COFFEE = "Fresh coffee every morning, delivered to your door."

# --- clip sequences -------------------------------------------------------------------------------


def test_sequence_remix_accuracy_needs_every_position() -> None:
    assert sequence_remix_accuracy(["a", "b", "c"], ["a", "b", "c"]) == 1.0
    assert sequence_remix_accuracy(["a", "c", "b"], ["a", "b", "c"]) == 0.0
    assert sequence_remix_accuracy(["a", "b"], ["a", "b", "c"]) == 0.0  # a prefix is not the sequence


def test_clip_selection_accuracy_is_overlap_over_the_larger_set() -> None:
    assert clip_selection_accuracy(["a", "b", "c"], ["a", "b", "d"]) == pytest.approx(2 / 3)
    assert clip_selection_accuracy(["a", "b"], ["a", "b", "c", "d"]) == 0.5
    assert clip_selection_accuracy(["b", "a", "c"], ["a", "b", "c"]) == 1.0  # order does not matter
    superset = clip_selection_accuracy(["a", "b", "c", "x"], ["a", "b", "c"])
    assert superset == pytest.approx(3 / 4) and superset < 1
    assert clip_selection_accuracy(["a"], []) is None


def test_clip_order_accuracy_counts_matching_positions() -> None:
    assert clip_order_accuracy(["a", "b", "c", "d"], ["a", "c", "b", "d"]) == 0.5
    assert clip_order_accuracy(["a", "b"], ["a", "b", "c"]) == pytest.approx(2 / 3)
    assert clip_order_accuracy(["a", "b", "c"], ["a", "b"]) == pytest.approx(2 / 3)
    assert clip_order_accuracy([], []) is None


def test_kendall_tau_over_common_clips() -> None:
    truth = ["a", "b", "c", "d"]
    assert kendall_tau(["d", "c", "b", "a"], truth) == pytest.approx(-1.0)
    assert kendall_tau(truth, truth) == pytest.approx(1.0)
    # one adjacent swap: 5 concordant, 1 discordant of 6 pairs
    assert kendall_tau(["a", "c", "b", "d"], truth) == pytest.approx((5 - 1) / 6)
    # clips outside the intersection are ignored: x and e are not common
    assert kendall_tau(["x", "a", "c", "b", "d"], [*truth, "e"]) == pytest.approx(2 / 3)
    assert kendall_tau(["a", "x"], ["a", "y"]) is None
    assert kendall_tau([], truth) is None


def test_pairwise_order_accuracy() -> None:
    truth = ["a", "b", "c", "d"]
    assert pairwise_order_accuracy(["a", "c", "b", "d"], truth) == pytest.approx(5 / 6)
    assert pairwise_order_accuracy(["d", "c", "b", "a"], truth) == 0.0
    assert pairwise_order_accuracy(truth, truth) == 1.0
    assert pairwise_order_accuracy(["a"], truth) is None


def test_shot_selection_precision_recall_f1() -> None:
    scores = shot_selection_prf(["a", "b", "c"], ["b", "c", "d", "e"])
    assert scores["precision"] == pytest.approx(2 / 3)
    assert scores["recall"] == pytest.approx(1 / 2)
    assert scores["f1"] == pytest.approx(4 / 7)
    assert shot_selection_prf(["x"], ["y"]) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    assert shot_selection_prf([], ["y"]) == {"precision": None, "recall": 0.0, "f1": None}
    assert shot_selection_prf(["x"], []) == {"precision": 0.0, "recall": None, "f1": None}


# --- words and units ------------------------------------------------------------------------------


def test_count_words_mixes_cjk_characters_and_latin_words() -> None:
    assert count_words("Buy 2 now, don't wait!") == 5
    assert count_words("这款面霜很好") == 6
    assert count_words("新款 iPhone 15 到货") == 2 + 1 + 1 + 2
    assert count_words("，。！ ...") == 0


def test_word_count_deviation() -> None:
    script = "Buy one today and get a second one free for your family"
    assert count_words(script) == 12
    assert target_words(4, 2.5) == 10
    assert word_count_deviation(script, 4, 2.5) == 2
    assert word_count_deviation(script, 6, 2.0) == 0
    assert target_words(1, 2.5) == 3  # half rounds up


def test_subtitle_units() -> None:
    assert subtitle_units("你好") == 2
    assert subtitle_units("ab c") == pytest.approx(0.4 * 3 + 0.5)
    assert subtitle_units("你好，world") == pytest.approx(2 + 5 * 0.4)
    assert subtitle_units("！？,.") == 0


# --- subtitle segmentation ------------------------------------------------------------------------


def test_correct_chinese_segmentation_passes() -> None:
    result = subtitle_segmentation_check(CREAM, ["这款面霜保湿效果很好", "适合干性皮肤使用"])
    assert result == {"ok": True, "violations": []}
    # punctuation in the segments is ignored
    assert subtitle_segmentation_ok(CREAM, ["这款面霜保湿效果很好，", "适合干性皮肤使用。"])


def test_splitting_a_word_fails_and_names_it() -> None:
    result = subtitle_segmentation_check(CREAM, ["这款面", "霜保湿效果很好", "适合干性皮肤使用"])
    assert not result["ok"]
    assert any("面霜" in violation for violation in result["violations"])


def test_a_ten_unit_piece_may_not_use_two_segments() -> None:
    # "这款面霜|保湿效果很好" splits no word, but ceil(10 / 10) = 1 segment is all the piece may use
    result = subtitle_segmentation_check(CREAM, ["这款面霜", "保湿效果很好", "适合干性皮肤使用"])
    assert not result["ok"]
    assert len(result["violations"]) == 1 and "at most 1" in result["violations"][0]
    # with 5 units per segment the piece may use ceil(10 / 5) = 2
    assert subtitle_segmentation_ok(
        CREAM, ["这款面霜", "保湿效果很好", "适合干性皮肤使用"], units_per_segment=5
    )


def test_a_segment_over_max_units_fails() -> None:
    script = "这款面霜保湿效果很好而且很温和。"  # one 15-unit piece: ceil(15 / 10) = 2 segments allowed
    result = subtitle_segmentation_check(script, ["这款面霜保湿效果很好而且很温和"])
    assert not result["ok"]
    assert len(result["violations"]) == 1 and "15 units" in result["violations"][0]
    assert subtitle_segmentation_ok(script, ["这款面霜保湿效果", "很好而且很温和"])
    assert subtitle_segmentation_ok(script, ["这款面霜保湿效果很好而且很温和"], max_units=15)


def test_dropped_or_added_text_fails() -> None:
    dropped = subtitle_segmentation_check(CREAM, ["这款面霜保湿效果很", "适合干性皮肤使用"])
    assert not dropped["ok"]
    assert dropped["violations"][0].startswith("segments do not reproduce the script")
    assert not subtitle_segmentation_ok(CREAM, ["适合干性皮肤使用", "这款面霜保湿效果很好"])  # out of order
    assert not subtitle_segmentation_ok(CREAM, ["这款面霜保湿效果很好", "适合干性皮肤使用哦"])
    assert not subtitle_segmentation_ok(CREAM, ["这款面霜保湿效果很好", "", "适合干性皮肤使用"])


def test_english_segmentation() -> None:
    split_word = subtitle_segmentation_check(
        COFFEE, ["Fresh cof", "fee every morning", "delivered to your door"]
    )
    assert not split_word["ok"]
    assert any('"coffee"' in violation for violation in split_word["violations"])
    # "Fresh coffee every morning" is 10.7 units, so it may take 2 segments
    assert subtitle_segmentation_ok(COFFEE, ["Fresh coffee", "every morning", "delivered to your door"])
    assert subtitle_segmentation_ok(COFFEE, ["Fresh coffee every morning,", "delivered to your door."])
    # "delivered to your door" is 9.1 units: one segment only
    assert not subtitle_segmentation_ok(COFFEE, ["Fresh coffee every morning", "delivered to", "your door"])
    # whitespace is normalised, but words may not be glued together
    assert subtitle_segmentation_ok(COFFEE, ["  Fresh   coffee ", "every morning", "delivered to your door"])
    assert not subtitle_segmentation_ok(COFFEE, ["Freshcoffee", "every morning", "delivered to your door"])


def test_mixed_chinese_and_english() -> None:
    script = "新款 iPhone 15 到货啦，don't wait！"
    assert subtitle_segmentation_ok(script, ["新款 iPhone 15 到货啦", "don't wait"])
    assert subtitle_segmentation_ok(script, ["新款iPhone 15到货啦", "dont wait"])  # CJK spacing optional
    result = subtitle_segmentation_check(script, ["新款 iPh", "one 15 到货啦", "don't wait"])
    assert any('"iPhone"' in violation for violation in result["violations"])
    result = subtitle_segmentation_check(script, ["新款 iPhone 15 到货啦", "don'", "t wait"])
    assert any('"don\'t"' in violation for violation in result["violations"])


def test_subtitle_segmentation_accuracy() -> None:
    good = (CREAM, ["这款面霜保湿效果很好", "适合干性皮肤使用"])
    bad = (CREAM, ["这款面", "霜保湿效果很好", "适合干性皮肤使用"])
    assert subtitle_segmentation_accuracy([good, bad, good, good]) == 0.75
    assert subtitle_segmentation_accuracy([]) is None


SCRIPTS = [
    CREAM,
    COFFEE,
    "这款面霜保湿效果很好而且很温和。",
    "我们的新款面霜今天正式上市欢迎大家来购买保湿效果很好适合干性皮肤使用的面霜产品",
    "新款 iPhone 15 到货啦！限时特惠，买一送一，don't wait — only 3.5 dollars, save 20% today!",
    "Our new kettle boils a full litre in under three minutes and switches itself off when done.",
    "「限时抢购」全场商品五折起，仅限今天！",
]


@pytest.mark.parametrize("script", SCRIPTS)
def test_segment_subtitles_output_passes_the_check(script: str) -> None:
    segments = segment_subtitles(script)
    assert subtitle_segmentation_check(script, segments) == {"ok": True, "violations": []}
    assert segment_subtitles(script) == segments  # deterministic


def test_segment_subtitles_worked_examples() -> None:
    assert segment_subtitles(CREAM) == ["这款面霜保湿效果很好", "适合干性皮肤使用"]
    # 10.7 units -> 2 segments of 4.9 and 5.3 units; the 9.1-unit piece stays whole
    assert segment_subtitles(COFFEE) == ["Fresh coffee", "every morning", "delivered to your door"]
    assert segment_subtitles("") == []


def test_segment_subtitles_keeps_an_overlong_word_whole() -> None:
    script = "Supercalifragilisticexpialidocious stuff"  # the first word alone is 13.6 units
    assert segment_subtitles(script) == ["Supercalifragilisticexpialidocious", "stuff"]


# --- retrieval and helpers ------------------------------------------------------------------------


def test_hit_at_k_and_mean_reciprocal_rank() -> None:
    ranked = ["x", "a", "y"]
    assert hit_at_k(ranked, "a", 1) == 0.0
    assert hit_at_k(ranked, "a", 2) == 1.0
    assert hit_at_k(ranked, {"y", "z"}, 2) == 0.0
    assert hit_at_k(ranked, {"y", "z"}, 3) == 1.0
    assert mean_reciprocal_rank([(ranked, "a"), (["a"], "a"), (["x"], "a")]) == pytest.approx(0.5)
    assert mean_reciprocal_rank([(["x", "y", "b"], {"b", "y"})]) == pytest.approx(1 / 2)
    assert mean_reciprocal_rank([]) is None


def test_mean_or_none() -> None:
    assert mean_or_none([1.0, None, 0.0]) == 0.5
    assert mean_or_none([None, None]) is None
    assert mean_or_none([]) is None
