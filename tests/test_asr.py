"""ASR on the synthetic corpus with the bundled tiny.en: words, sentence times, voiceover flag."""

from __future__ import annotations

from pathlib import Path

import pytest

from adlake.config import AsrConf
from adlake.evaluate.asr import normalise, score_corpus

pytestmark = [pytest.mark.media, pytest.mark.slow]


def test_normalisation_spells_numbers_and_drops_punctuation() -> None:
    assert normalise("Save 20% today!") == "save twenty percent today"
    assert normalise("It's the Aurora-5 kettle.") == "its the aurora five kettle"


def test_bundled_model_meets_the_bar_on_the_corpus(corpus: Path) -> None:
    score = score_corpus(corpus, AsrConf())
    assert score.sentences >= 5
    assert score.wer <= 0.25, score.as_dict()
    assert score.timing_share >= 0.9, score.as_dict()
    assert score.voiceover_correct == score.videos  # music-only ads are not voiceovers


def test_a_missing_model_path_is_a_clear_error(tmp_path: Path) -> None:
    from adlake.asr.transcribe import model_path

    with pytest.raises(FileNotFoundError, match="not a CTranslate2 Whisper model"):
        model_path(AsrConf(model_path=str(tmp_path)))
