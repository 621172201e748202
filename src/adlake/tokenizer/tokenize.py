"""Tokenize with the production tokenizers: silver.embeddings → gold.tokens → gold.ad_sequences.

Rows are keyed by tokenizer id (``<model>/<version>``): a new tokenizer version adds its own rows and
leaves every older version's rows readable; a rerun with the same version finds nothing pending and
rewrites identical sequences, which the merge leaves alone.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from adlake.lake import Lake
from adlake.lake.sql import sql_literal
from adlake.tokenizer.registry import MODEL_NAMES, Tokenizer, load_tokenizer, production_version
from adlake.tokenizer.train import ENTITY_TYPES
from adlake.tokenizer.vocab import SPECIAL
from adlake.vectors import latest_per_key
from schemas.registry import AD_SEQUENCES, ADS, CLIPS, EMBEDDINGS, FRAMES, TOKENS


@dataclass
class TokenizeResult:
    production: dict[str, str | None]
    tokenized: dict[str, int] = field(default_factory=dict)  # new gold.tokens rows per modality
    already: dict[str, int] = field(default_factory=dict)  # rows this version had before the run
    vectors_per_second: dict[str, float] = field(default_factory=dict)
    sequences: int = 0
    sequences_written: int = 0
    sequences_incomplete: int = 0  # ads with a frame or clip not tokenized yet: built on a later run
    sequence_tokenizer_id: str | None = None
    status: str = "done"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def production_versions(ctx) -> dict[str, str | None]:
    """Each modality's production tokenizer version (None: none yet); the registry must answer."""
    return {m: production_version(ctx, m) for m in MODEL_NAMES}


def _existing(lake: Lake, tokenizer_id: str) -> set[tuple[str, str]]:
    if not lake.exists(TOKENS):
        return set()
    rows = lake.read(TOKENS, columns=["entity_id", "entity_type"],
                     where=f"tokenizer_id = {sql_literal(tokenizer_id)}")
    return set(zip(rows["entity_id"].to_pylist(), rows["entity_type"].to_pylist(), strict=True))


def tokenize_modality(lake: Lake, tok: Tokenizer) -> tuple[int, int, float]:
    """Codes for every embedding of the tokenizer's encoder not yet tokenized by this version."""
    if not lake.exists(EMBEDDINGS):
        return 0, 0, 0.0
    types = ", ".join(sql_literal(t) for t in ENTITY_TYPES[tok.modality])
    rows = lake.read(EMBEDDINGS, columns=["entity_id", "entity_type", "vector"],
                     where=f"entity_type IN ({types}) AND encoder_id = {sql_literal(tok.encoder_id)}")
    done = _existing(lake, tok.tokenizer_id)
    keys = list(zip(rows["entity_id"].to_pylist(), rows["entity_type"].to_pylist(), strict=True))
    todo = sorted((k, i) for i, k in enumerate(keys) if k not in done)
    if not todo:
        return 0, len(done), 0.0
    vectors = rows["vector"]
    written, seconds = 0, 0.0
    step = lake.settings.tokenizer.commit_rows
    for offset in range(0, len(todo), step):
        part = todo[offset: offset + step]
        x = np.stack(vectors.take([i for _, i in part]).to_numpy(zero_copy_only=False)).astype(np.float32)
        t0 = time.perf_counter()
        codes = tok.encode(x)
        seconds += time.perf_counter() - t0
        table = pa.table({"entity_id": [k[0] for k, _ in part], "entity_type": [k[1] for k, _ in part],
                          "tokenizer_id": [tok.tokenizer_id] * len(part),
                          "codes": pa.array([c.tolist() for c in codes], pa.list_(pa.int16())),
                          "tokens": tok.tokens(codes), "run_id": [lake.ctx.run_id] * len(part)})
        lake.merge(TOKENS, table)
        written += len(part)
    return written, len(done), round(written / seconds, 1) if seconds else 0.0


def _clean_text(text: str | None) -> str:
    # a script must not smuggle markers into the sequence
    return (text or "").replace("<|", "< |").replace("|>", "| >").strip()


def _tokens_by_entity(lake: Lake, tokenizer_id: str, entity_type: str) -> dict[str, str]:
    rows = lake.read(TOKENS, columns=["entity_id", "tokens"],
                     where=f"tokenizer_id = {sql_literal(tokenizer_id)} AND entity_type = {sql_literal(entity_type)}")
    return dict(zip(rows["entity_id"].to_pylist(), rows["tokens"].to_pylist(), strict=True))


