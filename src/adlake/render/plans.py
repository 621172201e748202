"""Edit plans from the lake and from model output.

- :func:`ground_truth_plan`: an ad as it was cut (its clips in order, with their scripts).
- :func:`plan_from_compound`: a VC-LLM compound answer (``[{"clip", "script", "subtitles"}]``) for a
  benchmark sample, its clip labels resolved through the sample's candidates.
- :func:`plan_from_tokens`: an AutoCut token sequence. Each clip's frame tokens are decoded by the video
  tokenizer and averaged; the clip index returns the nearest library clip not used yet, from the product's
  own library by default (the product given, else the one whose clips match best overall), above
  ``render.min_clip_score``. Audio tokens are decoded and matched in the
  music index.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from adlake.lake import Lake
from adlake.lake.sql import sql_literal
from adlake.render.errors import PlanError
from adlake.render.sequence import parse_sequence
from adlake.vectors import latest_per_key
from schemas.edit_plan import EditPlan
from schemas.registry import ADS, CLIPS, CRAWL_MANIFEST, VIDEOS


def _product(lake: Lake, ad_id: str) -> tuple[str, str, str | None]:
    """(video_id, product_id, product_name) of a selected ad."""
    rows = lake.read(ADS, columns=["ad_id", "crawl_date", "video_id", "product_id", "status"],
                     where=f"ad_id = {sql_literal(ad_id)}").to_pylist()
    latest = latest_per_key(rows).get(ad_id)
    if latest is None or latest["status"] != "selected" or not latest["video_id"]:
        raise PlanError("unknown_ad", "ad_id", f"{ad_id!r} is not a selected ad in silver.ads")
    names = lake.read(CRAWL_MANIFEST, columns=["product_name"], where=f"ad_id = {sql_literal(ad_id)}", limit=1
                      ).to_pylist() if lake.exists(CRAWL_MANIFEST) else []
    return latest["video_id"], latest["product_id"], names[0]["product_name"] if names else None


def _frame_of(lake: Lake, video_id: str) -> dict[str, int]:
    v = lake.read(VIDEOS, columns=["width", "height"], where=f"video_id = {sql_literal(video_id)}").to_pylist()
    if not v or not v[0]["width"]:
        return {}
    w, h = v[0]["width"], v[0]["height"]
    return {"width": w - w % 2, "height": h - h % 2}  # the source's own frame and orientation


def frame_of_clip(lake: Lake, clip_id: str) -> dict[str, int]:
    """The output frame of a plan that starts with ``clip_id``: its source's size and orientation."""
    rows = lake.read(CLIPS, columns=["video_id"], where=f"clip_id = {sql_literal(clip_id)}").to_pylist()
    return _frame_of(lake, rows[0]["video_id"]) if rows else {}


def ground_truth_plan(lake: Lake, ad_id: str) -> EditPlan:
    video_id, product_id, name = _product(lake, ad_id)
    clips = sorted(lake.read(CLIPS, columns=["clip_id", "idx", "script"], where=f"video_id = {sql_literal(video_id)}")
                   .to_pylist(), key=lambda c: c["idx"])
    if not clips:
        raise PlanError("empty_plan", "ad_id", f"ad {ad_id} has no clips (filtered at parse?)")
    return EditPlan(product_id=product_id, product_name=name, output=_frame_of(lake, video_id),
                    clips=[{"clip_id": c["clip_id"], "script": c["script"] or None} for c in clips],
                    source={"kind": "ground_truth", "ad_id": ad_id})


