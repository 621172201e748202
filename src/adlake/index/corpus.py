"""What an index holds, read at pinned table versions: clip vectors (the mean of a clip's 1 fps frame
vectors) or background-music windows, with string ids and the video each belongs to."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from adlake.errors import NothingToDo
from adlake.lake import Lake
from adlake.lake.sql import sql_literal
from adlake.vectors import mean_by_group, unit
from schemas.registry import EMBEDDINGS, FRAMES

# index kind → (the tokenizer modality whose space it lives in, the embeddings it is built from)
KINDS = {"clips": ("video", "frame"), "bgm": ("audio", "bgm")}


class NoVectors(NothingToDo):
    """No vectors to index yet: the build is skipped."""


@dataclass
class Corpus:
    kind: str
    ids: list[str]
    videos: list[str]
    vectors: np.ndarray  # n × d float32, L2-normalised
    encoder_id: str
    versions: dict[str, int] = field(default_factory=dict)  # input table versions
    fingerprint: str = ""  # of the encoder and the entity ids: equal when no new embeddings arrived
    group_of: dict[str, str] = field(default_factory=dict)  # embedded entity → index id (frame → clip)


def _fingerprint(encoder_id: str, ids: list[str]) -> str:
    digest = hashlib.sha256(encoder_id.encode())
    for entity in sorted(ids):
        digest.update(entity.encode() + b"\0")
    return digest.hexdigest()[:20]


def _frame_clips(lake: Lake, version: int | None) -> dict[str, tuple[str, str]]:
    rows = lake.read(FRAMES, version=version, columns=["frame_id", "clip_id", "video_id"], where="role = 'fps1'")
    return {f: (c, v) for f, c, v in zip(rows["frame_id"].to_pylist(), rows["clip_id"].to_pylist(),
                                          rows["video_id"].to_pylist(), strict=True)}


def input_versions(lake: Lake, kind: str, embeddings_version: int | None = None) -> dict[str, int]:
    """The versions the index is built from: the job's pins (pinned here when the job has not)."""
    pinned = lake.pin(EMBEDDINGS, *([FRAMES] if kind == "clips" else []))
    if pinned[EMBEDDINGS.name] is None:
        raise NoVectors("silver.embeddings does not exist yet: run ads_features first")
    if kind == "clips" and pinned[FRAMES.name] is None:
        raise NoVectors("silver.frames does not exist yet: run ads_parse first")
    return {**pinned, **({} if embeddings_version is None else {EMBEDDINGS.name: embeddings_version})}


def _embedding_rows(lake: Lake, kind: str, encoder_id: str, version: int, columns: list[str]) -> pa.Table:
    entity_type = KINDS[kind][1]
    return lake.read(EMBEDDINGS, version=version, columns=columns,
                     where=f"entity_type = {sql_literal(entity_type)} AND encoder_id = {sql_literal(encoder_id)}")


def fingerprint(lake: Lake, kind: str, encoder_id: str, versions: dict[str, int]) -> str:
    """Cheap (ids only): tells whether new embeddings arrived since an index was built."""
    rows = _embedding_rows(lake, kind, encoder_id, versions[EMBEDDINGS.name], ["entity_id"])
    return _fingerprint(encoder_id, rows["entity_id"].to_pylist())


def load_corpus(lake: Lake, kind: str, encoder_id: str, versions: dict[str, int]) -> Corpus:
    rows = _embedding_rows(lake, kind, encoder_id, versions[EMBEDDINGS.name], ["entity_id", "vector"])
    if rows.num_rows == 0:
        raise NoVectors(f"silver.embeddings@v{versions[EMBEDDINGS.name]} holds no {KINDS[kind][1]} vectors of "
                        f"encoder {encoder_id}")
    entity_ids = rows["entity_id"].to_pylist()
    vectors = np.stack(rows["vector"].to_numpy(zero_copy_only=False)).astype(np.float32)
    if kind == "clips":
        clip_of = _frame_clips(lake, versions[FRAMES.name])
        known = [i for i, f in enumerate(entity_ids) if f in clip_of]  # 1 fps frames only
        if not known:
            raise NoVectors("no embedded 1 fps frame belongs to a clip of silver.frames")
        ids, matrix = mean_by_group([clip_of[entity_ids[i]][0] for i in known], vectors[known])
        video_of_clip = {c: v for c, v in clip_of.values()}
        videos = [video_of_clip[c] for c in ids]
        group_of = {f: c for f, (c, _) in clip_of.items()}
    else:
        order = np.argsort(np.array(entity_ids, dtype=object), kind="stable")
        ids = [entity_ids[i] for i in order]
        matrix = unit(vectors[order])
        videos = [e.split(":", 1)[0] for e in ids]  # '<video_id>:bgm:<start_ms>'
        group_of = {e: e for e in ids}
    return Corpus(kind, ids, videos, matrix, encoder_id, dict(versions), _fingerprint(encoder_id, entity_ids),
                  group_of)
