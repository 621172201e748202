"""Leak-safe splits: a pure function of the ads (product, advertiser, video, a vector) and a seed.

Ads that share a product, an advertiser, a video, or are near-duplicates by embedding (cosine ≥
``near_duplicate_cosine`` between ad vectors) are joined into one leak group; a group sits wholly on
one side. Test groups are drawn in a seeded order until ``test_products`` products are in; each test
product contributes one ad (VC-LLM: distinct products, one video each) and its other ads become the
benchmark's same-product distractors, never trained on. Training products keep at most
``max_videos_per_product`` ads; the rest are dropped with that reason. Training products are divided
into the continued-pretraining and the fine-tuning parts by a seeded draw.

Every ad ends in exactly one role: pretrain, finetune, test, test_distractor or dropped.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

ROLES = ("pretrain", "finetune", "test", "test_distractor", "dropped")


@dataclass(frozen=True)
class AdKey:
    ad_id: str
    product_id: str
    advertiser_id: str | None
    video_id: str


@dataclass(frozen=True)
class Assignment:
    ad_id: str
    product_id: str
    advertiser_id: str | None
    video_id: str
    group_id: str
    split: str
    reason: str


class _UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _rank(seed: int, *parts: str) -> str:
    return hashlib.sha256(":".join((str(seed), *parts)).encode()).hexdigest()


def near_duplicate_pairs(vectors: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Index pairs (i < j) of rows whose cosine is at least ``threshold`` (rows are L2-normalised)."""
    import faiss

    if len(vectors) < 2:
        return []
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    lims, _, found = index.range_search(x, float(threshold))
    return sorted({(i, int(j)) for i in range(len(x)) for j in found[lims[i]: lims[i + 1]] if i < j})


def leak_groups(ads: list[AdKey], vectors: np.ndarray | None, threshold: float) -> list[int]:
    """Per ad, the index of its leak group's first ad (products, advertisers, videos, near-duplicates joined)."""
    uf = _UnionFind(len(ads))
    first: dict[tuple[str, str], int] = {}
    for i, ad in enumerate(ads):
        for kind, value in (("product", ad.product_id), ("advertiser", ad.advertiser_id), ("video", ad.video_id)):
            if value is None:
                continue
            if (kind, value) in first:
                uf.union(first[(kind, value)], i)
            else:
                first[(kind, value)] = i
    if vectors is not None:
        for i, j in near_duplicate_pairs(vectors, threshold):
            uf.union(i, j)
    return [uf.find(i) for i in range(len(ads))]


def assign_splits(ads: list[AdKey], vectors: np.ndarray | None, *, seed: int, test_products: int,
                  max_videos_per_product: int, finetune_share: float,
                  near_duplicate_cosine: float) -> list[Assignment]:
    """One role per ad; deterministic for the same ads (in any order), vectors and seed."""
    order = sorted(range(len(ads)), key=lambda i: ads[i].ad_id)
    ads = [ads[i] for i in order]
    vectors = None if vectors is None else vectors[order]
    roots = leak_groups(ads, vectors, near_duplicate_cosine)
    members: dict[int, list[int]] = defaultdict(list)
    for i, root in enumerate(roots):
        members[root].append(i)
    group_id = {root: _rank(0, *sorted(ads[i].ad_id for i in idx))[:12] for root, idx in members.items()}
    groups = sorted(members, key=lambda r: _rank(seed, "group", group_id[r]))

    test_groups: set[int] = set()
    chosen = 0
    for root in groups:
        if chosen >= test_products:
            break
        test_groups.add(root)
        chosen += len({ads[i].product_id for i in members[root]})

    out: list[Assignment] = []
    for root, idx in members.items():
        by_product: dict[str, list[int]] = defaultdict(list)
        for i in idx:
            by_product[ads[i].product_id].append(i)
        for product, ad_rows in by_product.items():
            ranked = sorted(ad_rows, key=lambda i: _rank(seed, "ad", ads[i].ad_id))
            if root in test_groups:
                roles = [("test", "one video per test product")] + [
                    ("test_distractor", "another ad of a test product: benchmark distractor, never trained on")
                ] * (len(ranked) - 1)
            else:
                part = "finetune" if int(_rank(seed, "part", product)[:8], 16) / 16**8 < finetune_share \
                    else "pretrain"
                kept = min(len(ranked), max_videos_per_product)
                roles = [(part, "training product")] * kept + [
                    ("dropped", f"training products keep at most {max_videos_per_product} videos")
                ] * (len(ranked) - kept)
            for i, (split, reason) in zip(ranked, roles, strict=True):
                ad = ads[i]
                out.append(Assignment(ad.ad_id, ad.product_id, ad.advertiser_id, ad.video_id, group_id[root],
                                      split, reason))
    return sorted(out, key=lambda a: a.ad_id)


def leaks(assignments: list[Assignment], vectors_by_ad: dict[str, np.ndarray] | None = None,
          near_duplicate_cosine: float = 1.0) -> dict[str, list[str]]:
    """What appears on both the test side and the training side: products, advertisers, videos, groups, and
    (with vectors) near-duplicate ad pairs. Empty lists when the split is leak-free."""
    test = [a for a in assignments if a.split in ("test", "test_distractor")]
    train = [a for a in assignments if a.split in ("pretrain", "finetune")]
    found = {}
    for field in ("product_id", "advertiser_id", "video_id", "group_id"):
        a = {getattr(x, field) for x in test} - {None}
        b = {getattr(x, field) for x in train} - {None}
        found[field] = sorted(a & b)
    found["near_duplicates"] = []
    if vectors_by_ad and test and train:
        t = np.stack([vectors_by_ad[a.ad_id] for a in test])
        r = np.stack([vectors_by_ad[a.ad_id] for a in train])
        sims = t @ r.T
        for i, j in zip(*np.nonzero(sims >= near_duplicate_cosine), strict=True):
            found["near_duplicates"].append(f"{test[i].ad_id}~{train[j].ad_id}")
    return found


def split_sizes(assignments: list[Assignment]) -> dict[str, dict[str, int]]:
    out = {}
    for role in ROLES:
        rows = [a for a in assignments if a.split == role]
        out[role] = {"ads": len(rows), "products": len({a.product_id for a in rows})}
    return out


def test_product_target(total_products: int, test_products: int | float) -> int:
    """``test_products`` as a count, or as a share of all products when below 1."""
    if test_products < 1:
        return max(1, math.floor(total_products * test_products))
    return int(test_products)
