"""The synthetic corpus: its media match its own ground truth when probed with ffprobe."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from adlake.synth import generate_metadata_manifest, probe
from adlake.synth.corpus import MAX_AD_S, _plan_ads

pytestmark = [pytest.mark.media, pytest.mark.slow]


def truth(corpus: Path) -> dict:
    return json.loads((corpus / "ground_truth.json").read_text())


def test_media_match_ground_truth(corpus: Path) -> None:
    gt = truth(corpus)
    good = {k: t for k, t in gt["ads"].items() if t["kind"] != "bad"}
    assert len(good) == 4
    for ad_id, t in good.items():
        p = probe(corpus / t["file"])
        assert abs(p["duration_s"] - t["duration_s"]) <= 0.1, ad_id
        assert (p["width"], p["height"]) == (t["width"], t["height"]), ad_id
        assert p["has_video"] and p["has_audio"] == t["has_audio"], ad_id
        assert 2 <= t["scenes"] <= 8 and len(t["shots"]) == t["scenes"]
        assert all(2.0 - 0.05 <= s["end_s"] - s["start_s"] + (0.6 if s["transition"] == "dissolve" else 0) <= 8.7
                   for s in t["shots"]), ad_id
        if t["has_voiceover"]:
            assert len(t["sentences"]) == t["scenes"]
            for s, shot in zip(t["sentences"], t["shots"], strict=True):
                # each sentence is spoken inside its own scene
                assert shot["start_s"] <= s["start_s"] < s["end_s"] <= shot["end_s"], (ad_id, s, shot)
        else:
            assert t["sentences"] == []


def test_bad_inputs_are_what_they_claim(corpus: Path) -> None:
    gt = truth(corpus)["ads"]
    assert (corpus / gt["bad_empty"]["file"]).stat().st_size == 0
    assert (corpus / gt["bad_duplicate"]["file"]).read_bytes() == (corpus / gt["ad00000"]["file"]).read_bytes()
    long = probe(corpus / gt["bad_too_long"]["file"])
    assert long["duration_s"] > MAX_AD_S and abs(long["duration_s"] - gt["bad_too_long"]["duration_s"]) <= 0.1
    assert (corpus / gt["bad_playlist"]["file"]).read_text().startswith("#EXTM3U")
    assert not (corpus / "videos" / "does_not_exist.mp4").exists()
    truncated = corpus / gt["bad_truncated"]["file"]
    assert 0 < truncated.stat().st_size < (corpus / gt["ad00000"]["file"]).stat().st_size


def test_manifest_has_a_row_per_expected_outcome(corpus: Path) -> None:
    gt = truth(corpus)
    manifest = pq.read_table(corpus / "manifest.parquet")
    assert manifest.num_rows == gt["manifest_rows"] == len(gt["ads"])
    outcomes = [t["expected"]["outcome"] for t in gt["ads"].values()]
    assert set(outcomes) == {"selected", "filtered", "quarantined"}
    classes = {t["expected"].get("error_class") for t in gt["ads"].values()} - {None}
    assert {"truncated", "empty", "not_a_video", "unsafe_playlist", "http_error", "missing_field", "bad_url",
            "duplicate_ad_id", "bad_value"} <= classes
    assert all(u.startswith(gt["base_url"] + "/") for u in manifest["url"].to_pylist() if u and "ftp" not in u)


def test_planning_is_deterministic_per_seed() -> None:
    a, b = _plan_ads(12, random.Random(5)), _plan_ads(12, random.Random(5))
    c = _plan_ads(12, random.Random(6))
    assert a == b and a != c
    kinds = {p.kind for p in a}
    assert kinds == {"voiceover", "music_only", "silent"}
    assert {p.size[0] > p.size[1] for p in a} == {True, False}  # portrait and landscape


def test_metadata_only_manifest(tmp_path: Path) -> None:
    s1 = generate_metadata_manifest(tmp_path / "a.parquet", rows=20_000, seed=3)
    s2 = generate_metadata_manifest(tmp_path / "b.parquet", rows=20_000, seed=3)
    a, b = pq.read_table(tmp_path / "a.parquet"), pq.read_table(tmp_path / "b.parquet")
    assert a.equals(b) and {**s1, "manifest": ""} == {**s2, "manifest": ""}
    assert a.num_rows == 20_000
    assert 0 < s1["bad_rows"] < 200 and s1["duplicate_urls"] > 0
    assert 1 < s1["products"] < 20_000
    assert len(set(a["ad_id"].to_pylist())) == 20_000