def ad_sequence(clips: list[dict], frame_tokens: list[list[str]], audio_tokens: list[str]) -> str:
    """One ad as one string: per clip its script, then each frame's codes in frame markers; then the ad's audio."""
    s = SPECIAL
    parts = [s["ad_start"]]
    for clip, frames in zip(clips, frame_tokens, strict=True):
        parts += [s["clip_start"], s["text_start"], _clean_text(clip["script"]), s["text_end"], s["video_start"]]
        parts += [f"{s['frame_start']}{t}{s['frame_end']}" for t in frames]
        parts += [s["video_end"], s["clip_end"]]
    if audio_tokens:
        parts += [s["audio_start"], *audio_tokens, s["audio_end"]]
    parts.append(s["ad_end"])
    return "".join(parts)


def build_sequences(lake: Lake, video: Tokenizer, audio: Tokenizer | None) -> tuple[int, int, int, str]:
    """gold.ad_sequences for every selected ad whose clips and frames are all tokenized."""
    seq_id = video.tokenizer_id + (f"+{audio.tokenizer_id}" if audio else "")
    if not (lake.exists(ADS) and lake.exists(CLIPS) and lake.exists(FRAMES)):
        return 0, 0, 0, seq_id
    ads = lake.read(ADS, columns=["ad_id", "video_id", "crawl_date"],
                    where="status = 'selected' AND video_id IS NOT NULL").to_pylist()
    latest = {ad_id: r["video_id"] for ad_id, r in latest_per_key(ads).items()}
    clips_by_video: dict[str, list[dict]] = defaultdict(list)
    for c in lake.read(CLIPS, columns=["clip_id", "video_id", "idx", "script"]).to_pylist():
        clips_by_video[c["video_id"]].append(c)
    frames_by_clip: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for f in lake.read(FRAMES, columns=["frame_id", "clip_id", "t_s"], where="role = 'fps1'").to_pylist():
        frames_by_clip[f["clip_id"]].append((f["t_s"], f["frame_id"]))
    frame_tok = _tokens_by_entity(lake, video.tokenizer_id, "frame")
    audio_tok = _tokens_by_entity(lake, audio.tokenizer_id, "audio") if audio else {}
    rows, incomplete = [], 0
    for ad_id, video_id in sorted(latest.items()):
        clips = sorted(clips_by_video.get(video_id, []), key=lambda c: c["idx"])
        if not clips:
            continue  # filtered at parse: no clips, no sequence
        frames = [[fid for _, fid in sorted(frames_by_clip.get(c["clip_id"], []))] for c in clips]
        if any(fid not in frame_tok for fs in frames for fid in fs):
            incomplete += 1
            continue
        audio_tokens = [audio_tok[c["clip_id"]] for c in clips if c["clip_id"] in audio_tok]
        rows.append({"ad_id": ad_id, "tokenizer_id": seq_id,
                     "sequence": ad_sequence(clips, [[frame_tok[f] for f in fs] for fs in frames], audio_tokens),
                     "run_id": lake.ctx.run_id})
    written = 0
    if rows:
        write = lake.merge(AD_SEQUENCES, pa.Table.from_pylist(rows))
        written = write.inserted + write.updated
    return len(rows), written, incomplete, seq_id


def tokenize_all(lake: Lake, production: dict[str, str | None] | None = None) -> TokenizeResult:
    """Tokens and sequences with the production tokenizers (``production``: modality → version, looked up
    in the registry when not given)."""
    if production is None:
        production = production_versions(lake.ctx)
    result = TokenizeResult(production)
    if not any(production.values()):
        result.status = "waiting: no production tokenizer yet; run train_tokenizer, then ads_features again"
        return result
    toks = {m: load_tokenizer(lake.ctx, m, v) for m, v in production.items() if v}  # the versions looked up
    for modality, tok in toks.items():
        new, before, vps = tokenize_modality(lake, tok)
        result.tokenized[modality], result.already[modality] = new, before
        result.vectors_per_second[modality] = vps
    if "video" in toks:
        (result.sequences, result.sequences_written, result.sequences_incomplete,
         result.sequence_tokenizer_id) = build_sequences(lake, toks["video"], toks.get("audio"))
    else:
        result.status = "sequences wait for a production video tokenizer"
    return result
