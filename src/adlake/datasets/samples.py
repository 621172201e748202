"""Task samples as chat messages in the ShareGPT layout LLaMA-Factory reads; pure functions of ads and a seed.

VC-LLM tasks show clips as frame references (the clip's high-resolution spatial view and its
low-resolution temporal views, one ``<image>`` each, paths in ``images``); AutoCut tasks show clips as
their token strings from ``gold.tokens``. Clips are labelled ``C1``, ``C2``, … in the order shown, so
that a shuffle changes the labels and an answer names labels.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from typing import Any

from adlake.evaluate.metrics import segment_subtitles
from adlake.tokenizer.vocab import SPECIAL

VC_TASKS = ("vc_remix", "vc_script", "vc_segment", "vc_compound")
AUTOCUT_TASKS = ("autocut_script", "autocut_order", "autocut_select", "autocut_bgm")
SYSTEM = {
    "vc": "You edit short advertisement videos: you choose and order clips and write their voiceover scripts "
          "and subtitles.",
    "autocut": "You edit short advertisement videos from video, audio and text tokens.",
}


@dataclass
class Clip:
    clip_id: str
    idx: int
    duration_s: float
    script: str
    images: list[str] = field(default_factory=list)  # spatial view, then temporal views
    tokens: str | None = None  # the clip's frames, each inside frame markers


@dataclass
class Ad:
    ad_id: str
    product_id: str
    product_name: str
    selling_points: list[str]
    industry: str | None
    video_id: str
    clips: list[Clip]
    bgm: list[tuple[str, str]] = field(default_factory=list)  # (music window id, audio token string)


@dataclass(frozen=True)
class Sample:
    sample_id: str
    task: str
    split: str
    ad_id: str
    messages: str  # JSON: {"system", "conversations": [{"from", "value"}...], "images"?}


def rng_for(seed: int, *parts: str) -> random.Random:
    return random.Random(int(hashlib.sha256(":".join((str(seed), *parts)).encode()).hexdigest()[:16], 16))


def product_block(ad: Ad) -> str:
    lines = [f"Product: {ad.product_name}"]
    if ad.selling_points:
        lines.append("Selling points: " + "; ".join(ad.selling_points))
    if ad.industry:
        lines.append(f"Industry: {ad.industry}")
    return "\n".join(lines)


def _labels(n: int) -> list[str]:
    return [f"C{i + 1}" for i in range(n)]


def _frame_refs(clips: list[Clip], labels: list[str]) -> tuple[str, list[str]]:
    lines, images = [], []
    for label, clip in zip(labels, clips, strict=True):
        lines.append(f"[{label}] {clip.duration_s:.1f}s " + "".join("<image>" for _ in clip.images))
        images += clip.images
    return "\n".join(lines), images


def clip_tokens(clip: Clip) -> str:
    s = SPECIAL
    return f"{s['clip_start']}{s['video_start']}{clip.tokens or ''}{s['video_end']}{s['clip_end']}"


def _token_refs(clips: list[Clip], labels: list[str]) -> str:
    return "\n".join(f"[{label}] {clip_tokens(clip)}" for label, clip in zip(labels, clips, strict=True))


def _message(kind: str, human: str, answer: str, images: list[str] | None = None) -> str:
    record: dict[str, Any] = {"system": SYSTEM[kind], "conversations": [{"from": "human", "value": human},
                                                                        {"from": "gpt", "value": answer}]}
    if images:
        record["images"] = images
    return json.dumps(record, ensure_ascii=False, sort_keys=True)


def _sample(task: str, split: str, ad: Ad, suffix: str, messages: str) -> Sample:
    return Sample(f"{task}:{split}:{ad.ad_id}{suffix}", task, split, ad.ad_id, messages)


def segments_of(clip: Clip) -> list[str]:
    return segment_subtitles(clip.script) if clip.script else []


def candidate_set(ad: Ad, others: list[Clip], rng: random.Random) -> tuple[list[Clip], list[str], dict[str, str]]:
    """The ad's clips plus others, shuffled; their labels, and clip id → label."""
    shown = list(ad.clips) + list(others)
    rng.shuffle(shown)
    labels = _labels(len(shown))
    return shown, labels, {c.clip_id: lab for c, lab in zip(shown, labels, strict=True)}


