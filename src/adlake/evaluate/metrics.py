"""Metrics for scoring ad-video editing models (the VC-LLM and AutoCut papers).

Pure functions over plain Python values: clip sequences are lists of string ids, scripts and
subtitles are strings. Each docstring gives the exact definition. Where a metric is undefined for
an input (no true clips, fewer than two common clips, no queries) the function returns None rather
than a made-up number, so reports can tell "undefined" from "zero".

Text conventions shared by the word, unit and subtitle metrics:

* "Wide" characters are CJK ideographs, kana and hangul: each is one word and one subtitle unit.
* Punctuation is Unicode punctuation (category P*: ，。！？；：、,.!?;: quotes, brackets, dashes) plus
  ~ and ～, except symbol-like marks (% # & @ * / \\ _) which are kept as text.
* A "joiner" is punctuation that belongs inside a word rather than between words: an apostrophe or
  hyphen between two (non-wide) letters/digits ("don't", "Aurora-5") or . , : between two digits
  ("3.5", "1,000", "10:30"). Joiners neither split the script into pieces nor separate words.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

# Han (incl. extensions and compatibility ideographs, 々 and 〇) and kana: scripts written without
# spaces, so their word boundaries come from jieba.
_JIEBA_CHARS = (
    "\u3005\u3007\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
    "\u3041-\u309f\u30a1-\u30fa\u30fc-\u30ff\u31f0-\u31ff"
    "\U00020000-\U0003134f"
)
# Hangul counts as wide (one unit, one word per syllable) but Korean separates words with spaces.
_HANGUL_CHARS = "\u1100-\u11ff\u3130-\u318f\uac00-\ud7af"
_WIDE_CHARS = _JIEBA_CHARS + _HANGUL_CHARS

_JIEBA_RE = re.compile(f"[{_JIEBA_CHARS}]")
_WIDE_RE = re.compile(f"[{_WIDE_CHARS}]")
# A word is one wide character, or a maximal run of other letters/digits with inner apostrophes.
_WORD_RE = re.compile(f"[{_WIDE_CHARS}]|[^\\W_{_WIDE_CHARS}]+(?:['’][^\\W_{_WIDE_CHARS}]+)*")

_EXTRA_PUNCT = frozenset("~～")
# Unicode files these under punctuation, but in ad copy they carry meaning ("20%", "#1", "B&B").
_SYMBOLIC = frozenset("%‰‱#&@*/\\_％＃＆＠＊／＼＿")
_LETTER_JOINERS = frozenset("'’-‐")
_DIGIT_JOINERS = frozenset(".,:")

# Units are counted in integer tenths so 0.4-per-letter sums stay exact (25 letters is 10.0, not
# 10.000000000000002, which would otherwise change a ceil()).
_WIDE_TENTHS = 10
_ALNUM_TENTHS = 4
_SPACE_TENTHS = 5
_EPS = 1e-9


# --------------------------------------------------------------------------------------------------
# Clip sequences (VC-LLM / AutoCut remix and selection)
# --------------------------------------------------------------------------------------------------


def sequence_remix_accuracy(predicted: Sequence[str], truth: Sequence[str]) -> float:
    """SRA: 1.0 when `predicted` equals `truth` at every position (same length), else 0.0.

    Two empty sequences are equal, so they score 1.0.
    """
    return 1.0 if list(predicted) == list(truth) else 0.0


def clip_selection_accuracy(predicted: Sequence[str], truth: Sequence[str]) -> float | None:
    """CSA: |set(predicted) ∩ set(truth)| / max(|set(predicted)|, |set(truth)|).

    1.0 exactly when the selected set equals the true set; order and repeats are ignored.
    None when `truth` is empty (there is nothing to select, so accuracy is undefined).
    """
    predicted_set, truth_set = set(predicted), set(truth)
    if not truth_set:
        return None
    return len(predicted_set & truth_set) / max(len(predicted_set), len(truth_set))


def clip_order_accuracy(predicted: Sequence[str], truth: Sequence[str]) -> float | None:
    """CRA: the number of positions i with predicted[i] == truth[i], divided by
    max(len(predicted), len(truth)) so that missing or extra clips count as wrong positions.

    None when both sequences are empty.
    """
    longest = max(len(predicted), len(truth))
    if longest == 0:
        return None
    return sum(p == t for p, t in zip(predicted, truth, strict=False)) / longest


def _first_positions(sequence: Sequence[str]) -> dict[str, int]:
    # A clip used twice is placed by its first use, so each clip has one position.
    positions: dict[str, int] = {}
    for index, clip in enumerate(sequence):
        positions.setdefault(clip, index)
    return positions


def _common_positions(predicted: Sequence[str], truth: Sequence[str]) -> list[tuple[int, int]]:
    """(predicted position, true position) of each clip in both, in true order."""
    predicted_at, truth_at = _first_positions(predicted), _first_positions(truth)
    common = sorted(predicted_at.keys() & truth_at.keys(), key=truth_at.__getitem__)
    return [(predicted_at[clip], truth_at[clip]) for clip in common]


def kendall_tau(predicted: Sequence[str], truth: Sequence[str]) -> float | None:
    """Kendall's tau-b (scipy.stats.kendalltau) between the predicted and the true positions of
    the clips present in both sequences (a repeated clip is placed by its first occurrence).

    Positions are distinct, so there are no ties and tau-b = (concordant − discordant) / pairs.
    None when fewer than 2 clips are common.
    """
    pairs = _common_positions(predicted, truth)
    if len(pairs) < 2:
        return None
    from scipy.stats import kendalltau  # scipy.stats is slow to import; only this metric needs it

    predicted_positions, true_positions = zip(*pairs, strict=True)
    return float(kendalltau(predicted_positions, true_positions, variant="b").statistic)


def pairwise_order_accuracy(predicted: Sequence[str], truth: Sequence[str]) -> float | None:
    """Over all pairs of clips present in both sequences, the share of pairs whose relative order
    in `predicted` agrees with `truth` (a repeated clip is placed by its first occurrence).

    None when fewer than 2 clips are common.
    """
    pairs = _common_positions(predicted, truth)  # sorted by true position
    if len(pairs) < 2:
        return None
    agreeing = total = 0
    for i in range(len(pairs)):
        for j in range(i + 1, len(pairs)):
            total += 1
            agreeing += pairs[i][0] < pairs[j][0]
    return agreeing / total


def shot_selection_prf(predicted: Iterable[str], truth: Iterable[str]) -> dict[str, float | None]:
    """Set precision, recall and F1 of the selected shots.

    precision = |P ∩ T| / |P| (None when P is empty); recall = |P ∩ T| / |T| (None when T is empty);
    f1 = 2PR / (P + R), None when either is None and 0.0 when both are 0.
    """
    predicted_set, truth_set = set(predicted), set(truth)
    hits = len(predicted_set & truth_set)
    precision = hits / len(predicted_set) if predicted_set else None
    recall = hits / len(truth_set) if truth_set else None
    if precision is None or recall is None:
        f1 = None
    elif precision + recall == 0:
        f1 = 0.0
    else:
        f1 = 2 * precision * recall / (precision + recall)
    return {"precision": precision, "recall": recall, "f1": f1}


# --------------------------------------------------------------------------------------------------
# Script length (word count deviation)
# --------------------------------------------------------------------------------------------------


def count_words(text: str) -> int:
    """Words in `text`: each CJK ideograph, kana or hangul character is one word; any other word
    is a maximal run of letters/digits, apostrophes inside it allowed ("don't" is one word).
    Punctuation, symbols and whitespace are not words.
    """
    return len(_WORD_RE.findall(text))


def target_words(duration_s: float, words_per_second: float) -> int:
    """The word budget of a clip: duration_s × words_per_second rounded half up (2.5 → 3).

    Half up rather than Python's round-half-to-even, so the target does not depend on parity.
    """
    if duration_s < 0 or words_per_second < 0:
        raise ValueError("duration_s and words_per_second must not be negative")
    # The epsilon absorbs float noise such as 0.1 * 25 = 2.5000000000000004 or 2.4999999999999996.
    return math.floor(duration_s * words_per_second + 0.5 + _EPS)


def word_count_deviation(script: str, duration_s: float, words_per_second: float) -> int:
    """WCD = |count_words(script) − target_words(duration_s, words_per_second)|."""
    return abs(count_words(script) - target_words(duration_s, words_per_second))


# --------------------------------------------------------------------------------------------------
# Subtitle units and segmentation (SSA)
# --------------------------------------------------------------------------------------------------


def _is_wide(ch: str) -> bool:
    return _WIDE_RE.match(ch) is not None


def _is_jieba(ch: str) -> bool:
    return _JIEBA_RE.match(ch) is not None


def _is_narrow_alnum(ch: str) -> bool:
    return ch.isalnum() and not _is_wide(ch)


def _is_punct(ch: str) -> bool:
    if ch in _EXTRA_PUNCT:
        return True
    return unicodedata.category(ch).startswith("P") and ch not in _SYMBOLIC


def _char_tenths(ch: str) -> int:
    if _is_wide(ch):
        return _WIDE_TENTHS
    if ch.isalnum():
        return _ALNUM_TENTHS
    if ch.isspace():
        return _SPACE_TENTHS
    return 0  # punctuation, symbols, emoji


def _tenths(text: str) -> int:
    return sum(_char_tenths(ch) for ch in text)


def subtitle_units(text: str) -> float:
    """Display width of subtitle text: each CJK character (ideograph, kana, hangul) counts 1, each
    other letter or digit 0.4, each whitespace character 0.5; punctuation and symbols count 0.
    """
    return _tenths(text) / 10


def _is_joiner(text: str, index: int) -> bool:
    ch = text[index]
    if index == 0 or index == len(text) - 1:
        return False
    before, after = text[index - 1], text[index + 1]
    if ch in _LETTER_JOINERS:
        return _is_narrow_alnum(before) and _is_narrow_alnum(after)
    if ch in _DIGIT_JOINERS:
        return before.isdigit() and after.isdigit()
    return False


def _normalise_spaces(text: str) -> str:
    return " ".join(text.split())


def _display_tenths(segment: str) -> int:
    """Units of a segment as shown: outer spaces/punctuation stripped, inner whitespace runs as one."""
    start, end = 0, len(segment)
    while start < end and (segment[start].isspace() or _is_punct(segment[start])):
        start += 1
    while end > start and (segment[end - 1].isspace() or _is_punct(segment[end - 1])):
        end -= 1
    return _tenths(_normalise_spaces(segment[start:end]))


@dataclass(frozen=True)
class _Layout:
    """The characters of a text that segmentation is judged on: everything except whitespace,
    punctuation and joiners ("kept" characters), with where they came from."""

    text: str
    chars: str  # the kept characters, in order
    positions: tuple[int, ...]  # index in `text` of each kept character
    spaced: tuple[bool, ...]  # whitespace or punctuation separates kept char i from kept char i-1
    piece_of: tuple[int, ...]  # which punctuation-delimited piece kept char i belongs to

    def pieces(self) -> list[tuple[int, int]]:
        """[start, end) ranges of kept characters, one per piece that has any."""
        ranges: list[tuple[int, int]] = []
        start = 0
        for index in range(1, len(self.chars) + 1):
            if index == len(self.chars) or self.piece_of[index] != self.piece_of[start]:
                ranges.append((start, index))
                start = index
        return ranges

    def source(self, start: int, end: int) -> str:
        """The original text spanned by kept characters [start, end), whitespace normalised."""
        return _normalise_spaces(self.text[self.positions[start] : self.positions[end - 1] + 1])


def _layout(text: str) -> _Layout:
    chars: list[str] = []
    positions: list[int] = []
    spaced: list[bool] = []
    piece_of: list[int] = []
    piece, gap, breaks = 0, False, False
    for index, ch in enumerate(text):
        if ch.isspace():
            gap = True
        elif _is_punct(ch):
            if _is_joiner(text, index):
                continue  # inside a word: neither a gap nor a piece boundary
            gap = breaks = True
        else:
            if breaks and chars:
                piece += 1
            spaced.append(gap and bool(chars))
            chars.append(ch)
            positions.append(index)
            piece_of.append(piece)
            gap = breaks = False
    return _Layout(text, "".join(chars), tuple(positions), tuple(spaced), tuple(piece_of))


@lru_cache(maxsize=4096)
def _jieba_words(run: str) -> tuple[str, ...]:
    import jieba  # heavy (loads a dictionary); only CJK text needs it

    jieba.setLogLevel(60)
    words = tuple(word for word in jieba.lcut(run) if word)
    if "".join(words) != run:  # jieba returns a partition of its input; anything else is a bug
        raise RuntimeError(f"jieba did not partition {run!r}: {words!r}")
    return words


def _tokens(layout: _Layout, start: int, end: int) -> list[tuple[int, int]]:
    """Word spans [start, end) over kept characters of one piece, covering it completely.

    Runs of Han/kana are cut into words by jieba; any other run (Latin, digits, hangul, symbols)
    between whitespace and script changes is one word.
    """
    tokens: list[tuple[int, int]] = []
    run_start = start
    for index in range(start + 1, end + 1):
        if (
            index < end
            and not layout.spaced[index]
            and _is_jieba(layout.chars[index]) == _is_jieba(layout.chars[index - 1])
        ):
            continue
        if _is_jieba(layout.chars[run_start]):
            offset = run_start
            for word in _jieba_words(layout.chars[run_start:index]):
                tokens.append((offset, offset + len(word)))
                offset += len(word)
        else:
            tokens.append((run_start, index))
        run_start = index
    return tokens


def _allowed_segments(tenths: int, units_per_segment: float) -> int:
    return math.ceil(tenths / (units_per_segment * 10) - _EPS)


def _check_limits(max_units: float, units_per_segment: float) -> None:
    if max_units <= 0 or units_per_segment <= 0:
        raise ValueError("max_units and units_per_segment must be positive")


def _first_difference(expected: str, got: str) -> str:
    for index, (a, b) in enumerate(zip(expected, got, strict=False)):
        if a != b:
            return f'at character {index + 1}: script has "{a}", segments have "{b}"'
    if len(got) < len(expected):
        return f'segments stop before "{expected[len(got) :]}"'
    return f'segments add "{got[len(expected) :]}"'


def subtitle_segmentation_check(
    script: str, segments: Sequence[str], max_units: float = 13, units_per_segment: float = 10
) -> dict[str, Any]:
    """Check one clip's subtitle segmentation; returns {"ok": bool, "violations": [str, ...]}.

    ok is True only when all of these hold (judged on the script's kept characters, i.e. with
    whitespace, punctuation and joiners removed):

    (a) the segments' kept characters, concatenated, equal the script's: the segments cover the
        script exactly and in order. Whitespace is normalised: how much of it there is does not
        matter, and between CJK characters it is optional, but inside a segment two letters/digits
        must be separated exactly when they are in the script ("coffeeevery" does not reproduce
        "coffee every"). Every segment must show something (an empty one is a violation).
    (b) every segment is at most `max_units` units (subtitle_units after stripping outer spaces and
        punctuation and collapsing inner whitespace runs to one space).
    (c) splitting the script at punctuation into pieces, each piece is overlapped (by at least one
        kept character) by at most ceil(units(piece) / units_per_segment) segments; a piece with
        kept characters but 0 units (symbols only) may use 1.
    (d) no segment boundary falls strictly inside a word: jieba words for Han/kana runs, otherwise
        whitespace/punctuation-delimited tokens (joiners stay inside: "don't", "3.5").

    When (a) fails the segments cannot be placed on the script, so only (a) and (b) are reported.
    """
    _check_limits(max_units, units_per_segment)
    violations: list[str] = []
    target = _layout(script)
    layouts = [_layout(segment) for segment in segments]

    # (a) coverage, in order
    for number, layout in enumerate(layouts, start=1):
        if not layout.chars:
            violations.append(f"segment {number} is empty")
    joined = "".join(layout.chars for layout in layouts)
    placed = joined == target.chars
    if not placed:
        violations.append(f"segments do not reproduce the script ({_first_difference(target.chars, joined)})")
    segment_of: list[int] = []
    if placed:
        for number, layout in enumerate(layouts, start=1):
            offset = len(segment_of)
            for index in range(1, len(layout.chars)):
                here, before = layout.chars[index], layout.chars[index - 1]
                if (
                    _is_narrow_alnum(here)
                    and _is_narrow_alnum(before)
                    and layout.spaced[index] != target.spaced[offset + index]
                ):
                    violations.append(
                        f'segments do not reproduce the script (segment {number} "{segments[number - 1]}"'
                        " is spaced differently)"
                    )
                    break
            segment_of.extend([number] * len(layout.chars))

    # (b) width of each segment
    for number, segment in enumerate(segments, start=1):
        tenths = _display_tenths(segment)
        if tenths > max_units * 10 + _EPS:
            violations.append(
                f'segment {number} "{segment}" has {tenths / 10:g} units, more than {max_units:g}'
            )

    if not placed:
        return {"ok": False, "violations": violations}

    pieces = target.pieces()
    # (c) segments per punctuation-delimited piece
    for start, end in pieces:
        text = target.source(start, end)
        tenths = _tenths(text)
        allowed = _allowed_segments(tenths, units_per_segment) if tenths else 1
        used = len(set(segment_of[start:end]))
        if used > allowed:
            violations.append(
                f'piece "{text}" ({tenths / 10:g} units) is shown in {used} segments, at most {allowed} allowed'
            )

    # (d) words kept whole
    for start, end in pieces:
        for word_start, word_end in _tokens(target, start, end):
            if len(set(segment_of[word_start:word_end])) > 1:
                violations.append(f'word "{target.source(word_start, word_end)}" is split across segments')

    return {"ok": not violations, "violations": violations}


def subtitle_segmentation_ok(
    script: str, segments: Sequence[str], max_units: float = 13, units_per_segment: float = 10
) -> bool:
    """SSA for one clip: True only when subtitle_segmentation_check finds no violation."""
    return bool(subtitle_segmentation_check(script, segments, max_units, units_per_segment)["ok"])


def subtitle_segmentation_accuracy(items: Sequence[tuple[str, Sequence[str]]]) -> float | None:
    """SSA over clips: the share of (script, segments) pairs that pass subtitle_segmentation_ok
    (default limits). None for an empty list.
    """
    if not items:
        return None
    return sum(subtitle_segmentation_ok(script, segments) for script, segments in items) / len(items)


def _split_piece(
    layout: _Layout, tokens: list[tuple[int, int]], max_units: float, units_per_segment: float
) -> list[str]:
    """Split one piece's words into ceil(units / units_per_segment) contiguous groups of roughly
    equal units, each within max_units; more groups only when no such split exists."""
    count = len(tokens)
    # Group units from prefix sums: a group's text is its words plus one space per inner gap.
    word_prefix = [0]
    gap_prefix = [0]
    for index, (start, end) in enumerate(tokens):
        word_prefix.append(word_prefix[-1] + _tenths(layout.source(start, end)))
        gap_prefix.append(gap_prefix[-1] + (index > 0 and layout.spaced[start]))

    def group_tenths(first: int, stop: int) -> int:  # words [first, stop)
        inner_gaps = gap_prefix[stop] - gap_prefix[first + 1]
        return word_prefix[stop] - word_prefix[first] + _SPACE_TENTHS * inner_gaps

    limit = max_units * 10
    piece_tenths = group_tenths(0, count)
    wanted = max(1, _allowed_segments(piece_tenths, units_per_segment))
    # Words wider than max_units cannot be helped; this is the overflow every split must carry.
    unavoidable = sum(max(0.0, group_tenths(i, i + 1) - limit) for i in range(count))

    def best_split(groups: int) -> tuple[float, list[int]]:
        """Minimum (overflow, squared deviation from the mean) split into exactly `groups`."""
        mean = piece_tenths / groups
        best: list[list[tuple[float, float, int] | None]] = [[None] * (count + 1) for _ in range(groups + 1)]
        best[0][0] = (0.0, 0.0, -1)
        for group in range(1, groups + 1):
            for stop in range(group, count + 1):
                for first in range(group - 1, stop):
                    previous = best[group - 1][first]
                    if previous is None:
                        continue
                    width = group_tenths(first, stop)
                    cost = (previous[0] + max(0.0, width - limit), previous[1] + (width - mean) ** 2, first)
                    current = best[group][stop]
                    if current is None or cost[:2] < current[:2]:
                        best[group][stop] = cost
        cuts, stop = [], count
        for group in range(groups, 0, -1):
            cuts.append(stop)
            stop = best[group][stop][2]  # type: ignore[index]
        final = best[groups][count]
        assert final is not None
        return final[0], [0, *reversed(cuts)]

    for groups in range(min(wanted, count), count + 1):
        overflow, bounds = best_split(groups)
        if overflow <= unavoidable + _EPS:
            break
    return [
        layout.source(tokens[first][0], tokens[stop - 1][1])
        for first, stop in zip(bounds, bounds[1:], strict=False)
    ]


def segment_subtitles(script: str, max_units: float = 13, units_per_segment: float = 10) -> list[str]:
    """Deterministic rule-based subtitle segmentation, used to derive target segments.

    The script is split at punctuation into pieces (punctuation is dropped from the output); each
    piece is split at word boundaries (jieba words for Han/kana, whitespace tokens otherwise) into
    ceil(units / units_per_segment) segments whose units are as equal as possible (least squares),
    each at most max_units. Only if that is impossible are more segments used, each within
    max_units, except a single word wider than max_units, which stays whole. The output passes
    subtitle_segmentation_ok whenever some segmentation of the script can.
    """
    _check_limits(max_units, units_per_segment)
    layout = _layout(script)
    segments: list[str] = []
    for start, end in layout.pieces():
        segments.extend(_split_piece(layout, _tokens(layout, start, end), max_units, units_per_segment))
    return segments


# --------------------------------------------------------------------------------------------------
# Retrieval
# --------------------------------------------------------------------------------------------------


def _truth_set(truth: str | Iterable[str]) -> set[str]:
    ids = {truth} if isinstance(truth, str) else set(truth)
    if not ids:
        raise ValueError("a query needs at least one true id")
    return ids


def hit_at_k(ranked: Sequence[str], truth: str | Iterable[str], k: int) -> float:
    """Hit@k: 1.0 if any true id is among the first k ranked ids, else 0.0."""
    if k < 1:
        raise ValueError("k must be at least 1")
    true_ids = _truth_set(truth)
    return 1.0 if any(item in true_ids for item in ranked[:k]) else 0.0


def mean_reciprocal_rank(rankings: Sequence[tuple[Sequence[str], str | Iterable[str]]]) -> float | None:
    """MRR: the mean over queries of 1 / rank of the first true id in the ranking (ranks start at 1;
    0 when no true id is ranked). None when there are no queries.
    """
    if not rankings:
        return None
    total = 0.0
    for ranked, truth in rankings:
        true_ids = _truth_set(truth)
        total += next((1 / rank for rank, item in enumerate(ranked, start=1) if item in true_ids), 0.0)
    return total / len(rankings)


def mean_or_none(values: Iterable[float | None]) -> float | None:
    """The mean of the values that are not None; None when there are none."""
    present = [value for value in values if value is not None]
    return sum(present) / len(present) if present else None
