"""open_clip and PANNs Cnn14 encoders load from local checkpoints only: each test builds a small (or
randomly initialised) model, saves it under tmp_path and loads it through the encoder's loader.

Slow (about 50 s on 2 cores): importing open_clip alone takes ~20 s, and Cnn14 is an 80M-parameter model.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from adlake.config import load_settings
from adlake.embed.encoders import (
    OpenClipImage,
    PannsCnn14,
    decode_image,
    encoder_id_for,
    open_clip_encoder_id,
    panns_encoder_id,
)

TINY_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 64, "layers": 2, "head_width": 32},
    "text_cfg": {"context_length": 16, "vocab_size": 128, "width": 32, "heads": 2, "layers": 1},
}

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Nothing may be downloaded: any connection attempt fails the test."""
    import socket

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[1:]}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="module")
def open_clip():
    import open_clip  # imported here, not at collection: it takes ~20 s

    return open_clip


def _jpeg(seed: int, size: tuple[int, int] = (48, 64)) -> bytes:
    import cv2

    img = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    return buf.tobytes()


def _tiny_clip(tmp_path, seed: int = 0, cfg: dict | None = None, name: str = "tiny-vit"):
    import open_clip

    """A tiny CLIP built from a config JSON: (json path, checkpoint path, the model)."""
    cfg = cfg or TINY_CLIP
    arch = tmp_path / f"{name}.json"
    arch.write_text(json.dumps(cfg))
    torch.manual_seed(seed)
    model = open_clip.CLIP(**cfg).eval()
    ckpt = tmp_path / f"{name}-{seed}.pt"
    torch.save(model.state_dict(), ckpt)
    return arch, ckpt, model


def _settings(tmp_path, **embed):
    return load_settings(home=str(tmp_path / "home"), embed=embed)


# -- open_clip ---------------------------------------------------------------------------------------------
def test_open_clip_loads_local_checkpoint_and_embeds(tmp_path, open_clip):
    arch, ckpt, clip = _tiny_clip(tmp_path)
    images = [_jpeg(1), _jpeg(2)]

    enc = OpenClipImage.load(str(arch), str(ckpt))
    assert enc.image_size == 32
    assert enc.info.name == "open_clip-tiny-vit" and enc.info.modality == "video" and enc.info.dim == 32
    assert enc.info.encoder_id == open_clip_encoder_id(str(arch), str(ckpt))
    assert not isinstance(enc.model, open_clip.CLIP) and not hasattr(enc.model, "token_embedding")  # image tower

    vectors = enc.embed(images)
    assert vectors.shape == (2, 32) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)

    # the same as open_clip's own image encoder on pixels normalised with open_clip's (OpenAI) statistics
    imagenet_mean = np.array([0.485, 0.456, 0.406], np.float32)[:, None, None]
    imagenet_std = np.array([0.229, 0.224, 0.225], np.float32)[:, None, None]
    clip_mean = np.array(open_clip.OPENAI_DATASET_MEAN, np.float32)[:, None, None]
    clip_std = np.array(open_clip.OPENAI_DATASET_STD, np.float32)[:, None, None]
    pixels = np.stack([(decode_image(b, 32) * imagenet_std + imagenet_mean - clip_mean) / clip_std for b in images])
    with torch.no_grad():
        expected = clip.encode_image(torch.from_numpy(pixels), normalize=True).numpy()
    np.testing.assert_allclose(vectors, expected, atol=1e-4)

    # deterministic across loads; the job's path (decode_image + embed_tensors) gives the same vectors
    again = OpenClipImage.load(str(arch), str(ckpt))
    np.testing.assert_allclose(again.embed(images), vectors, atol=1e-6)
    tensors = np.stack([decode_image(b, again.image_size) for b in images])
    np.testing.assert_allclose(again.embed_tensors(tensors), vectors, atol=1e-6)


def test_open_clip_checkpoint_layouts(tmp_path):
    arch, ckpt, clip = _tiny_clip(tmp_path)
    want = OpenClipImage.load(str(arch), str(ckpt)).embed([_jpeg(3)])

    wrapped = tmp_path / "wrapped.pt"  # a training checkpoint: under state_dict, DataParallel prefixes
    torch.save({"state_dict": {f"module.{k}": v for k, v in clip.state_dict().items()}, "epoch": 3}, wrapped)
    visual_only = tmp_path / "visual.pt"
    torch.save(clip.visual.state_dict(), visual_only)
    for path in (wrapped, visual_only):
        np.testing.assert_allclose(OpenClipImage.load(str(arch), str(path)).embed([_jpeg(3)]), want, atol=1e-6)


def test_open_clip_encoder_id_follows_weights_and_settings(tmp_path):
    arch, ckpt, _ = _tiny_clip(tmp_path, seed=0)
    _, other, _ = _tiny_clip(tmp_path, seed=1)
    a = OpenClipImage.load(str(arch), str(ckpt))
    b = OpenClipImage.load(str(arch), str(other))
    assert a.info.encoder_id != b.info.encoder_id
    assert a.info.encoder_id.startswith("open_clip-tiny-vit:")
    assert not np.allclose(a.embed([_jpeg(4)]), b.embed([_jpeg(4)]))

    settings = _settings(tmp_path, frame={"model": "open_clip", "open_clip_arch": str(arch), "checkpoint": str(ckpt)})
    assert encoder_id_for(settings, "video") == a.info.encoder_id


