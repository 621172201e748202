"""Shot boundaries on the synthetic corpus, scored against its ground truth; TransNetV2 as
parse.shots.detector: its post-processing on hand-made predictions, and the network on a short real decode."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from adlake.config import ShotsConf
from adlake.evaluate.shots import match, score_corpus


@pytest.mark.media
@pytest.mark.slow
def test_matching_is_one_to_one_within_tolerance() -> None:
    truth = [{"t_s": 2.0, "type": "cut"}, {"t_s": 2.3, "type": "dissolve"}, {"t_s": 9.0, "type": "cut"}]
    assert match([2.1], truth, 0.5) == (1, 0, 0)  # one detection cannot satisfy two boundaries
    assert match([2.1, 2.4, 5.0], truth, 0.5) == (1, 1, 1)
    assert match([9.6], truth, 0.5) == (0, 0, 1)


@pytest.mark.media
@pytest.mark.slow
def test_hard_cuts_are_found(corpus: Path) -> None:
    score = score_corpus(corpus, ShotsConf(), floor=True)
    assert score.videos == 4 and score.cuts > 0
    assert score.f1 >= 0.95, score.as_dict()
    assert score.seconds > 0 and score.floor_seconds > 0


@pytest.mark.media
@pytest.mark.slow
def test_on_real_footage_every_cut_and_dissolve_is_found_on_cpu(mixed_corpus: Path) -> None:
    """The CPU default (adaptive + the blend check) on the mixed corpus: real camera footage with real
    motion inside its shots, hard cuts and cross-dissolves between them."""
    score = score_corpus(mixed_corpus, ShotsConf(detector="adaptive"))
    assert score.dissolves > 0 and score.dissolve_hits == score.dissolves, score.as_dict()
    assert score.cut_hits == score.cuts and score.false_positives == 0, score.as_dict()


def test_a_run_of_transition_frames_is_one_boundary_starting_after_its_middle() -> None:
    from adlake.clips.transnet import boundaries_from

    middle, inside = np.zeros(100), np.zeros(100)
    middle[29], inside[29] = 0.9, 0.9  # a hard cut: the old shot's last frame is 29
    middle[60:62], inside[54:68] = 0.8, 0.8  # a dissolve over 14 frames, its middle at 60-61
    middle[90] = 0.4  # under the threshold: nothing
    assert boundaries_from(middle, inside, 0.5) == [(30, "cut"), (61, "dissolve")]
    middle[99] = 0.9  # a transition on the last frame starts no shot
    assert boundaries_from(middle, inside, 0.5) == [(30, "cut"), (61, "dissolve")]


def test_a_dissolve_found_by_the_blend_check_replaces_the_detectors_early_cut_next_to_it() -> None:
    from adlake.clips.shots import _with_blends

    cuts = [(50, "cut"), (120, "cut"), (200, "cut")]
    assert _with_blends(cuts, [126, 300], near=15) == [(50, "cut"), (126, "dissolve"), (200, "cut"),
                                                       (300, "dissolve")]


def test_a_frame_that_is_its_neighbours_mean_is_a_dissolve_and_a_cut_or_motion_is_not() -> None:
    from adlake.clips.shots import blends

    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 256, (2, 20, 32, 3)).astype(np.float32)
    fade = [a] * 20 + [(1 - w) * a + w * b for w in np.linspace(0, 1, 14)[1:-1]] + [b] * 20  # a 12-frame dissolve
    cut = [a] * 20 + [b] * 20
    moving = [np.roll(a, 2 * i, axis=1) for i in range(40)]  # a pan

    def as_frames(xs: list) -> np.ndarray:
        return np.stack(xs).round().astype(np.uint8)

    found = blends(as_frames(fade), half=8, min_change=15, max_residual=0.3)
    assert len(found) == 1 and abs(found[0] - 26) <= 1  # the dissolve's middle
    assert blends(as_frames(cut), half=8, min_change=15, max_residual=0.3) == []
    assert blends(as_frames(moving), half=8, min_change=15, max_residual=0.3) == []


@pytest.fixture(scope="module")
def cut_and_dissolve(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 s of each of three scenes: a hard cut at 3 s, a 0.6 s dissolve centred at 6.3 s."""
    video = tmp_path_factory.mktemp("shots") / "cut_and_dissolve.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=s=320x180:r=25:d=3", "-f", "lavfi",
                    "-i", "mandelbrot=s=320x180:r=25", "-f", "lavfi", "-i", "smptebars=s=320x180:r=25:d=3.6",
                    "-filter_complex", "[1:v]trim=duration=3.6,setpts=PTS-STARTPTS[m];"
                    "[m][2:v]xfade=transition=fade:duration=0.6:offset=3[x];[0:v][x]concat=n=2:v=1[v]",
                    "-map", "[v]", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(video)], check=True)
    return video


@pytest.mark.media
def test_the_adaptive_detector_with_the_blend_check_finds_the_cut_and_the_dissolve(cut_and_dissolve: Path) -> None:
    from adlake.clips.shots import boundaries, shots_of_file
    from adlake.config import ShotsConf

    shots = shots_of_file(cut_and_dissolve, ShotsConf(detector="adaptive"))
    assert boundaries(shots) == [pytest.approx(3.0, abs=0.05), pytest.approx(6.3, abs=0.1)]
    assert [s.transition for s in shots] == ["start", "cut", "dissolve"]


@pytest.mark.media
def test_transnetv2_finds_a_cut_and_a_dissolve_and_leaves_the_process_as_it_was(cut_and_dissolve: Path) -> None:
    import torch

    from adlake.clips.shots import boundaries, detect_shots, small_frames
    from adlake.config import ShotsConf
    from adlake.media.frames import decode_once

    video = cut_and_dissolve
    conf = ShotsConf(detector="transnetv2")
    torch.manual_seed(7)
    expected_draw = torch.rand(1)
    torch.manual_seed(7)
    decoded = decode_once(video, small_frames(conf), samples=False)
    assert decoded.small.shape[1:] == (27, 48, 3)
    shots = detect_shots(decoded, conf)
    assert torch.rand(1) == expected_draw  # the package seeds every RNG when it loads: put back
    assert not torch.are_deterministic_algorithms_enabled()
    assert boundaries(shots) == [pytest.approx(3.0, abs=0.05), pytest.approx(6.3, abs=0.1)]
    assert [s.transition for s in shots] == ["start", "cut", "dissolve"]
