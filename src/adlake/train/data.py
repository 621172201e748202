"""What the editor models train and are scored on, read once from pinned table versions.

The LLM sees text only: a VC-LLM sample's ``<image>`` references of a clip become that clip's video tokens
(its 1 fps frames, as AutoCut shows clips), from ``gold.tokens`` at the sample's own source versions.
Samples are rendered in the ChatML layout Qwen3 uses; the loss is on the assistant turn only.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from adlake.errors import NothingToDo
from adlake.lake import Lake
from adlake.lake.sql import sql_literal
from adlake.tokenizer.vocab import SPECIAL
from schemas.registry import AD_SEQUENCES, BENCHMARK, CLIPS, FRAMES, SAMPLES, SPLIT_ASSIGNMENTS, TOKENS

TRAIN_SPLITS = ("pretrain", "finetune", "train")  # VC-LLM's two training splits and AutoCut's
TRAIN_ADS = ("pretrain", "finetune")  # split_assignments: ads whose sequences stage 1 may see
_IMAGES = re.compile(r"(?:<image>)+")


@dataclass
class EditorInputs:
    versions: dict[str, Any]  # every pinned table version and tokenizer id, logged with each run
    samples: list[dict[str, Any]]  # training samples (sample_id, task, split, messages)
    sequences: list[str]  # training ads' gold.ad_sequences
    bench_rows: list[dict[str, Any]]
    clip_tokens: dict[str, str]  # clip id → its frames' video tokens, each inside frame markers
    view_clip: dict[str, str]  # spatial/temporal view uri → clip id
    clip_order: dict[str, list[str]] = field(default_factory=dict)  # training ad → its clip ids in order
    stale_samples: int = 0  # samples from other source versions than the benchmark's (not used)


def read_editor_inputs(lake: Lake) -> EditorInputs:
    """Pin gold.samples, gold.ad_sequences, gold.benchmark and gold.split_assignments; everything else at the
    versions the benchmark was built from (its ``source_versions``)."""
    versions: dict[str, Any] = lake.pin(SAMPLES, AD_SEQUENCES, BENCHMARK, SPLIT_ASSIGNMENTS)
    missing = [k for k, v in versions.items() if v is None]
    if missing:
        raise NothingToDo(f"{', '.join(missing)} do not exist yet: run ads_features and training_sets first")
    from adlake.datasets.build import BENCHMARK_NAME

    bench_rows = lake.read(BENCHMARK, where=f"benchmark = {sql_literal(BENCHMARK_NAME)}").to_pylist()
    if not bench_rows:
        raise NothingToDo(f"{BENCHMARK.name}@v{versions[BENCHMARK.name]} holds no samples")
    source = json.loads(bench_rows[0]["source_versions"])
    if not source.get("tokenizer.video"):
        raise NothingToDo("the training sets were built without a video tokenizer: nothing to extend the LLM with")
    versions.update({f"source.{k}": v for k, v in source.items()})

    where = " OR ".join(f"split = {sql_literal(s)}" for s in TRAIN_SPLITS)
    samples, stale = [], 0
    for r in lake.read(SAMPLES, columns=["sample_id", "task", "split", "messages", "source_versions"],
                       where=where).to_pylist():
        if json.loads(r.pop("source_versions")) != source:
            stale += 1
            continue
        samples.append(r)
    samples.sort(key=lambda r: r["sample_id"])

    splits = lake.read(SPLIT_ASSIGNMENTS, columns=["ad_id", "split", "video_id"]).to_pylist()
    train_ads = {r["ad_id"]: r["video_id"] for r in splits if r["split"] in TRAIN_ADS}
    seq_rows = lake.read(AD_SEQUENCES, columns=["ad_id", "tokenizer_id", "sequence"],
                         where=f"tokenizer_id LIKE {sql_literal(source['tokenizer.video'] + '%')}").to_pylist()
    sequences = [r["sequence"] for r in sorted(seq_rows, key=lambda r: r["ad_id"]) if r["ad_id"] in train_ads]

    clip_tokens, view_clip = _clip_tokens(lake, source)
    clips_by_video: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for c in lake.read(CLIPS, version=source[CLIPS.name], columns=["clip_id", "video_id", "idx"]).to_pylist():
        clips_by_video[c["video_id"]].append((c["idx"], c["clip_id"]))
    clip_order = {ad: [cid for _, cid in sorted(clips_by_video[v])] for ad, v in sorted(train_ads.items())
                  if clips_by_video.get(v)}
    return EditorInputs(versions, samples, sequences, bench_rows, clip_tokens, view_clip, clip_order, stale)


def _clip_tokens(lake: Lake, source: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """Each clip's video tokens (its 1 fps frames in time order, each in frame markers); view uri → clip."""
    frames = lake.read(FRAMES, version=source[FRAMES.name],
                       columns=["frame_id", "clip_id", "t_s", "role", "media_uri"]).to_pylist()
    fps1: dict[str, list[tuple[float, str]]] = defaultdict(list)
    view_clip = {}
    for f in frames:
        if f["role"] == "fps1":
            fps1[f["clip_id"]].append((f["t_s"], f["frame_id"]))
        else:
            view_clip[f["media_uri"]] = f["clip_id"]
    rows = lake.read(TOKENS, version=source[TOKENS.name], columns=["entity_id", "tokens"],
                     where=f"tokenizer_id = {sql_literal(source['tokenizer.video'])} AND entity_type = 'frame'")
    tokens = dict(zip(rows["entity_id"].to_pylist(), rows["tokens"].to_pylist(), strict=True))
    s = SPECIAL
    out = {}
    for clip_id, found in fps1.items():
        toks = [tokens.get(fid) for _, fid in sorted(found)]
        if toks and all(toks):
            out[clip_id] = "".join(f"{s['frame_start']}{t}{s['frame_end']}" for t in toks)
    return out, view_clip