def _distractors(ad: Ad, pool: list[tuple[str, Clip]], count: int, rng: random.Random) -> list[Clip]:
    others = [c for owner, c in pool if owner != ad.ad_id]
    return rng.sample(others, min(count, len(others)))


# -- VC-LLM -----------------------------------------------------------------------------------------------

def _shuffled(task: str, ad: Ad, split: str, pool: list[tuple[str, Clip]], seed: int, shuffles: int,
              distractor_ratio: float, render) -> list[Sample]:
    """One sample per shuffle of the ad's clips plus others; ``render(refs, label_of)`` → (question, answer)."""
    out = []
    for k in range(shuffles):
        rng = rng_for(seed, task, ad.ad_id, str(k))
        others = _distractors(ad, pool, round(distractor_ratio * len(ad.clips)), rng)
        shown, labels, label_of = candidate_set(ad, others, rng)
        refs, images = _frame_refs(shown, labels)
        human, answer = render(refs, label_of)
        out.append(_sample(task, split, ad, f":{k}", _message("vc", human, answer, images)))
    return out


def vc_remix(ad: Ad, split: str, pool: list[tuple[str, Clip]], seed: int, shuffles: int,
             distractor_ratio: float) -> list[Sample]:
    def render(refs: str, label_of: dict[str, str]) -> tuple[str, str]:
        return (f"{product_block(ad)}\n\nUnordered clips, some from other ads:\n{refs}\n\nPick the "
                f"{len(ad.clips)} clips of this product's ad and put them in order.",
                ", ".join(label_of[c.clip_id] for c in ad.clips))

    return _shuffled("vc_remix", ad, split, pool, seed, shuffles, distractor_ratio, render)


def vc_script(ad: Ad, split: str) -> list[Sample]:
    labels = _labels(len(ad.clips))
    refs, images = _frame_refs(ad.clips, labels)
    human = f"{product_block(ad)}\n\nClips in order:\n{refs}\n\nWrite each clip's voiceover script."
    answer = "\n".join(f"{lab}: {c.script}" for lab, c in zip(labels, ad.clips, strict=True))
    return [_sample("vc_script", split, ad, "", _message("vc", human, answer, images))]


def vc_segment(ad: Ad, split: str) -> list[Sample]:
    labels = _labels(len(ad.clips))
    refs, images = _frame_refs(ad.clips, labels)
    scripts = "\n".join(f"{lab}: {c.script}" for lab, c in zip(labels, ad.clips, strict=True))
    human = (f"{product_block(ad)}\n\nClips in order:\n{refs}\n\nScripts:\n{scripts}\n\nSplit each script into "
             "subtitle segments, one segment per line group, segments separated by ' | '.")
    answer = "\n".join(f"{lab}: " + " | ".join(segments_of(c)) for lab, c in zip(labels, ad.clips, strict=True))
    return [_sample("vc_segment", split, ad, "", _message("vc", human, answer, images))]


def compound_answer(ad: Ad, label_of: dict[str, str]) -> str:
    return json.dumps([{"clip": label_of[c.clip_id], "script": c.script, "subtitles": segments_of(c)}
                       for c in ad.clips], ensure_ascii=False)


def vc_compound(ad: Ad, split: str, pool: list[tuple[str, Clip]], seed: int, shuffles: int,
                distractor_ratio: float) -> list[Sample]:
    return _shuffled("vc_compound", ad, split, pool, seed, shuffles, distractor_ratio,
                     lambda refs, label_of: (compound_prompt(ad, refs, len(ad.clips)), compound_answer(ad, label_of)))


