"""Frame embeddings on Ray Data: pending 1 fps frames → an actor pool (the model loaded once per actor)
→ silver.embeddings, committed by delta-rs in bounded, idempotent batches.

Entities already embedded by the same ``encoder_id`` are skipped, so a rerun or a resumed run only
does what is missing. Ray runs locally by default and on a cluster when ``ray.address`` is set.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from adlake.config import Settings, resolve_device
from adlake.errors import ServiceUnavailable
from adlake.lake import Lake
from adlake.ray_session import node_id, ray_init
from schemas.registry import ASR_SENTENCES, CLIPS, EMBEDDINGS, FRAMES, PARSED_VIDEOS


def load_frame_encoder(settings: Settings, device: str = "cpu"):
    from adlake.embed.encoders import EfficientNetLite0, OpenClipImage, ResNet50

    conf = settings.embed.frame
    if conf.model == "efficientnet-lite0":
        return EfficientNetLite0.load(conf.checkpoint, device)
    if conf.model == "resnet50":
        return ResNet50.load(conf.checkpoint, device)
    if conf.model == "open_clip":
        return OpenClipImage.load(conf.open_clip_arch, conf.checkpoint, device)
    raise ValueError(f"unknown embed.frame.model {conf.model!r}")


def load_audio_encoder(settings: Settings, device: str = "cpu"):
    from adlake.embed.encoders import PannsCnn14, WhisperAudioEncoder

    conf = settings.embed.audio
    if conf.model == "panns-cnn14":
        return PannsCnn14.load(conf.checkpoint, device)
    return WhisperAudioEncoder.load(conf.model_path, device)


# -- what is pending ----------------------------------------------------------------------------------
def _embedded(lake: Lake, entity_type: str, encoder_id: str) -> set[str]:
    if not lake.exists(EMBEDDINGS):
        return set()
    from adlake.lake.sql import sql_literal

    done = lake.read(EMBEDDINGS, columns=["entity_id"],
                     where=f"entity_type = {sql_literal(entity_type)} AND encoder_id = {sql_literal(encoder_id)}")
    return set(done["entity_id"].to_pylist())


def pending_frames(lake: Lake, encoder_id: str) -> list[dict[str, Any]]:
    """Every 1 fps frame not yet embedded by this encoder (views reuse their frame's embedding)."""
    if not lake.exists(FRAMES):
        return []
    rows = lake.read(FRAMES, columns=["frame_id", "media_uri"], where="role = 'fps1'").to_pylist()
    done = _embedded(lake, "frame", encoder_id)
    return sorted(({"entity_id": r["frame_id"], "media_uri": r["media_uri"]} for r in rows
                   if r["frame_id"] not in done), key=lambda r: r["entity_id"])


def pending_clip_audio(lake: Lake, encoder_id: str) -> list[dict[str, Any]]:
    """Every clip of a video with audio, as a window of its 16 kHz soundtrack, not yet embedded."""
    if not (lake.exists(CLIPS) and lake.exists(PARSED_VIDEOS)):
        return []
    audio = {r["video_id"]: r["speech_audio_uri"] for r in lake.read(
        PARSED_VIDEOS, columns=["video_id", "speech_audio_uri"], where="speech_audio_uri IS NOT NULL").to_pylist()}
    done = _embedded(lake, "audio", encoder_id)
    rows = lake.read(CLIPS, columns=["clip_id", "video_id", "start_s", "end_s"]).to_pylist()
    return sorted(({"entity_id": r["clip_id"], "media_uri": audio[r["video_id"]], "start_s": r["start_s"],
                    "end_s": r["end_s"]} for r in rows if r["video_id"] in audio and r["clip_id"] not in done),
                  key=lambda r: r["entity_id"])


def music_windows(duration_s: float, speech: list[tuple[float, float]], window_s: float, margin_s: float
                  ) -> list[tuple[float, float]]:
    """Whole windows of ``window_s`` seconds that overlap no speech (each sentence widened by ``margin_s``)."""
    windows, cursor = [], 0.0
    for start, end in [*sorted(speech), (duration_s + margin_s, duration_s + margin_s)]:
        gap_end = min(start - margin_s, duration_s)
        while cursor + window_s <= gap_end + 1e-9:
            windows.append((round(cursor, 3), round(cursor + window_s, 3)))
            cursor += window_s
        cursor = max(cursor, end + margin_s)
    return windows


def pending_bgm(lake: Lake, encoder_id: str) -> list[dict[str, Any]]:
    """Background-music windows (``<video_id>:bgm:<start_ms>``) where the soundtrack has no speech."""
    if not lake.exists(PARSED_VIDEOS):
        return []
    conf = lake.settings.embed.bgm
    videos = lake.read(PARSED_VIDEOS, columns=["video_id", "duration_s", "speech_audio_uri"],
                       where="status = 'parsed' AND speech_audio_uri IS NOT NULL").to_pylist()
    speech: dict[str, list[tuple[float, float]]] = {}
    if lake.exists(ASR_SENTENCES):
        for r in lake.read(ASR_SENTENCES, columns=["video_id", "start_s", "end_s"]).to_pylist():
            speech.setdefault(r["video_id"], []).append((r["start_s"], r["end_s"]))
    done = _embedded(lake, "bgm", encoder_id)
    items = []
    for v in videos:
        for start, end in music_windows(v["duration_s"], speech.get(v["video_id"], []), conf.window_s,
                                        conf.speech_margin_s):
            entity_id = f"{v['video_id']}:bgm:{round(start * 1000)}"
            if entity_id not in done:
                items.append({"entity_id": entity_id, "media_uri": v["speech_audio_uri"], "start_s": start,
                              "end_s": end})
    return sorted(items, key=lambda r: r["entity_id"])


# -- the Ray actors: one model per actor, loaded once ------------------------------------------------------
def load_each(items: Iterable[Any], load: Callable[[Any], np.ndarray], blank: np.ndarray
              ) -> tuple[list[np.ndarray], list[str]]:
    """``load`` of each item, and its error ("" when it loaded). A bad item gets ``blank`` and is quarantined
    by its error, not the batch; an outage of the media store fails the task, to be retried, blaming no input."""
    values, errors = [], []
    for item in items:
        try:
            values.append(load(item))
            errors.append("")
        except ServiceUnavailable:
            raise
        except Exception as e:  # noqa: BLE001 - one bad input, recorded with its error class
            values.append(blank)
            errors.append(f"{type(e).__name__}: {e}"[:500])
    return values, errors


class FrameEmbedder:
    def __init__(self) -> None:
        from adlake.config import get_settings
        from adlake.media.store import MediaStore

        settings = get_settings()
        self.encoder = load_frame_encoder(settings, resolve_device(settings.embed.device))
        self.store = MediaStore(settings)
        # calls may run concurrently (embed.calls_per_actor): one decodes JPEGs while another holds the model
        self._model_lock = threading.Lock()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from adlake.embed.encoders import decode_image

        size = self.encoder.image_size
        pixels, errors = load_each(
            batch["media_uri"], lambda uri: decode_image(self.store.read_bytes(self.store.key_of(str(uri))), size),
            blank=np.zeros((3, size, size), np.float32))
        with self._model_lock:
            vectors = self.encoder.embed_tensors(np.stack(pixels))
        return {"entity_id": batch["entity_id"], "vector": vectors, "error": np.array(errors, dtype=object),
                "node": np.array([node_id()] * len(errors), dtype=object)}


class AudioEmbedder:
    def __init__(self) -> None:
        from adlake.config import get_settings
        from adlake.media.store import MediaStore

        settings = get_settings()
        self.encoder = load_audio_encoder(settings, resolve_device(settings.embed.device))
        self.store = MediaStore(settings)
        self._cache: dict[str, np.ndarray] = {}
        self._model_lock = threading.Lock()

    def _track(self, uri: str) -> np.ndarray:
        import io

        from adlake.media.audio import read_wav

        cache = self._cache  # replaced, never mutated: safe under concurrent calls
        if uri not in cache:
            self._cache = cache = {uri: read_wav(io.BytesIO(self.store.read_bytes(self.store.key_of(uri))))}
        return cache[uri]

    def _window(self, item: tuple[str, float, float]) -> np.ndarray:
        uri, start, end = item
        piece = self._track(str(uri))[int(start * 16_000): int(end * 16_000)]
        if len(piece) == 0:
            raise ValueError(f"no audio between {start} s and {end} s")
        return piece

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        clips, errors = load_each(zip(batch["media_uri"], batch["start_s"], batch["end_s"], strict=True),
                                  self._window, blank=np.zeros(16_000, np.float32))
        with self._model_lock:
            vectors = self.encoder.embed(clips)
        return {"entity_id": batch["entity_id"], "vector": vectors, "error": np.array(errors, dtype=object),
                "node": np.array([node_id()] * len(errors), dtype=object)}


# -- the driver ---------------------------------------------------------------------------------------------
@dataclass
class EmbedResult:
    entity_type: str
    encoder_id: str
    pending: int
    embedded: int
    quarantined: int
    commits: int
    seconds: float
    per_second: float
    first_commit_s: float | None = None  # until the first committed batch: Ray's actor start-up shows here
    first_commit_rows: int = 0
    rows_by_node: dict[str, int] = field(default_factory=dict)  # where the actors ran (Ray node id, short)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _table(entity_ids, vectors: np.ndarray, entity_type: str, encoder_id: str, run_id: str) -> pa.Table:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    fixed = pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), vectors.shape[1])
    n = len(entity_ids)
    return pa.table({"entity_id": pa.array([str(x) for x in entity_ids], pa.string()),
                     "entity_type": pa.array([entity_type] * n, pa.string()),
                     "encoder_id": pa.array([encoder_id] * n, pa.string()),
                     "vector": fixed.cast(pa.list_(pa.float32())),
                     "run_id": pa.array([run_id] * n, pa.string())})


def pending_items(lake: Lake, entity_type: str) -> tuple[str, list[dict[str, Any]]]:
    """The configured encoder's id and what it has not embedded yet of one entity type."""
    from adlake.embed.encoders import encoder_id_for

    encoder_id = encoder_id_for(lake.settings, "video" if entity_type == "frame" else "audio")
    pending = {"frame": pending_frames, "audio": pending_clip_audio, "bgm": pending_bgm}[entity_type]
    return encoder_id, pending(lake, encoder_id)


def embed_pending(lake: Lake, entity_type: str,
                  pending: tuple[str, list[dict[str, Any]]] | None = None) -> EmbedResult:
    """Embed what is pending for one entity type ('frame', 'audio' or 'bgm'), committed in bounded batches.

    ``pending`` is :func:`pending_items`' answer when the caller already asked (the job does, to skip early).
    """
    from adlake.lake import Quarantine, QuarantineRecord

    settings, conf = lake.settings, lake.settings.embed
    t0 = time.perf_counter()
    encoder_id, items = pending if pending is not None else pending_items(lake, entity_type)
    embedded = quarantined = commits = 0
    first_commit_s, first_rows = None, 0
    by_node: dict[str, int] = {}
    if items:
        ray_init(settings)  # before Ray is imported: it reads its authentication settings then
        import ray

        actor, batch_size = (FrameEmbedder, conf.frame.batch_size) if entity_type == "frame" else \
            (AudioEmbedder, conf.audio.batch_size)
        # one block per batch: no re-chunking of many tiny blocks between read and the actors
        blocks = max(1, -(-len(items) // batch_size))
        pool = ray.data.ActorPoolStrategy(size=conf.actors, max_concurrent_calls_per_actor=conf.calls_per_actor,
                                          enable_true_multi_threading=conf.calls_per_actor > 1)
        ds = ray.data.from_items(items, override_num_blocks=blocks).map_batches(
            actor, batch_size=batch_size, batch_format="numpy", compute=pool,
            num_cpus=conf.cpus_per_actor, num_gpus=conf.gpus_per_actor, scheduling_strategy="SPREAD")
        quarantine = Quarantine(lake)
        for batch in ds.iter_batches(batch_size=conf.commit_rows, batch_format="numpy"):
            for node in batch["node"]:
                by_node[str(node)] = by_node.get(str(node), 0) + 1
            errors = [str(e) for e in batch["error"]]
            good = [i for i, e in enumerate(errors) if not e]
            bad = [i for i, e in enumerate(errors) if e]
            if good:
                quarantine.resolve("embed", [f"{entity_type}/{batch['entity_id'][i]}" for i in good])
                table = _table(batch["entity_id"][good], batch["vector"][good], entity_type, encoder_id,
                               lake.ctx.run_id)
                write = lake.merge(EMBEDDINGS, table)
                commits += 0 if write.skipped else 1
                embedded += len(good)
            if bad:
                quarantine.add([QuarantineRecord("embed", f"{entity_type}/{batch['entity_id'][i]}", "embed_input",
                                                 errors[i], encoder_id) for i in bad])
                quarantined += len(bad)
            if first_commit_s is None:
                first_commit_s, first_rows = round(time.perf_counter() - t0, 2), len(errors)
    seconds = time.perf_counter() - t0
    return EmbedResult(entity_type, encoder_id, len(items), embedded, quarantined, commits, round(seconds, 2),
                       round(embedded / seconds, 2) if embedded else 0.0,
                       first_commit_s, first_rows, dict(sorted(by_node.items())))