def plan_from_compound(answer: str, sample: dict[str, Any], output: dict[str, Any] | None = None) -> EditPlan:
    """A VC-LLM compound answer for a ``gold.benchmark`` row."""
    try:
        items = json.loads(answer)
    except json.JSONDecodeError as e:
        raise PlanError("not_json", f"position {e.pos}", f"the answer is not JSON: {e.msg}") from None
    if not isinstance(items, list) or not items:
        raise PlanError("empty_plan", "answer", "the answer is not a non-empty JSON list of clips")
    by_label = {c["label"]: c["clip_id"] for c in json.loads(sample["candidates"])}
    clips = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("clip"), str):
            raise PlanError("bad_answer", f"answer[{i}]", "each item is an object with a \"clip\" label")
        if item["clip"] not in by_label:
            raise PlanError("unknown_clip", f"answer[{i}]", f"{item['clip']!r} is not a candidate of "
                            f"{sample['sample_id']} (labels {min(by_label)}…{max(by_label, key=lambda x: int(x[1:]))})")
        subs = item.get("subtitles")
        if subs is not None and not (isinstance(subs, list) and all(isinstance(s, str) and s for s in subs)):
            raise PlanError("bad_answer", f"answer[{i}].subtitles", "subtitles are a list of non-empty strings")
        script = item.get("script")
        if script is not None and not isinstance(script, str):
            raise PlanError("bad_answer", f"answer[{i}].script", "a script is a string")
        clips.append({"clip_id": by_label[item["clip"]], "script": script or None,
                      "subtitles": [{"text": s} for s in subs] if subs else None})
    seen: dict[str, int] = {}
    for i, c in enumerate(clips):
        if c["clip_id"] in seen:
            raise PlanError("clip_reused", f"answer[{i}]", f"{items[i]['clip']} is already used at answer[{seen[c['clip_id']]}]")
        seen[c["clip_id"]] = i
    return EditPlan(product_id=sample.get("product_id"), clips=clips, output=output or {},
                    source={"kind": "vc_compound", "sample_id": sample["sample_id"]})


@dataclass
class Library:
    """What token plans retrieve from: the production (or given) tokenizers and indexes, and who owns which
    video."""

    video_tokenizer: Any
    audio_tokenizer: Any | None
    clip_index: Any
    bgm_index: Any | None
    products_of_video: dict[str, set[str]]  # a video re-uploaded by ads of other products belongs to each

    @classmethod
    def load(cls, lake: Lake) -> Library:
        from adlake.index.registry import NoIndex, load_index
        from adlake.tokenizer.registry import load_tokenizer, production_version

        ctx = lake.ctx
        if production_version(ctx, "video") is None:
            raise PlanError("no_library", "", "no production video tokenizer: run train_tokenizer")
        try:
            clip_index = load_index(ctx, "clips")
        except NoIndex as e:
            raise PlanError("no_library", "", f"no production clip index ({e}): run index_refresh") from None
        audio_tok = load_tokenizer(ctx, "audio") if production_version(ctx, "audio") else None
        try:
            bgm_index = load_index(ctx, "bgm") if audio_tok else None
        except NoIndex:
            bgm_index = None
        ads = lake.read(ADS, columns=["ad_id", "crawl_date", "video_id", "product_id", "status"],
                        where="status = 'selected'").to_pylist()
        products: dict[str, set[str]] = {}
        for r in latest_per_key(ads).values():
            if r["video_id"]:
                products.setdefault(r["video_id"], set()).add(r["product_id"])
        return cls(load_tokenizer(ctx, "video"), audio_tok, clip_index, bgm_index, products)


def likeliest_product(results: list[list[Any]], products_of_video: dict[str, set[str]]) -> str | None:
    """The product whose library matches the clips best: per product, each clip's best score among its
    clips, summed over the clips (one look-alike clip of another product does not decide)."""
    totals: dict[str, float] = {}
    for hits in results:
        best: dict[str, float] = {}
        for h in hits:
            for p in products_of_video.get(h.video_id, ()):
                if h.score > best.get(p, -1.0):
                    best[p] = h.score
        for p, score in best.items():
            totals[p] = totals.get(p, 0.0) + score
    return max(sorted(totals), key=lambda p: totals[p]) if totals else None


