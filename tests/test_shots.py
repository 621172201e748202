"""Shot boundaries on the synthetic corpus, scored against its ground truth."""

from __future__ import annotations

from pathlib import Path

import pytest

from adlake.config import ShotsConf
from adlake.evaluate.shots import match, score_corpus

pytestmark = [pytest.mark.media, pytest.mark.slow]


def test_matching_is_one_to_one_within_tolerance() -> None:
    truth = [{"t_s": 2.0, "type": "cut"}, {"t_s": 2.3, "type": "dissolve"}, {"t_s": 9.0, "type": "cut"}]
    assert match([2.1], truth, 0.5) == (1, 0, 0)  # one detection cannot satisfy two boundaries
    assert match([2.1, 2.4, 5.0], truth, 0.5) == (1, 1, 1)
    assert match([9.6], truth, 0.5) == (0, 0, 1)


def test_hard_cuts_are_found(corpus: Path) -> None:
    score = score_corpus(corpus, ShotsConf())
    assert score.videos == 4 and score.cuts > 0
    assert score.f1 >= 0.95, score.as_dict()
