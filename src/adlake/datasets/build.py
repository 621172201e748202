"""training_sets: splits, task samples and the benchmark from pinned table versions and a seed.

Everything here is a function of the input tables' versions (``source_versions``) and
``datasets.seed``: rebuilding from the same versions rewrites nothing in the lake and writes
byte-identical JSONL exports (their sha256 is printed and stored in ``manifest.json``).
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from adlake.datasets import samples as S
from adlake.datasets.splits import AdKey, Assignment, assign_splits, leaks, split_sizes, test_product_target
from adlake.errors import NothingToDo
from adlake.lake import Lake
from adlake.lake.sql import sql_literal
from adlake.vectors import latest_per_key, mean_by_group, unit
from schemas.registry import (
    ADS,
    BENCHMARK,
    CLIPS,
    CRAWL_MANIFEST,
    EMBEDDINGS,
    FRAMES,
    SAMPLES,
    SPLIT_ASSIGNMENTS,
    TOKENS,
)

BENCHMARK_NAME = "vc_llm"
INPUTS = (ADS, CRAWL_MANIFEST, CLIPS, FRAMES, EMBEDDINGS, TOKENS)  # the tables a build reads, pinned
TRAIN_SPLITS = ("pretrain", "finetune")


class NotReady(NothingToDo):
    """The inputs of a build are not there yet: the task is skipped."""


@dataclass
class Inputs:
    ads: list[S.Ad]
    keys: list[AdKey]
    excluded: list[Assignment]  # selected ads without clips: recorded, never sampled
    ad_vectors: dict[str, np.ndarray]
    clip_vectors: dict[str, np.ndarray]
    first_last: dict[str, tuple[np.ndarray, np.ndarray]]  # clip → (first frame, last frame) vectors
    source_versions: dict[str, Any]


@dataclass
class BuildResult:
    build_key: str
    source_versions: dict[str, Any]
    sizes: dict[str, dict[str, int]]
    leaks: dict[str, list[str]]
    samples: dict[str, dict[str, int]] = field(default_factory=dict)  # task → split → count
    benchmark_samples: int = 0
    benchmark_version: int | None = None
    benchmark_hash: str = ""
    export_dir: str = ""
    export_hash: str = ""
    files: dict[str, str] = field(default_factory=dict)  # relative path → sha256
    written: dict[str, bool] = field(default_factory=dict)  # table → whether this run committed
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_inputs(lake: Lake) -> Inputs:
    """Every input at the job's pinned version (pinned here when the job has not): the versions go with
    every sample."""
    from adlake.embed.encoders import encoder_id_for
    from adlake.tokenizer.registry import production_version, tokenizer_id

    versions: dict[str, Any] = lake.pin(*INPUTS)
    for spec in (ADS, CRAWL_MANIFEST, CLIPS, FRAMES):
        if versions[spec.name] is None:
            raise NotReady(f"{spec.name} does not exist yet: run ads_ingest and ads_parse first")
    video_tok = production_version(lake.ctx, "video")
    audio_tok = production_version(lake.ctx, "audio")
    versions["tokenizer.video"] = None if video_tok is None else tokenizer_id("video", video_tok)
    versions["tokenizer.audio"] = None if audio_tok is None else tokenizer_id("audio", audio_tok)
    video_encoder = encoder_id_for(lake.settings, "video")
    versions["encoder.video"] = video_encoder

    ads = latest_per_key(lake.read(ADS, version=versions[ADS.name],
                                   columns=["ad_id", "crawl_date", "product_id", "video_id", "status"]).to_pylist())
    manifest = latest_per_key(lake.read(CRAWL_MANIFEST, version=versions[CRAWL_MANIFEST.name], columns=[
        "ad_id", "crawl_date", "product_name", "selling_points", "industry", "advertiser_id"]).to_pylist())
    clips_by_video: dict[str, list[dict]] = defaultdict(list)
    for c in lake.read(CLIPS, version=versions[CLIPS.name],
                       columns=["clip_id", "video_id", "idx", "start_s", "end_s", "script"]).to_pylist():
        clips_by_video[c["video_id"]].append(c)
    frames = lake.read(FRAMES, version=versions[FRAMES.name], columns=["frame_id", "clip_id", "t_s", "role",
                                                                       "media_uri"]).to_pylist()
    fps1: dict[str, list[tuple[float, str]]] = defaultdict(list)
    views: dict[str, list[tuple[int, float, str]]] = defaultdict(list)
    for f in frames:
        if f["role"] == "fps1":
            fps1[f["clip_id"]].append((f["t_s"], f["frame_id"]))
        else:
            views[f["clip_id"]].append((0 if f["role"] == "spatial" else 1, f["t_s"], f["media_uri"]))
    for found in fps1.values():
        found.sort()

    clip_vectors, first_last = clip_frame_vectors(lake, fps1, versions[EMBEDDINGS.name], video_encoder)
    tokens: dict[str, str] = {}
    bgm_tokens: dict[str, list[tuple[str, str]]] = defaultdict(list)
    if versions[TOKENS.name] is not None:
        for key, entity_type in (("tokenizer.video", "frame"), ("tokenizer.audio", "bgm")):
            if versions[key] is None:
                continue
            rows = lake.read(TOKENS, version=versions[TOKENS.name], columns=["entity_id", "tokens"],
                             where=f"tokenizer_id = {sql_literal(versions[key])} AND "
                                   f"entity_type = {sql_literal(entity_type)}")
            for e, t in zip(rows["entity_id"].to_pylist(), rows["tokens"].to_pylist(), strict=True):
                if entity_type == "frame":
                    tokens[e] = t
                else:
                    bgm_tokens[e.split(":", 1)[0]].append((e, t))

    s = S.SPECIAL
    out_ads, keys, excluded = [], [], []
    ad_vectors = {}
    for ad_id, row in sorted(ads.items()):
        if row["status"] != "selected" or not row["video_id"]:
            continue
        meta = manifest.get(ad_id, {})
        key = AdKey(ad_id, row["product_id"], meta.get("advertiser_id"), row["video_id"])
        clips = []
        for c in sorted(clips_by_video.get(row["video_id"], []), key=lambda c: c["idx"]):
            frame_ids = [fid for _, fid in fps1.get(c["clip_id"], [])]
            frame_tok = [tokens.get(f) for f in frame_ids]
            clips.append(S.Clip(
                c["clip_id"], c["idx"], round(c["end_s"] - c["start_s"], 3), (c["script"] or "").strip(),
                [uri for _, _, uri in sorted(views.get(c["clip_id"], []))],
                "".join(f"{s['frame_start']}{t}{s['frame_end']}" for t in frame_tok)
                if frame_tok and all(frame_tok) else None))
        if not clips:
            excluded.append(Assignment(ad_id, key.product_id, key.advertiser_id, key.video_id, "", "excluded",
                                       "the video has no clips (filtered at parse)"))
            continue
        vecs = [clip_vectors[c.clip_id] for c in clips if c.clip_id in clip_vectors]
        if vecs:
            ad_vectors[ad_id] = unit(np.mean(vecs, axis=0))
        keys.append(key)
        out_ads.append(S.Ad(ad_id, row["product_id"], meta.get("product_name") or row["product_id"],
                            list(meta.get("selling_points") or []), meta.get("industry"), row["video_id"], clips,
                            sorted(bgm_tokens.get(row["video_id"], []))))
    if not out_ads:
        raise NotReady(f"no selected ad with clips yet in {ADS.name}@v{versions[ADS.name]} and "
                       f"{CLIPS.name}@v{versions[CLIPS.name]}")
    return Inputs(out_ads, keys, excluded, ad_vectors, clip_vectors, first_last, versions)


def fps1_frames(lake: Lake, frames_version: int) -> dict[str, list[tuple[float, str]]]:
    """Each clip's 1 fps frames as (t_s, frame_id) in time order."""
    rows = lake.read(FRAMES, version=frames_version, columns=["frame_id", "clip_id", "t_s"], where="role = 'fps1'")
    by_clip: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for f, c, t in zip(rows["frame_id"].to_pylist(), rows["clip_id"].to_pylist(), rows["t_s"].to_pylist(),
                       strict=True):
        by_clip[c].append((t, f))
    for found in by_clip.values():
        found.sort()
    return by_clip