def plan_from_tokens(sequence: str, library: Library, *, product_id: str | None = None, min_score: float = 0.0,
                     any_product: bool = False, search_k: int = 64) -> EditPlan:
    """An AutoCut sequence → a plan of library clips (none used twice)."""
    lib = library
    parsed = parse_sequence(sequence, lib.video_tokenizer.levels,
                            lib.audio_tokenizer.levels if lib.audio_tokenizer else None)
    if lib.video_tokenizer.encoder_id != lib.clip_index.meta["encoder_id"]:
        raise PlanError("no_library", "", f"{lib.video_tokenizer.tokenizer_id} decodes into "
                        f"{lib.video_tokenizer.encoder_id}; {lib.clip_index.index_id} holds {lib.clip_index.meta['encoder_id']}")
    queries = np.stack([lib.video_tokenizer.decode_tokens("".join(c.frames)).mean(axis=0) for c in parsed.clips])
    results = lib.clip_index.search(queries, min(search_k, len(lib.clip_index.ids)))
    if product_id is None and not any_product:
        product_id = likeliest_product(results, lib.products_of_video)
    used: set[str] = set()
    clips = []
    for clip, hits in zip(parsed.clips, results, strict=True):
        eligible = [h for h in hits if h.id not in used and h.score >= min_score
                    and (any_product or product_id in lib.products_of_video.get(h.video_id, ()))]
        if not eligible:
            best = max((h.score for h in hits if h.id not in used), default=None)
            raise PlanError("nothing_retrievable", f"position {clip.position}",
                            f"no unused clip{'' if any_product else f' of product {product_id}'} scores ≥ "
                            f"{min_score:g} (best {best if best is None else round(best, 4)})")
        hit = eligible[0]
        used.add(hit.id)
        clips.append({"clip_id": hit.id, "script": clip.script or None,
                      "retrieved": {"query": f"clip at position {clip.position}", "score": hit.score,
                                    "index": lib.clip_index.index_id}})
    source = {"kind": "autocut_tokens", "tokenizer": lib.video_tokenizer.tokenizer_id,
              "clip_index": lib.clip_index.index_id}
    bgm = None
    if parsed.audio:
        if lib.bgm_index is None:
            source["bgm"] = "not retrieved: no production music index"
        else:
            q = lib.audio_tokenizer.decode_tokens("".join(parsed.audio)).mean(axis=0, keepdims=True)
            hits = lib.bgm_index.search(q, 1)[0]
            if hits and hits[0].score >= min_score:
                bgm = {"entity_id": hits[0].id}
                source["bgm"] = f"{hits[0].id} from {lib.bgm_index.index_id} (score {hits[0].score:.4f})"
            else:
                source["bgm"] = f"not retrieved: no music window scores ≥ {min_score:g}"
    return EditPlan(product_id=product_id, clips=clips, bgm=bgm, source=source)


def token_round_trip(lake: Lake, library: Library, splits: tuple[str, ...] = ("pretrain", "finetune")
                     ) -> dict[str, Any]:
    """Each training ad's ``gold.ad_sequences`` tokens → a plan: how many of its clips come back as its own,
    in place."""
    from schemas.registry import AD_SEQUENCES, SPLIT_ASSIGNMENTS

    seq_id = library.video_tokenizer.tokenizer_id + (
        f"+{library.audio_tokenizer.tokenizer_id}" if library.audio_tokenizer else "")
    wanted = ", ".join(f"'{s}'" for s in splits)
    assigned = lake.read(SPLIT_ASSIGNMENTS, columns=["ad_id", "video_id", "product_id"],
                         where=f"split IN ({wanted})").to_pylist()
    ads = {r["ad_id"]: r["video_id"] for r in assigned}
    product_of_ad = {r["ad_id"]: r["product_id"] for r in assigned}
    seqs = {r["ad_id"]: r["sequence"] for r in lake.read(AD_SEQUENCES, columns=["ad_id", "sequence"],
                                                         where=f"tokenizer_id = {sql_literal(seq_id)}").to_pylist()}
    clips_of: dict[str, list[str]] = {}
    for c in sorted(lake.read(CLIPS, columns=["clip_id", "video_id", "idx"]).to_pylist(), key=lambda c: c["idx"]):
        clips_of.setdefault(c["video_id"], []).append(c["clip_id"])
    per_ad, hits, total = [], 0, 0
    for ad_id in sorted(a for a in ads if a in seqs):
        own = clips_of.get(ads[ad_id], [])
        try:
            got = [c.clip_id for c in plan_from_tokens(seqs[ad_id], library, product_id=product_of_ad[ad_id],
                                                       min_score=lake.settings.render.min_clip_score).clips]
            error = None
        except PlanError as e:
            got, error = [], str(e)
        same = sum(a == b for a, b in zip(own, got, strict=False))
        hits, total = hits + same, total + len(own)
        per_ad.append({"ad_id": ad_id, "clips": len(own), "own_in_place": same, "error": error,
                       "misses": [(i, a, b) for i, (a, b) in enumerate(zip(own, got, strict=False)) if a != b]})
    return {"sequence_tokenizer": seq_id, "ads": len(per_ad), "clips": total, "own_in_place": hits,
            "fraction": round(hits / total, 4) if total else None, "per_ad": per_ad}
