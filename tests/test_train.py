"""The editor LLM's pieces on a tiny model: the vocabulary extension, assistant-only labels and overlong
samples, stage 1's freezing, reproducibility from the seed, and answers constrained to the candidates."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from adlake.config import LlmStageConf, TinyLlmConf
from adlake.tokenizer.tokenize import ad_sequence
from adlake.tokenizer.vocab import SPECIAL_TOKENS, code_tokens, vocabulary
from adlake.train import data as D
from adlake.train.generate import answer
from adlake.train.llm import FreezeViolated, fingerprint, tiny_model, train_stage
from adlake.train.vocab import VocabularyError, extend, init_new_rows, plain_text, tiny_base_tokenizer

TEXTS = ["Product: trail shoes. Selling points: light; waterproof. Pick the clips and put them in order.",
         "C1: Step into the rain without a second thought.", '[{"clip": "C3", "script": "Light as air.", '
         '"subtitles": ["Light as air."]}]', "Which clips belong to this product's ad? C1, C2, C4"] * 3
pytestmark = pytest.mark.usefixtures("one_torch_thread")


TINY = TinyLlmConf(hidden_size=32, layers=1, heads=2, kv_heads=1, intermediate_size=64, base_vocab=300)


def ad(rng: np.random.Generator, levels: int = 8, codes: int = 256) -> str:
    clips = [{"script": f"clip {i} says something"} for i in range(3)]
    frames = [[code_tokens("video", rng.integers(0, codes, levels)) for _ in range(2)] for _ in clips]
    return ad_sequence(clips, frames, [code_tokens("audio", rng.integers(0, codes, levels))])


@pytest.fixture(scope="module")
def tokenizer():
    tok = tiny_base_tokenizer(TEXTS, TINY.base_vocab)
    ext = extend(tok, [vocabulary("video", 8, 256), vocabulary("audio", 8, 256)])
    return tok, ext


@pytest.fixture(scope="module")
def small():
    """A 4 × 16 extension: training tests run on it in seconds."""
    tok = tiny_base_tokenizer(TEXTS, TINY.base_vocab)
    return tok, extend(tok, [vocabulary("video", 4, 16), vocabulary("audio", 4, 16)])


def test_the_extension_adds_exactly_levels_x_codes_x_modalities_plus_markers_and_round_trips(tokenizer) -> None:
    tok, ext = tokenizer
    assert ext.added == ext.expected == 8 * 256 * 2 + len(SPECIAL_TOKENS)
    assert len(tok) == ext.first_id + ext.added
    assert set(tok.additional_special_tokens) >= set(SPECIAL_TOKENS)
    for t in ("<v_0_0>", "<v_7_255>", "<a_3_17>", "<|frame_start|>"):
        ids = tok(t, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1 and ids[0] >= ext.first_id, t
    seq = ad(np.random.default_rng(0))
    ids = tok(seq, add_special_tokens=False)["input_ids"]
    n_codes = seq.count("<v_") + seq.count("<a_")
    assert sum(i >= ext.first_id for i in ids) == n_codes + sum(seq.count(s) for s in SPECIAL_TOKENS)
    text = tok.decode(ids, skip_special_tokens=False)
    assert text == seq
    assert tok(text, add_special_tokens=False)["input_ids"] == ids
    assert plain_text(seq).count("<") == 0


def test_a_vocabulary_cannot_be_added_twice_or_clash(tokenizer) -> None:
    tok, _ = tokenizer
    with pytest.raises(VocabularyError, match="already has"):
        extend(tok, [vocabulary("video", 8, 256)])
    fresh = tiny_base_tokenizer(TEXTS, TINY.base_vocab)
    with pytest.raises(VocabularyError, match="two vocabularies"):
        extend(fresh, [vocabulary("video", 8, 256), vocabulary("video", 4, 16)])


def test_answers_carry_the_loss_and_overlong_samples_are_counted_never_silent() -> None:
    enc = D.Encoded()
    enc.add("t", [1, 2, 3], [4, 5], seq_len=8, overlong="drop")
    assert enc.labels[0].tolist() == [-100, -100, -100, 4, 5]
    enc.add("t", [1] * 7, [4, 5], seq_len=8, overlong="drop")
    enc.add("u", [1] * 7, [4, 5], seq_len=8, overlong="truncate")
    enc.add("u", [1] * 9, [4, 5], seq_len=8, overlong="truncate")  # nothing of the answer would be left
    assert enc.report()["dropped_overlong"] == {"t": 1, "u": 1}
    assert enc.report()["truncated_overlong"] == {"u": 1}
    assert enc.labels[1].tolist() == [-100] * 7 + [4] and enc.report()["sequences"] == 2


def test_a_vc_clip_shown_as_images_becomes_its_video_tokens() -> None:
    inputs = SimpleNamespace(view_clip={"s3://a/c1_s.jpg": "c1", "s3://a/c1_t.jpg": "c1", "s3://a/c2_s.jpg": "c2"},
                             clip_tokens={"c1": "<|frame_start|><v_0_1><|frame_end|>"})
    messages = json.dumps({"system": "sys", "images": ["s3://a/c1_s.jpg", "s3://a/c1_t.jpg", "s3://a/c2_s.jpg"],
                           "conversations": [{"from": "human", "value": "[C1] 2.0s <image><image>\n[C2] 1.0s <image>"},
                                             {"from": "gpt", "value": "C2, C1"}]})
    prompt, answer_text, untokenized = D.as_text(messages, inputs)
    assert "<|clip_start|><|video_start|><|frame_start|><v_0_1><|frame_end|><|video_end|><|clip_end|>" in prompt
    assert "[C2] 1.0s <|clip_start|><|video_start|><|video_end|><|clip_end|>" in prompt and untokenized == 1
    assert prompt.endswith("<|im_start|>assistant\n") and answer_text == "C2, C1<|im_end|>"


def _data(tok, n: int = 12, seed: int = 0) -> D.Encoded:
    rng = np.random.default_rng(seed)
    return D.encode_sequences(tok, [ad(rng, 4, 16) for _ in range(n)], seq_len=512, overlong="drop")


def _model(tok, ext, seed: int = 0):
    model = tiny_model(TINY, ext.first_id, 512, seed)
    model.resize_token_embeddings(len(tok), mean_resizing=False)
    init_new_rows(model, ext, "mean", None, seed)
    return model


STAGE = LlmStageConf(steps=6, lr=0.05, batch_size=4)


def test_stage_one_trains_only_the_new_rows(small) -> None:
    tok, ext = small
    model = _model(tok, ext)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = train_stage(model, _data(tok), STAGE, stage="stage1", first_new=ext.first_id, pad_id=0,
                         dev=torch.device("cpu"), dtype=torch.float32, seed=0)
    after = model.state_dict()
    rows = {"model.embed_tokens.weight", "lm_head.weight"}
    for name, value in after.items():
        old = before[name]
        if name in rows:
            assert torch.equal(value[: ext.first_id], old[: ext.first_id]), name
            assert not torch.equal(value[ext.first_id:], old[ext.first_id:]), f"{name}: the new rows did not train"
        else:
            assert torch.equal(value, old), f"{name} moved in stage 1"
    assert result.frozen_changed == [] and result.loss[-1] < result.loss[0]
    assert result.trainable_params == 2 * ext.added * TINY.hidden_size
    # the digest notices a frozen weight that moves
    first = fingerprint(model, ext.first_id)
    with torch.no_grad():
        model.model.norm.weight[0] += 1e-3
    assert fingerprint(model, ext.first_id)["model.norm.weight"] != first["model.norm.weight"]
    with torch.no_grad():
        model.lm_head.weight[0, 0] += 1e-3  # an old row of the output layer
    assert fingerprint(model, ext.first_id)["lm_head.weight"] != first["lm_head.weight"]


def test_stage_one_refuses_to_pass_when_a_frozen_weight_moves(small, monkeypatch) -> None:
    tok, ext = small
    model = _model(tok, ext)
    real_step = torch.optim.AdamW.step

    def leaky_step(self, *a, **k):
        out = real_step(self, *a, **k)
        with torch.no_grad():
            model.model.norm.weight.add_(1e-3)  # a bug that trains a frozen weight
        return out

    monkeypatch.setattr(torch.optim.AdamW, "step", leaky_step)
    with pytest.raises(FreezeViolated, match="model.norm.weight"):
        train_stage(model, _data(tok), STAGE, stage="stage1", first_new=ext.first_id, pad_id=0,
                    dev=torch.device("cpu"), dtype=torch.float32, seed=0)


def _two_stages(tok, ext, seed: int) -> tuple[list[float], dict[str, torch.Tensor]]:
    model = _model(tok, ext, seed)
    data = _data(tok)
    cpu = torch.device("cpu")
    s1 = train_stage(model, data, STAGE, stage="stage1", first_new=ext.first_id, pad_id=0, dev=cpu,
                     dtype=torch.float32, seed=seed)
    s2 = train_stage(model, data, STAGE, stage="stage2", first_new=None, pad_id=0, dev=cpu, dtype=torch.float32,
                     seed=seed)
    return s1.loss + s2.loss, model.state_dict()


def test_a_training_run_is_reproducible_from_its_seed(small) -> None:
    tok, ext = small
    loss_a, weights_a = _two_stages(tok, ext, seed=3)
    loss_b, weights_b = _two_stages(tok, ext, seed=3)
    assert loss_a == loss_b
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)
    loss_c, weights_c = _two_stages(tok, ext, seed=4)
    assert loss_c != loss_a and not all(torch.equal(weights_a[k], weights_c[k]) for k in weights_a)


def test_answers_name_exactly_k_distinct_candidates(small) -> None:
    tok, ext = small
    model = _model(tok, ext).eval()
    labels = [f"C{i}" for i in range(1, 11)]
    got = answer(model, tok, "<|im_start|>user\npick 4<|im_end|>\n<|im_start|>assistant\n", labels, 4, 3,
                 torch.device("cpu"))
    assert len(got["clips"]) == len(set(got["clips"])) == 4 and set(got["clips"]) <= set(labels)
    assert len(got["scripts"]) == 4 and all('"' not in s for s in got["scripts"])
    few = answer(model, tok, "x", labels[:2], 5, 0, torch.device("cpu"))
    assert sorted(few["clips"]) == ["C1", "C2"] and "scripts" not in few


def test_a_local_checkpoint_from_conf_is_extended_and_its_new_rows_start_from_the_codes(tmp_path, small) -> None:
    """train.llm.model_path: a small checkpoint this test writes (model and tokenizer, as a Qwen3 folder has)
    loads offline, gains exactly the vocabulary, and its code rows differ from the mean rows."""
    from adlake.config import load_settings
    from adlake.tokenizer.registry import Tokenizer
    from adlake.tokenizer.rqvae import Rqvae, RqvaeConfig
    from adlake.train.editor_llm import build

    base = tiny_base_tokenizer(TEXTS, TINY.base_vocab)
    tiny_model(TINY, len(base), 512, seed=0).save_pretrained(tmp_path / "ckpt")
    base.save_pretrained(tmp_path / "ckpt")
    settings = load_settings(home=str(tmp_path), train={"llm": {"model_path": str(tmp_path / "ckpt")}})
    torch.manual_seed(0)
    rqvae = Rqvae(RqvaeConfig(input_dim=24, levels=4, codebook_size=16, code_dim=8, hidden_dim=16, kmeans_iters=2))
    rqvae(torch.randn(64, 24))  # k-means initialises the codebooks on the first batch
    rqvae.eval()
    tokenizers = [(Tokenizer("video", "1", rqvae, "enc", {}), vocabulary("video", 4, 16))]
    model, tok, ext, directions = build(settings, SimpleNamespace(samples=[], sequences=[]), tokenizers,
                                        torch.float32)
    assert ext.first_id == len(base) and ext.added == 4 * 16 + len(SPECIAL_TOKENS)
    assert model.get_input_embeddings().weight.shape[0] == len(tok) == len(base) + ext.added
    assert len(directions) == 4 * 16
    init = init_new_rows(model, ext, "codes", directions, seed=0)
    assert init["rows_from_codes"] == 4 * 16
    rows = model.get_input_embeddings().weight[ext.first_id:].detach()
    assert not torch.allclose(rows[0], rows[1]) and torch.allclose(rows[-1], rows[-2])  # codes differ; markers: mean