def clip_frame_vectors(lake: Lake, fps1: dict[str, list[tuple[float, str]]], embeddings_version: int | None,
                       encoder_id: str) -> tuple[dict[str, np.ndarray], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Per clip (given its 1 fps frames in time order): the normalised mean of its frame vectors, and its
    first and last frame vectors."""
    if embeddings_version is None:
        return {}, {}
    rows = lake.read(EMBEDDINGS, version=embeddings_version, columns=["entity_id", "vector"],
                     where=f"entity_type = 'frame' AND encoder_id = {sql_literal(encoder_id)}")
    vec = dict(zip(rows["entity_id"].to_pylist(), rows["vector"].to_numpy(zero_copy_only=False), strict=True))
    clip_ids, vectors, first_last = [], [], {}
    for clip, frames in fps1.items():
        found = [np.asarray(vec[f], np.float32) for _, f in frames if f in vec]
        if found:
            clip_ids += [clip] * len(found)
            vectors += found
            first_last[clip] = (found[0], found[-1])
    if not vectors:
        return {}, {}
    groups, means = mean_by_group(clip_ids, np.stack(vectors))
    return dict(zip(groups, means, strict=True)), first_last


def _vectors_for(keys: list[AdKey], ad_vectors: dict[str, np.ndarray]) -> np.ndarray | None:
    if not ad_vectors:
        return None
    dim = len(next(iter(ad_vectors.values())))
    return np.stack([ad_vectors.get(k.ad_id, np.zeros(dim, np.float32)) for k in keys]).astype(np.float32)


def make_samples(ads_by_split: dict[str, list[S.Ad]], conf, seed: int) -> list[S.Sample]:
    """Every task's samples: VC-LLM for pretrain/finetune, AutoCut for train/test, by configuration."""
    out: list[S.Sample] = []
    vc = conf.vc
    for split in TRAIN_SPLITS:
        ads = ads_by_split.get(split, [])
        pool = [(a.ad_id, c) for a in ads for c in a.clips]
        for ad in ads:
            if split == "pretrain":
                out += S.vc_remix(ad, split, pool, seed, vc.remix_shuffles, vc.distractor_ratio)
                out += S.vc_script(ad, split)
                out += S.vc_segment(ad, split)
            else:
                out += S.vc_compound(ad, split, pool, seed, vc.compound_shuffles, vc.distractor_ratio)
    ac = conf.autocut
    autocut_splits = {"train": [a for s in TRAIN_SPLITS for a in ads_by_split.get(s, [])],
                      "test": ads_by_split.get("test", [])}
    for split, ads in autocut_splits.items():
        ads = sorted((a for a in ads if all(c.tokens for c in a.clips)), key=lambda a: a.ad_id)
        if not ads:
            continue
        pool = [(a.ad_id, c) for a in ads for c in a.clips]
        bgm_pool = [(a.ad_id, wid, tok) for a in ads for wid, tok in a.bgm]
        counts = S.mixed_counts(round(ac.samples_per_ad * len(ads)), ac.mix)
        for task, count in sorted(counts.items()):
            order = sorted(ads, key=lambda a: S.rng_for(seed, task, a.ad_id).random())
            if task == "autocut_bgm":
                order = [a for a in order if a.bgm]
            for ad in order[:count]:
                if task == "autocut_script":
                    out.append(S.autocut_script(ad, split))
                elif task == "autocut_order":
                    out.append(S.autocut_order(ad, split, seed))
                elif task == "autocut_select":
                    out.append(S.autocut_select(ad, split, pool, seed, ac.negative_ratio))
                else:
                    sample = S.autocut_bgm(ad, split, bgm_pool, seed, ac.bgm_negatives)
                    if sample:
                        out.append(sample)
    return sorted(out, key=lambda s: s.sample_id)


def benchmark_rows(test_ads: list[S.Ad], distractor_ads: list[S.Ad], seed: int) -> list[dict[str, Any]]:
    """VC-LLM's benchmark: each test ad's clips plus the clips of other ads of the same product, shuffled."""
    by_product: dict[str, list[S.Ad]] = defaultdict(list)
    for ad in distractor_ads:
        by_product[ad.product_id].append(ad)
    rows = []
    for ad in sorted(test_ads, key=lambda a: a.ad_id):
        others = [c for other in sorted(by_product[ad.product_id], key=lambda a: a.ad_id) for c in other.clips]
        rng = S.rng_for(seed, "benchmark", ad.ad_id)
        shown, labels, label_of = S.candidate_set(ad, others, rng)
        refs, images = S._frame_refs(shown, labels)
        messages = S._message("vc", S.compound_prompt(ad, refs, len(ad.clips)),
                              S.compound_answer(ad, label_of), images)
        rows.append({
            "sample_id": f"{BENCHMARK_NAME}:{ad.ad_id}", "benchmark": BENCHMARK_NAME, "ad_id": ad.ad_id,
            "product_id": ad.product_id, "k": len(ad.clips),
            "candidates": json.dumps([{"label": label_of[c.clip_id], "clip_id": c.clip_id,
                                       "duration_s": c.duration_s} for c in shown]),
            "truth": json.dumps([{"clip_id": c.clip_id, "script": c.script, "subtitles": S.segments_of(c),
                                  "duration_s": c.duration_s} for c in ad.clips], ensure_ascii=False),
            "same_product_distractors": len(others), "messages": messages})
    return rows


def _jsonl(records: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in records).encode()


def export(out_dir: Path, samples: list[S.Sample], bench: list[dict[str, Any]], source: dict[str, Any]
           ) -> tuple[dict[str, str], str]:
    """JSONL per task and split (LLaMA-Factory ShareGPT records), the benchmark, dataset_info.json, manifest.json."""
    files: dict[str, bytes] = {}
    grouped: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for s in samples:
        grouped[(s.task, s.split)].append({"id": s.sample_id, **json.loads(s.messages)})
    info = {}
    for (task, split), records in sorted(grouped.items()):
        rel = f"{task}/{split}.jsonl"
        files[rel] = _jsonl(records)
        has_images = any("images" in r for r in records)
        info[f"adlake_{task}_{split}"] = {
            "file_name": rel, "formatting": "sharegpt",
            "columns": {"messages": "conversations", "system": "system", **({"images": "images"} if has_images
                                                                              else {})}}
    files["benchmark/vc_llm.jsonl"] = _jsonl(
        [{**{k: v for k, v in r.items() if k != "messages"}, **json.loads(r["messages"])} for r in bench])
    files["dataset_info.json"] = (json.dumps(info, indent=1, sort_keys=True) + "\n").encode()
    hashes = {rel: hashlib.sha256(data).hexdigest() for rel, data in sorted(files.items())}
    combined = hashlib.sha256("".join(f"{h}  {rel}\n" for rel, h in hashes.items()).encode()).hexdigest()
    files["manifest.json"] = (json.dumps({"source_versions": source, "files": hashes, "sha256": combined},
                                         indent=1, sort_keys=True) + "\n").encode()
    out_dir.mkdir(parents=True, exist_ok=True)
    for rel, data in files.items():
        path = out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_bytes() != data:
            tmp = path.with_suffix(path.suffix + ".tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
    return hashes, combined


def build_training_sets(lake: Lake, inputs: Inputs | None = None) -> BuildResult:
    """Splits, samples, benchmark and exports from ``inputs`` (read at the pinned versions when not given)."""
    conf = lake.settings.datasets
    if inputs is None:
        inputs = read_inputs(lake)
    source = {**inputs.source_versions, "seed": conf.seed,
              "settings": hashlib.sha256(json.dumps(conf.model_dump(exclude={"judge", "export_uri"}),
                                                    sort_keys=True).encode()).hexdigest()[:12]}
    build_key = hashlib.sha256(json.dumps(source, sort_keys=True).encode()).hexdigest()[:12]
    vectors = _vectors_for(inputs.keys, inputs.ad_vectors)
    products = len({k.product_id for k in inputs.keys})
    assignments = assign_splits(inputs.keys, vectors, seed=conf.seed,
                                test_products=test_product_target(products, conf.test_products),
                                max_videos_per_product=conf.max_videos_per_product,
                                finetune_share=conf.finetune_share,
                                near_duplicate_cosine=conf.near_duplicate_cosine)
    found_leaks = leaks(assignments, inputs.ad_vectors or None, conf.near_duplicate_cosine)
    if any(found_leaks.values()):  # cannot happen by construction; checked because the ML team relies on it
        raise AssertionError(f"split leaks: {found_leaks}")
    all_assignments = sorted(assignments + inputs.excluded, key=lambda a: a.ad_id)
    role = {a.ad_id: a.split for a in assignments}
    ads_by_split: dict[str, list[S.Ad]] = defaultdict(list)
    for ad in inputs.ads:
        ads_by_split[role[ad.ad_id]].append(ad)
    samples = make_samples(ads_by_split, conf, conf.seed)
    bench = benchmark_rows(ads_by_split.get("test", []), ads_by_split.get("test_distractor", []), conf.seed)
    source_json = json.dumps(source, sort_keys=True)
    run_id = lake.ctx.run_id
    result = BuildResult(build_key, source, split_sizes(all_assignments), found_leaks)

    split_rows = [{**asdict(a), "source_versions": source_json, "run_id": run_id} for a in all_assignments]
    wrote = False
    for split in (*{a.split for a in all_assignments}, *_existing_values(lake, SPLIT_ASSIGNMENTS, "split")):
        rows = [r for r in split_rows if r["split"] == split]
        w = lake.overwrite_partition(SPLIT_ASSIGNMENTS, _table(SPLIT_ASSIGNMENTS, rows), {"split": split})
        wrote |= not w.skipped
    result.written[SPLIT_ASSIGNMENTS.name] = wrote

    sample_rows = [{"sample_id": s.sample_id, "task": s.task, "split": s.split, "ad_id": s.ad_id,
                    "messages": s.messages, "source_versions": source_json, "run_id": run_id} for s in samples]
    wrote = False
    for task in sorted({*S.VC_TASKS, *S.AUTOCUT_TASKS, *_existing_values(lake, SAMPLES, "task")}):
        rows = [r for r in sample_rows if r["task"] == task]
        w = lake.overwrite_partition(SAMPLES, _table(SAMPLES, rows), {"task": task})
        wrote |= not w.skipped
    result.written[SAMPLES.name] = wrote
    for s in samples:
        result.samples.setdefault(s.task, {}).setdefault(s.split, 0)
        result.samples[s.task][s.split] += 1

    bench_rows = [{**r, "source_versions": source_json, "run_id": run_id} for r in bench]
    w = lake.overwrite_partition(BENCHMARK, _table(BENCHMARK, bench_rows), {"benchmark": BENCHMARK_NAME})
    result.written[BENCHMARK.name] = not w.skipped
    result.benchmark_samples = len(bench)
    result.benchmark_version = lake.version(BENCHMARK)
    result.benchmark_hash = hashlib.sha256(_jsonl(bench)).hexdigest()[:16]

    out_dir = Path(conf.export_uri or Path(lake.settings.home) / "exports" / "training_sets") / build_key
    result.files, result.export_hash = export(out_dir, samples, bench, source)
    result.export_dir = str(out_dir)
    if not any(result.sizes[s]["ads"] for s in TRAIN_SPLITS) or not result.sizes["test"]["ads"]:
        result.notes.append("a side of the split is empty: leak groups joined too many ads (a large advertiser, or "
                            "datasets.near_duplicate_cosine too low for this encoder)")
    if not any(c.tokens for a in inputs.ads for c in a.clips):
        result.notes.append("no production video tokens yet: AutoCut samples wait for train_tokenizer and "
                            "ads_features")
    return result


def _existing_values(lake: Lake, spec, column: str) -> set[str]:
    if not lake.exists(spec):
        return set()
    return set(lake.read(spec, columns=[column])[column].to_pylist())


def _table(spec, rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=spec.schema) if rows else spec.schema.empty_table()