def test_open_clip_errors(tmp_path):
    arch, ckpt, _ = _tiny_clip(tmp_path)
    wider = dict(TINY_CLIP, vision_cfg=dict(TINY_CLIP["vision_cfg"], width=96))
    _, wrong, _ = _tiny_clip(tmp_path, cfg=wider, name="wider-vit")

    with pytest.raises(ValueError, match="not a checkpoint of open_clip"):
        OpenClipImage.load(str(arch), str(wrong))
    resnet = tmp_path / "resnet.pt"  # a state dict of something else entirely
    torch.save(torch.nn.Linear(4, 2).state_dict(), resnet)
    with pytest.raises(ValueError, match="missing"):
        OpenClipImage.load(str(arch), str(resnet))
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable PyTorch checkpoint"):
        OpenClipImage.load(str(arch), str(garbage))

    with pytest.raises(FileNotFoundError, match="does not exist"):
        OpenClipImage.load(str(arch), str(tmp_path / "missing.pt"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        OpenClipImage.load(str(tmp_path / "missing.json"), str(ckpt))
    with pytest.raises(ValueError, match="needs embed.frame.checkpoint"):
        OpenClipImage.load(str(arch), None)
    with pytest.raises(ValueError, match="not a built-in open_clip model"):
        OpenClipImage.load("No-Such-Arch", str(ckpt))
    with pytest.raises(ValueError, match="built-in open_clip name"):
        OpenClipImage.load("hf-hub:someone/some-model", str(ckpt))  # never fetched


def test_open_clip_builtin_arch_name(tmp_path, open_clip):
    """A built-in name resolves to open_clip's bundled config (no weights involved)."""
    from adlake.embed.encoders import _open_clip_config

    cfg, mean, std = _open_clip_config("ViT-B-32")
    assert cfg["embed_dim"] == 512 and cfg["vision_cfg"]["patch_size"] == 32
    assert mean == tuple(open_clip.OPENAI_DATASET_MEAN) and std == tuple(open_clip.OPENAI_DATASET_STD)


# -- PANNs Cnn14 ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cnn14_checkpoint(tmp_path_factory):
    """A randomly initialised Cnn14 saved as published ({"model": state_dict}, ~330 MB); removed after."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("panns") / "Cnn14_random.pth"
    torch.save({"model": PannsCnn14.build_model().state_dict(), "iteration": 0}, path)
    yield path
    path.unlink(missing_ok=True)


def test_panns_loads_and_embeds(cnn14_checkpoint, tmp_path):
    enc = PannsCnn14.load(str(cnn14_checkpoint))
    assert enc.info.name == "panns-cnn14" and enc.info.modality == "audio" and enc.info.dim == 2048
    assert enc.info.encoder_id == panns_encoder_id(str(cnn14_checkpoint))

    sr = PannsCnn14.SAMPLE_RATE
    tone = (0.5 * np.sin(2 * np.pi * 440 * np.arange(sr) / sr)).astype(np.float32)  # 1 s
    noise = np.random.default_rng(0).normal(0, 0.1, 3 * sr).astype(np.float32)  # 3 s
    short = tone[: sr // 10]  # 0.1 s: padded to 1 s
    vectors = enc.embed([tone, noise, short])
    assert vectors.shape == (3, 2048) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(vectors[0], vectors[1])

    # one by one gives the same as together (equal lengths share a batch, lengths are never mixed)
    np.testing.assert_allclose(enc.embed([noise])[0], vectors[1], atol=1e-4)
    np.testing.assert_allclose(enc.embed([tone, tone])[1], vectors[0], atol=1e-4)

    settings = _settings(tmp_path, audio={"model": "panns-cnn14", "checkpoint": str(cnn14_checkpoint)})
    assert encoder_id_for(settings, "audio") == enc.info.encoder_id


def test_panns_rejects_checkpoints_that_do_not_fit(cnn14_checkpoint, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        PannsCnn14.load(str(tmp_path / "missing.pth"))
    with pytest.raises(ValueError, match="needs embed.audio.checkpoint"):
        PannsCnn14.load(None)

    wrong_keys = tmp_path / "wrong_keys.pth"
    torch.save({"model": {"fc.weight": torch.zeros(2, 2)}}, wrong_keys)
    with pytest.raises(ValueError, match="not a PANNs Cnn14"):
        PannsCnn14.load(str(wrong_keys))
    arch, clip_ckpt, _ = _tiny_clip(tmp_path)
    with pytest.raises(ValueError, match="not a PANNs Cnn14"):
        PannsCnn14.load(str(clip_ckpt))
    not_a_dict = tmp_path / "list.pth"
    torch.save([1, 2, 3], not_a_dict)
    with pytest.raises(ValueError, match="not a PANNs Cnn14"):
        PannsCnn14.load(str(not_a_dict))

    # a 16 kHz Cnn14 (window 512, 257 frequency bins) does not fit the 32 kHz model
    state = torch.load(cnn14_checkpoint, map_location="cpu", weights_only=True)["model"]
    state["logmel_extractor.melW"] = torch.zeros(257, 64)
    misshapen = tmp_path / "cnn14_16k.pth"
    torch.save(state, misshapen)  # a bare state dict: read as one, then refused for its shapes
    with pytest.raises(ValueError, match="size mismatch"):
        PannsCnn14.load(str(misshapen))
    misshapen.unlink()
