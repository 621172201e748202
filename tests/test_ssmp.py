"""The SSMP shot-sequence model: mask schedule, decoding, learnability, reproducibility, input handling."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from adlake.evaluate.metrics import (
    clip_order_accuracy,
    kendall_tau,
    mean_or_none,
    sequence_remix_accuracy,
    shot_selection_prf,
)
from adlake.train.ssmp import (
    MaskSchedule,
    ShotEncoder,
    SSMPConfig,
    decode,
    remask_lowest,
    slot_confidence,
    train_ssmp,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --------------------------------------------------------------------------------------------------
# Mask schedule
# --------------------------------------------------------------------------------------------------


def test_mask_schedule_hand_worked():
    s = MaskSchedule(init=0.3, minimum=0.15, maximum=0.9, momentum=0.5, target=0.6, step=0.1)
    assert (s.ratio, s.mu_t, s.mu_a) == (0.3, 0.3, 0.0)
    # mu_a = 0.5*0 + 0.5*1 = 0.5, not above 0.6: ratio 0.3 - 0.1 = 0.2; mu_t = 0.5*0.3 + 0.5*0.2 = 0.25
    assert s.update(1.0) == pytest.approx(0.25)
    assert (s.mu_a, s.ratio) == pytest.approx((0.5, 0.2))
    # mu_a = 0.25 + 0.5 = 0.75 > 0.6: ratio 0.3; mu_t = 0.125 + 0.15 = 0.275
    assert s.update(1.0) == pytest.approx(0.275)
    # mu_a = 0.375 + 0.5 = 0.875: ratio 0.4; mu_t = 0.1375 + 0.2 = 0.3375
    assert s.update(1.0) == pytest.approx(0.3375)
    # mu_a = 0.4375 + 0 = 0.4375: ratio 0.3; mu_t = 0.16875 + 0.15 = 0.31875
    assert s.update(0.0) == pytest.approx(0.31875)
    assert (s.mu_a, s.ratio, s.mu_t) == pytest.approx((0.4375, 0.3, 0.31875))


def test_mask_schedule_default_momentum_and_clipping():
    s = MaskSchedule.from_config(SSMPConfig())
    # mu_a = 0.1 (not above 0.6): ratio 0.25; mu_t = 0.9*0.3 + 0.1*0.25 = 0.295
    assert s.update(1.0) == pytest.approx(0.295)

    up = MaskSchedule(init=0.85, minimum=0.15, maximum=0.9, momentum=0.0, target=0.6, step=0.1)
    assert up.update(1.0) == pytest.approx(0.9)  # 0.95 clipped to the maximum
    assert up.update(1.0) == pytest.approx(0.9)
    assert up.update(0.6) == pytest.approx(0.8)  # at the target (not above it) the ratio falls

    down = MaskSchedule(init=0.2, minimum=0.15, maximum=0.9, momentum=0.0, target=0.6, step=0.1)
    assert down.update(0.0) == pytest.approx(0.15)  # 0.1 clipped to the minimum
    assert down.update(0.0) == pytest.approx(0.15)


# --------------------------------------------------------------------------------------------------
# Decoding logic on a hand-built model
# --------------------------------------------------------------------------------------------------


def test_remask_lowest():
    confidence = np.array([0.5, 0.1, 0.5, 0.1, 0.9])
    assert remask_lowest(confidence, 1) == [1]
    assert remask_lowest(confidence, 3) == [0, 1, 3]  # 0.1, 0.1, then the 0.5 tie goes to slot 0
    assert remask_lowest(confidence, 0) == []
    assert remask_lowest(confidence, 9) == [0, 1, 2, 3, 4]


A, B, C = np.eye(3, dtype=np.float32)
CANDIDATES = np.stack([A, B, C])


class TwoSlotStub(torch.nn.Module):
    """Hand-written predictions for k=2 over the one-hot candidates A, B, C (indices 0, 1, 2).

    `first` gives slot 0's prediction keyed by slot 1's candidate (None: masked), `second` slot 1's
    keyed by slot 0's. Predictions are normalised, so logits are cosines / temperature.
    """

    def __init__(self, first: dict, second: dict) -> None:
        super().__init__()
        self.first, self.second = first, second

    def forward(self, context, slots, masked, pad):
        out = torch.zeros_like(slots)
        for b in range(len(slots)):
            shown = [None if masked[b, i] else int(slots[b, i].argmax()) for i in range(2)]
            out[b, 0] = torch.from_numpy(self.first[shown[1]])
            out[b, 1] = torch.from_numpy(self.second[shown[0]])
        return F.normalize(out, dim=-1)


def test_self_correction_fixes_an_early_greedy_commitment():
    # The truth is [B, A]. Alone, slot 0 wrongly and confidently predicts A; next to anything, B.
    # Slot 1 alone is torn between A and C; after A it predicts C, after B mostly A.
    model = TwoSlotStub({None: A, 0: B, 1: B, 2: B}, {None: A + C, 0: C, 1: A + 0.5 * C, 2: A})
    conf = SSMPConfig(temperature=0.1, correction_iters=4)
    # Round 1: slot 0 → A with p = e^10 / (e^10 + 2) ≈ 0.9999, beating slot 1's 0.4996 for A or C.
    # Round 2: slot 1 after A → C among the unused {B, C}.
    assert decode(model, CANDIDATES, 2, "greedy", conf) == [0, 2]

    # Confidence of [A, C]: slot 0 sees C and predicts B, so among {A, B} (C is slot 1's)
    # p(A) = 1 / (1 + e^10);
    # slot 1 sees A and predicts C, so among {B, C} p(C) = e^10 / (1 + e^10).
    confidence = slot_confidence(model, CANDIDATES, [0, 2], temperature=0.1)
    assert confidence == pytest.approx([1 / (1 + math.exp(10)), 1 / (1 + math.exp(-10))], rel=1e-4)
    assert remask_lowest(confidence, 1) == [0]
    # at temperature 1 the same: 1 / (1 + e) and e / (1 + e); not 1 / (2 + e) over all three candidates
    confidence = slot_confidence(model, CANDIDATES, [0, 2], temperature=1.0)
    assert confidence == pytest.approx([1 / (1 + math.e), math.e / (1 + math.e)], rel=1e-5)

    # Round 1 (m = 1) re-masks slot 0 → B: [B, C], total log-confidence ≈ -4.48 (slot 1 after B gives C
    # p = 1 / (1 + e^4.47)) against ≈ -10.0 before, so it is kept. Round 2 re-masks slot 1 → A: [B, A]
    # ≈ -0.011, kept. Rounds 3 and 4 re-fill slot 1 with A again: equal scores, nothing changes.
    assert decode(model, CANDIDATES, 2, "self_correct", conf) == [1, 0]
    assert decode(model, CANDIDATES, 2, "self_correct", SSMPConfig(correction_iters=0)) == [0, 2]


def test_greedy_fixes_the_most_confident_slot_first():
    # Slot 1 is sure of C from the start; slot 0 alone is torn between A and B, and after C predicts B.
    model = TwoSlotStub({None: A + B, 0: A, 1: A, 2: B}, {None: C, 0: C, 1: C, 2: C})
    # Round 1: slot 1 → C (p ≈ 0.9999 against slot 0's 0.4996); round 2: slot 0 after C → B.
    assert decode(model, CANDIDATES, 2, "greedy") == [1, 2]
    assert decode(model, CANDIDATES, 2, "self_correct") == [1, 2]


def test_self_correction_rejects_a_worse_refill():
    # Alone slot 0 predicts A; next to anything it leans to B (0.9A + B). Slot 1 after A predicts C,
    # after B A.
    lean = 0.9 * A + B
    model = TwoSlotStub({None: A, 0: lean, 1: lean, 2: lean}, {None: A + C, 0: C, 1: A, 2: A})
    assert decode(model, CANDIDATES, 2, "greedy") == [0, 2]
    # [A, C]: slot 0 p(A) among {A, B} = 1 / (1 + e^0.74) ≈ 0.32 is the lowest, re-filled with B. But
    # [B, C] scores log 0.68 + log(1 / (1 + e^10)) ≈ -10.4 against log 0.32 + log(≈1) ≈ -1.1, so every
    # round is rejected.
    assert decode(model, CANDIDATES, 2, "self_correct") == [0, 2]


# --------------------------------------------------------------------------------------------------
# The model itself
# --------------------------------------------------------------------------------------------------


def test_encoder_masks_padding_and_hidden_slots():
    torch.manual_seed(0)
    model = ShotEncoder(8, width=16, layers=2, heads=2).eval()
    context, slots = torch.randn(1, 8), torch.randn(1, 3, 8)
    masked = torch.tensor([[False, True, True]])
    with torch.no_grad():
        out = model(context, slots, masked, torch.zeros(1, 3, dtype=torch.bool))
        # padding slots (any content) change nothing for the real slots
        padded_slots = torch.cat([slots, 100 * torch.randn(1, 2, 8)], dim=1)
        padded = model(context, padded_slots, torch.tensor([[False, True, True, False, True]]),
                       torch.tensor([[False, False, False, True, True]]))
        # a masked slot's content is never read
        hidden = model(context, slots + torch.tensor([0.0, 1.0, 1.0])[None, :, None] * 7,
                       masked, torch.zeros(1, 3, dtype=torch.bool))
    assert out.shape == (1, 3, 8)
    assert torch.allclose(out.norm(dim=-1), torch.ones(1, 3))
    assert torch.allclose(padded[:, :3], out, atol=1e-6)
    assert torch.equal(hidden, out)
    # the two masked slots have the same input; only their positions (RoPE) tell them apart
    assert not torch.allclose(out[0, 1], out[0, 2], atol=1e-3)


# --------------------------------------------------------------------------------------------------
# Learnability on sequences whose selection and order are learnable by construction
# --------------------------------------------------------------------------------------------------

DIM = 32
Case = tuple[np.ndarray, list[str], list[str]]  # candidate vectors, their ids, the true ids in order


def _ads(rng: np.random.Generator, n: int, positions: np.ndarray) -> list[np.ndarray]:
    """Each ad: k in 4..6 clips = its product direction + 0.8 × a fixed vector per position + noise."""
    ads = []
    for _ in range(n):
        k = int(rng.integers(4, 7))
        product = rng.normal(size=DIM)
        product /= np.linalg.norm(product)
        noise = 0.6 * rng.normal(size=(k, DIM)) / math.sqrt(DIM)
        ads.append((product + 0.8 * positions[:k] + noise).astype(np.float32))
    return ads


def _benchmark(rng: np.random.Generator, ads: list[np.ndarray]) -> list[Case]:
    """Per held-out ad: its k clips plus k clips of other held-out ads, shuffled; (vectors, ids, truth)."""
    cases = []
    for i, ad in enumerate(ads):
        others = [(j, c) for j, other in enumerate(ads) if j != i for c in range(len(other))]
        picked = [others[p] for p in rng.choice(len(others), size=len(ad), replace=False)]
        entries = [(f"ad{i}-{c}", ad[c]) for c in range(len(ad))]
        entries += [(f"ad{j}-{c}", ads[j][c]) for j, c in picked]
        entries = [entries[p] for p in rng.permutation(len(entries))]
        truth = [f"ad{i}-{c}" for c in range(len(ad))]
        cases.append((np.stack([v for _, v in entries]), [name for name, _ in entries], truth))
    return cases


def _scores(predictions: list[list[str]], truths: list[list[str]]) -> dict[str, float | None]:
    pairs = list(zip(predictions, truths, strict=True))
    return {
        "tau": mean_or_none(kendall_tau(p, t) for p, t in pairs),
        "cra": mean_or_none(clip_order_accuracy(p, t) for p, t in pairs),
        "f1": mean_or_none(shot_selection_prf(p, t)["f1"] for p, t in pairs),
        "sra": mean_or_none(sequence_remix_accuracy(p, t) for p, t in pairs),
    }


def _learnability(seed: int) -> tuple[dict, dict, dict]:
    """Train on 200 ads, decode 30 held-out ones: (metrics per method, random baseline, own scores)."""
    rng = np.random.default_rng(seed)
    positions = rng.normal(size=(6, DIM))
    positions /= np.linalg.norm(positions, axis=1, keepdims=True)
    train, held_out = _ads(rng, 200, positions), _ads(rng, 30, positions)
    conf = SSMPConfig(width=64, layers=2, heads=4, steps=200, lr=2e-3, seed=seed)
    model, history = train_ssmp(train, conf)
    assert history["sequences"] == 200 and len(history["loss"]) == 200
    assert np.mean(history["loss"][-20:]) < np.mean(history["loss"][:20])

    cases = _benchmark(np.random.default_rng(seed + 1), held_out)
    truths = [truth for _, _, truth in cases]
    results, own_score = {}, {}
    for method in ("greedy", "self_correct"):
        picks = [decode(model, vectors, len(truth), method, conf) for vectors, _, truth in cases]
        named = [[case[1][j] for j in p] for p, case in zip(picks, cases, strict=True)]
        results[method] = _scores(named, truths)
        own_score[method] = [
            np.log(slot_confidence(model, case[0], p, conf.temperature)).sum()
            for p, case in zip(picks, cases, strict=True)
        ]
    baseline_rng = np.random.default_rng(seed + 2)
    random_picks = [[ids[j] for j in baseline_rng.permutation(len(ids))[: len(t)]] for _, ids, t in cases]
    return results, _scores(random_picks, truths), own_score


def test_learns_to_select_and_order_clips():
    results, random, own_score = _learnability(seed=0)
    for method in ("greedy", "self_correct"):
        assert results[method]["tau"] >= 0.6, results
        assert results[method]["cra"] >= random["cra"] + 0.3, (results, random)
        assert results[method]["f1"] >= 0.8, results
    # Self-correction never lowers its own score (total log-confidence) below greedy's, and on this
    # construction it is at least as good as greedy on the truth. That is not a law: the score is the model's,
    # and on other seeds it traded a right clip for one the model preferred (CRA up to 0.02 lower; README).
    assert all(s >= g - 1e-6 for s, g in zip(own_score["self_correct"], own_score["greedy"], strict=True))
    assert results["self_correct"]["cra"] >= results["greedy"]["cra"], results
    assert results["self_correct"]["tau"] >= results["greedy"]["tau"], results


# --------------------------------------------------------------------------------------------------
# Reproducibility and input handling
# --------------------------------------------------------------------------------------------------


def _small_data(seed: int = 0, n: int = 12, dim: int = 8) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(int(rng.integers(2, 6)), dim)).astype(np.float32) for _ in range(n)]


SMALL = {"width": 16, "layers": 1, "heads": 2, "steps": 15, "batch_size": 4}


def _without_time(history: dict) -> dict:
    return {name: value for name, value in history.items() if name != "seconds"}


def test_same_seed_gives_identical_weights_and_history():
    data = _small_data()
    torch.manual_seed(1)
    model_a, history_a = train_ssmp(data, SSMPConfig(**SMALL, seed=3))
    torch.manual_seed(2)  # the caller's torch RNG state does not matter
    model_b, history_b = train_ssmp(data, SSMPConfig(**SMALL, seed=3))
    model_c, history_c = train_ssmp(data, SSMPConfig(**SMALL, seed=4))
    state_a, state_b, state_c = model_a.state_dict(), model_b.state_dict(), model_c.state_dict()
    assert state_a.keys() == state_b.keys()
    assert all(torch.equal(state_a[name], state_b[name]) for name in state_a)
    assert _without_time(history_a) == _without_time(history_b)
    assert not all(torch.equal(state_a[name], state_c[name]) for name in state_a)
    assert history_a["loss"] != history_c["loss"]
    assert not model_a.training


def test_training_leaves_the_callers_rng_alone():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    train_ssmp(_small_data(), SSMPConfig(**SMALL))
    assert torch.equal(torch.rand(3), expected)


def test_history_follows_the_mask_schedule():
    conf = SSMPConfig(**SMALL, momentum=0.5, target_accuracy=0.2)
    seen: list[tuple[int, dict]] = []
    _, history = train_ssmp(_small_data(), conf, on_step=lambda step, record: seen.append((step, record)))
    assert [step for step, _ in seen] == list(range(conf.steps))
    assert [record["loss"] for _, record in seen] == history["loss"]
    schedule = MaskSchedule.from_config(conf)
    replayed = [conf.mask_ratio_init] + [schedule.update(acc) for acc in history["accuracy"][:-1]]
    assert history["mask_ratio"] == pytest.approx(replayed)
    assert all(0.0 <= acc <= 1.0 for acc in history["accuracy"])


def test_short_and_long_sequences_are_counted():
    data = _small_data()
    rng = np.random.default_rng(9)
    extra = [np.zeros((0, 8), np.float32), rng.normal(size=(1, 8)), rng.normal(size=(11, 8))]
    _, history = train_ssmp(data + extra, SSMPConfig(**SMALL, max_len=6))
    assert history["skipped_short"] == 2
    assert history["truncated"] == 1 + sum(len(s) > 6 for s in data)
    assert history["sequences"] == len(data) + 1
    assert history["steps"] == SMALL["steps"] and history["seconds"] > 0
    # truncation keeps the first max_len clips: the same run as with the cut sequence given
    model, cut_history = train_ssmp(data + [extra[2][:6]], SSMPConfig(**SMALL, max_len=6))
    assert cut_history["loss"] == history["loss"]
    with pytest.raises(ValueError):
        train_ssmp(extra[:2], SSMPConfig(**SMALL))


def test_decode_returns_distinct_indices():
    model, _ = train_ssmp(_small_data(), SSMPConfig(**SMALL))
    candidates = np.random.default_rng(3).normal(size=(4, 8)).astype(np.float32)
    for method in ("greedy", "self_correct"):
        picked = decode(model, candidates, 7, method, SSMPConfig(**SMALL))
        assert sorted(picked) == [0, 1, 2, 3]
        three = decode(model, candidates, 3, method, SSMPConfig(**SMALL))
        assert len(three) == len(set(three)) == 3 and set(three) <= {0, 1, 2, 3}
        assert decode(model, candidates, 0, method) == []
    with pytest.raises(ValueError):
        decode(model, candidates, 2, "beam")  # type: ignore[arg-type]