def clip_token_string(frame_tokens: str | None) -> str:
    s = SPECIAL
    return f"{s['clip_start']}{s['video_start']}{frame_tokens or ''}{s['video_end']}{s['clip_end']}"


def as_text(messages: str, inputs: EditorInputs) -> tuple[str, str, int]:
    """A sample's chat → (prompt, answer, clips shown without tokens). The prompt ends where the assistant's
    turn begins; the answer ends with the end-of-turn marker."""
    record = json.loads(messages)
    turns = record["conversations"]
    images = list(record.get("images") or [])
    untokenized = 0

    def clip_of(run: re.Match) -> str:
        nonlocal untokenized
        n = len(run.group(0)) // len("<image>")
        shown, images[:n] = images[:n], []
        clip = next((inputs.view_clip[u] for u in shown if u in inputs.view_clip), None)
        frame_tokens = inputs.clip_tokens.get(clip) if clip else None
        untokenized += frame_tokens is None
        return clip_token_string(frame_tokens)

    prompt = f"<|im_start|>system\n{record['system']}<|im_end|>\n"
    for turn in turns[:-1]:
        role = "user" if turn["from"] == "human" else "assistant"
        prompt += f"<|im_start|>{role}\n{_IMAGES.sub(clip_of, turn['value'])}<|im_end|>\n"
    prompt += "<|im_start|>assistant\n"
    return prompt, f"{turns[-1]['value']}<|im_end|>", untokenized


@dataclass
class Encoded:
    ids: list[np.ndarray] = field(default_factory=list)
    labels: list[np.ndarray] = field(default_factory=list)  # -100 where no loss
    tasks: list[str] = field(default_factory=list)
    dropped: Counter = field(default_factory=Counter)  # task → samples over seq_len, dropped
    truncated: Counter = field(default_factory=Counter)  # task → samples over seq_len, cut at it
    untokenized_clips: int = 0

    def add(self, task: str, prompt_ids: list[int], answer_ids: list[int], seq_len: int, overlong: str) -> None:
        ids = prompt_ids + answer_ids
        labels = [-100] * len(prompt_ids) + answer_ids
        if len(ids) > seq_len:
            if overlong == "drop" or len(prompt_ids) >= seq_len:  # a cut with no answer left is dropped too
                self.dropped[task] += 1
                return
            self.truncated[task] += 1
            ids, labels = ids[:seq_len], labels[:seq_len]
        self.ids.append(np.asarray(ids, np.int64))
        self.labels.append(np.asarray(labels, np.int64))
        self.tasks.append(task)

    def report(self) -> dict[str, Any]:
        lengths = [len(i) for i in self.ids]
        return {"sequences": len(self.ids), "tokens": int(sum(lengths)), "max_len": max(lengths, default=0),
                "by_task": dict(sorted(Counter(self.tasks).items())), "dropped_overlong": dict(self.dropped),
                "truncated_overlong": dict(self.truncated), "untokenized_clips": self.untokenized_clips}


def encode_sequences(tokenizer, sequences: list[str], seq_len: int, overlong: str) -> Encoded:
    """Stage 1 (alignment): whole ad sequences, loss on every token."""
    enc = Encoded()
    for seq in sequences:
        enc.add("ad_sequence", [], tokenizer(seq, add_special_tokens=False)["input_ids"], seq_len, overlong)
    return enc


def encode_samples(tokenizer, samples: list[dict[str, Any]], inputs: EditorInputs, seq_len: int,
                   overlong: str) -> Encoded:
    """Stage 2 (fine-tuning): the task samples, loss on the assistant's answer only."""
    enc = Encoded()
    for s in samples:
        prompt, answer, untokenized = as_text(s["messages"], inputs)
        enc.untokenized_clips += untokenized
        enc.add(s["task"], tokenizer(prompt, add_special_tokens=False)["input_ids"],
                tokenizer(answer, add_special_tokens=False)["input_ids"], seq_len, overlong)
    return enc