def compound_prompt(ad: Ad, refs: str, k: int) -> str:
    return (f"{product_block(ad)}\n\nUnordered clips:\n{refs}\n\nMake a {k}-clip ad: a JSON list of "
            "{\"clip\", \"script\", \"subtitles\"} in playing order.")


# -- AutoCut ----------------------------------------------------------------------------------------------

def autocut_script(ad: Ad, split: str) -> Sample:
    labels = _labels(len(ad.clips))
    human = (f"{product_block(ad)}\n\nVideo tokens of the clips in order:\n{_token_refs(ad.clips, labels)}\n\n"
             "Write each clip's voiceover script.")
    answer = "\n".join(f"{lab}: {c.script}" for lab, c in zip(labels, ad.clips, strict=True))
    return _sample("autocut_script", split, ad, "", _message("autocut", human, answer))


def autocut_order(ad: Ad, split: str, seed: int) -> Sample:
    rng = rng_for(seed, "autocut_order", ad.ad_id)
    shown, labels, label_of = candidate_set(ad, [], rng)
    human = (f"{product_block(ad)}\n\nShuffled clips:\n{_token_refs(shown, labels)}\n\nPut the clips in "
             "playing order.")
    return _sample("autocut_order", split, ad, "",
                   _message("autocut", human, ", ".join(label_of[c.clip_id] for c in ad.clips)))


def autocut_select(ad: Ad, split: str, pool: list[tuple[str, Clip]], seed: int, negative_ratio: float) -> Sample:
    rng = rng_for(seed, "autocut_select", ad.ad_id)
    others = _distractors(ad, pool, round(negative_ratio * len(ad.clips)), rng)
    shown, labels, label_of = candidate_set(ad, others, rng)
    human = (f"{product_block(ad)}\n\nCandidate clips:\n{_token_refs(shown, labels)}\n\nWhich clips belong to "
             "this product's ad?")
    answer = ", ".join(sorted((label_of[c.clip_id] for c in ad.clips), key=lambda x: int(x[1:])))
    return _sample("autocut_select", split, ad, "", _message("autocut", human, answer))


def autocut_bgm(ad: Ad, split: str, bgm_pool: list[tuple[str, str, str]], seed: int, negatives: int
                ) -> Sample | None:
    """Pick the ad's music among music windows of other ads, from the video tokens. None without music."""
    if not ad.bgm:
        return None
    rng = rng_for(seed, "autocut_bgm", ad.ad_id)
    own = ad.bgm[rng.randrange(len(ad.bgm))]
    others = [(wid, tok) for owner, wid, tok in bgm_pool if owner != ad.ad_id]
    shown = [own, *rng.sample(others, min(negatives, len(others)))]
    rng.shuffle(shown)
    labels = [f"M{i + 1}" for i in range(len(shown))]
    s = SPECIAL
    music = "\n".join(f"[{lab}] {s['audio_start']}{tok}{s['audio_end']}" for lab, (_, tok) in zip(labels, shown,
                                                                                                   strict=True))
    human = (f"{product_block(ad)}\n\nVideo:\n{_token_refs(ad.clips, _labels(len(ad.clips)))}\n\n"
             f"Music candidates:\n{music}\n\nWhich music fits this video?")
    answer = labels[shown.index(own)]
    return _sample("autocut_bgm", split, ad, "", _message("autocut", human, answer))


def mixed_counts(total: int, mix: dict[str, float]) -> dict[str, int]:
    """Largest-remainder counts per task that sum to ``total`` and follow ``mix``."""
    weights = {t: w / sum(mix.values()) for t, w in mix.items()}
    counts = {t: int(total * w) for t, w in weights.items()}
    rest = sorted(weights, key=lambda t: (-(total * weights[t] - counts[t]), t))
    for t in rest[: total - sum(counts.values())]:
        counts[t] += 1
    return counts
