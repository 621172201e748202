"""training_sets: leak-safe splits, task samples in ShareGPT layout, the benchmark, baselines and the judge."""

from __future__ import annotations

import json
import threading
from collections import Counter, defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from adlake.datasets import samples as S
from adlake.datasets.splits import AdKey, assign_splits, leak_groups, leaks, split_sizes
from adlake.evaluate.benchmark import (
    BenchmarkSample,
    embedding_baseline,
    greedy_order,
    random_baseline,
    score,
)
from adlake.vectors import unit


def large_corpus(products: int = 5000, seed: int = 3) -> tuple[list[AdKey], np.ndarray]:
    """Products owned by advertisers, 1-4 ads each, some re-uploaded videos and cross-advertiser near-duplicates."""
    rng = np.random.default_rng(seed)
    keys, vectors = [], []
    for p in range(products):
        advertiser = f"adv{p % (products // 6):05d}"
        for a in range(int(rng.integers(1, 5))):
            keys.append(AdKey(f"ad{p:05d}_{a}", f"p{p:05d}", advertiser, f"v{p:05d}_{a}"))
            vectors.append(rng.normal(size=32))
    x = unit(np.array(vectors))
    # 300 near-duplicates of ads of other products and advertisers, and 100 re-used videos
    for i in rng.choice(len(keys), 300, replace=False):
        j = int(rng.integers(len(keys)))
        x[j] = unit(x[i] + 0.02 * rng.normal(size=32))
    for i in rng.choice(len(keys), 100, replace=False):
        j = int(rng.integers(len(keys)))
        keys[j] = AdKey(keys[j].ad_id, keys[j].product_id, keys[j].advertiser_id, keys[i].video_id)
    return keys, x


def test_splits_of_a_large_corpus_leak_nothing_and_follow_the_vc_llm_rules() -> None:
    keys, x = large_corpus()
    conf = {"seed": 7, "test_products": 500, "max_videos_per_product": 2, "finetune_share": 0.3,
            "near_duplicate_cosine": 0.95}
    out = assign_splits(keys, x, **conf)
    assert sorted(a.ad_id for a in out) == sorted(k.ad_id for k in keys)  # every ad exactly once
    by_ad = {k.ad_id: v for k, v in zip(keys, x, strict=True)}
    assert leaks(out, by_ad, 0.95) == {"product_id": [], "advertiser_id": [], "video_id": [], "group_id": [],
                                       "near_duplicates": []}
    sizes = split_sizes(out)
    assert sizes["test"]["products"] == sizes["test"]["ads"] >= 500  # one video per distinct test product
    per_product = Counter(a.product_id for a in out if a.split in ("pretrain", "finetune"))
    assert max(per_product.values()) == 2 and sizes["dropped"]["ads"] > 0
    assert sizes["pretrain"]["ads"] > sizes["finetune"]["ads"] > 0
    test_products = {a.product_id for a in out if a.split == "test"}
    assert {a.product_id for a in out if a.split == "test_distractor"} <= test_products
    # a pure function: the same split from shuffled input; another seed, another split
    order = np.random.default_rng(0).permutation(len(keys))
    assert assign_splits([keys[i] for i in order], x[order], **conf) == out
    assert assign_splits(keys, x, **{**conf, "seed": 8}) != out


def test_near_duplicates_join_ads_of_different_products_and_advertisers() -> None:
    keys = [AdKey("a", "p1", "adv1", "v1"), AdKey("b", "p2", "adv2", "v2"), AdKey("c", "p3", "adv3", "v3")]
    x = unit(np.array([[1.0, 0, 0], [0.99, 0.05, 0], [0, 0, 1.0]]))
    groups = leak_groups(keys, x, threshold=0.95)
    assert groups[0] == groups[1] != groups[2]
    assert len(set(leak_groups(keys, None, 0.95))) == 3


def ad(i: int, product: str, clips: int = 3, bgm: bool = True) -> S.Ad:
    return S.Ad(f"ad{i}", product, f"Product {product}", ["soft", "cheap"], "home", f"v{i}",
                [S.Clip(f"v{i}:{c}", c, 2.0 + c, f"Script {i} {c}.", [f"file:///f/{i}/{c}/s.jpg",
                                                                       f"file:///f/{i}/{c}/t0.jpg"],
                        f"<|frame_start|><v_0_{i}><v_1_{c}><|frame_end|>") for c in range(clips)],
                [(f"v{i}:bgm:0", f"<a_0_{i}><a_1_0>")] if bgm else [])


def test_vc_llm_samples_are_sharegpt_records_whose_answers_name_the_ads_clips_in_order() -> None:
    ads = [ad(i, f"p{i}") for i in range(4)]
    pool = [(a.ad_id, c) for a in ads for c in a.clips]
    remix = S.vc_remix(ads[0], "pretrain", pool, seed=1, shuffles=4, distractor_ratio=1.0)
    assert [s.sample_id for s in remix] == [f"vc_remix:pretrain:ad0:{k}" for k in range(4)]
    orders = set()
    for sample in remix:
        record = json.loads(sample.messages)
        assert [m["from"] for m in record["conversations"]] == ["human", "gpt"] and record["system"]
        human, answer = record["conversations"][0]["value"], record["conversations"][1]["value"]
        assert human.count("<image>") == len(record["images"]) == 6 * 2  # 3 own + 3 distractors, 2 views each
        shown = [line.split("]")[0][1:] for line in human.splitlines() if line.startswith("[C")]
        images = record["images"][::2]
        clip_at = {label: img.split("/")[4] + ":" + img.split("/")[5] for label, img in zip(shown, images,
                                                                                           strict=True)}
        assert [clip_at[label] for label in answer.split(", ")] == ["0:0", "0:1", "0:2"]
        orders.add(answer)
    assert len(orders) > 1  # shuffles relabel the clips
    compound = json.loads(S.vc_compound(ads[1], "finetune", pool, 1, 1, 1.0)[0].messages)
    steps = json.loads(compound["conversations"][1]["value"])
    assert [s["script"] for s in steps] == ["Script 1 0.", "Script 1 1.", "Script 1 2."]
    assert all(s["subtitles"] for s in steps)
    segment = json.loads(S.vc_segment(ads[2], "pretrain")[0].messages)["conversations"][1]["value"]
    assert segment.splitlines()[0] == "C1: Script 2 0"


def test_autocut_samples_use_token_strings_and_follow_the_mix() -> None:
    assert S.mixed_counts(10, {"a": 0.3, "b": 0.3, "c": 0.2, "d": 0.2}) == {"a": 3, "b": 3, "c": 2, "d": 2}
    assert sum(S.mixed_counts(7, {"a": 0.3, "b": 0.3, "c": 0.2, "d": 0.2}).values()) == 7
    ads = [ad(i, f"p{i}") for i in range(3)]
    pool = [(a.ad_id, c) for a in ads for c in a.clips]
    select = json.loads(S.autocut_select(ads[0], "train", pool, seed=2, negative_ratio=1.0).messages)
    human = select["conversations"][0]["value"]
    assert "images" not in select and human.count("<|clip_start|>") == 6  # 1:1 negatives
    assert "<v_0_0>" in human and select["conversations"][1]["value"].count("C") == 3
    bgm = S.autocut_bgm(ads[0], "train", [(a.ad_id, w, t) for a in ads for w, t in a.bgm], seed=2, negatives=3)
    record = json.loads(bgm.messages)
    assert record["conversations"][0]["value"].count("<|audio_start|>") == 3  # own + the 2 other ads' music
    assert S.autocut_bgm(ad(9, "p9", bgm=False), "train", [], 2, 3) is None


def bench_sample() -> BenchmarkSample:
    candidates = [{"label": f"C{i + 1}", "clip_id": cid, "duration_s": 4.0}
                  for i, cid in enumerate(["x:1", "a:0", "b:0", "a:1", "a:2"])]
    truth = [{"clip_id": c, "script": "Fresh coffee every day.", "subtitles": ["Fresh coffee every day"],
              "duration_s": 4.0} for c in ("a:0", "a:1", "a:2")]
    return BenchmarkSample("vc_llm:a", 3, candidates, truth)


def test_scoring_a_perfect_and_a_wrong_prediction_and_the_baselines() -> None:
    bench = [bench_sample()]
    perfect = {"vc_llm:a": {"sample_id": "vc_llm:a", "clips": ["C2", "C4", "C5"],
                            "scripts": ["Fresh coffee every day."] * 3,
                            "subtitles": [["Fresh coffee every day"]] * 3}}
    summary, _ = score(bench, perfect, words_per_second=1.0)
    assert summary["SRA"] == summary["CSA"] == summary["CRA"] == summary["shot_f1"] == 1.0
    assert summary["WCD"] == 0.0 and summary["SSA"] == 1.0  # 4 words in 4 s at 1 word/s
    swapped = {"vc_llm:a": {"sample_id": "vc_llm:a", "clips": ["a:1", "a:0", "x:1"]}}
    summary, _ = score(bench, swapped, words_per_second=1.0)
    assert summary["SRA"] == 0.0 and summary["CSA"] == round(2 / 3, 4) and summary["CRA"] == 0.0
    assert summary["WCD"] is None and summary["SSA"] is None  # no scripts: not computed
    missing, _ = score(bench, {}, 1.0)
    assert missing["missing_predictions"] == 1 and missing["SRA"] == 0.0
    assert random_baseline(bench, 0) == random_baseline(bench, 0)
    assert len(random_baseline(bench, 0)["vc_llm:a"]["clips"]) == 3


def test_the_embedding_baseline_keeps_the_largest_cluster_and_chains_last_to_first_frames() -> None:
    e = np.eye(4, dtype=np.float32)
    # a:0 → a:1 → a:2 chain (last frame of one = first frame of the next); x and b lie elsewhere
    first_last = {"a:0": (e[0], e[1]), "a:1": (e[1], e[2]), "a:2": (e[2], e[3]), "x:1": (-e[0], -e[0]),
                  "b:0": (-e[1], -e[1])}
    assert greedy_order(["a:2", "a:0", "a:1"], first_last) == ["a:0", "a:1", "a:2"]
    centre = unit(np.array([1.0, 1, 1, 1]))
    vectors = {"a:0": unit(centre + 0.1 * e[0]), "a:1": unit(centre + 0.1 * e[1]), "a:2": unit(centre + 0.1 * e[2]),
               "x:1": unit(-centre + 0.1 * e[3]), "b:0": unit(-centre)}
    picked = embedding_baseline([bench_sample()], vectors, first_last, seed=0)["vc_llm:a"]["clips"]
    assert picked == ["a:0", "a:1", "a:2"]


def test_benchmark_candidates_are_the_ads_clips_plus_other_ads_of_the_same_product() -> None:
    from adlake.datasets.build import benchmark_rows

    test_ads = [ad(1, "p1"), ad(2, "p2")]
    distractors = [ad(3, "p1", clips=2), ad(4, "p9")]
    rows = {r["ad_id"]: r for r in benchmark_rows(test_ads, distractors, seed=0)}
    shown = {c["clip_id"] for c in json.loads(rows["ad1"]["candidates"])}
    assert shown == {"v1:0", "v1:1", "v1:2", "v3:0", "v3:1"} and rows["ad1"]["same_product_distractors"] == 2
    assert rows["ad2"]["same_product_distractors"] == 0 and rows["ad1"]["k"] == 3
    assert [t["clip_id"] for t in json.loads(rows["ad1"]["truth"])] == ["v1:0", "v1:1", "v1:2"]


def test_the_judge_is_not_computed_without_an_endpoint_and_scores_through_one() -> None:
    from adlake.config import JudgeConf
    from adlake.evaluate.judge import JUDGED, judge, parse_score

    assert parse_score('Sure: {"score": 4, "reason": "ok"}') == 4 and parse_score("great") is None
    items = [{"product": "Product: lamp", "video": "1. clip C1: Bright light."}]
    off = judge(items, JudgeConf())
    assert off["computed"] is False and "not computed" in off["status"] and set(off["templates"]) == set(JUDGED)
    seen: dict[str, int] = defaultdict(int)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen[body["model"]] += 1
            reply = json.dumps({"choices": [{"message": {"content": '{"score": 4, "reason": "fine"}'}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        on = judge(items, JudgeConf(base_url=f"http://127.0.0.1:{server.server_port}/v1", model="judge-1"))
    finally:
        server.shutdown()
    assert on["computed"] and all(on[m] == 4.0 for m in JUDGED) and seen["judge-1"] == len(JUDGED)


def test_splits_of_the_demo_corpus_leak_nothing() -> None:
    """The 72-ad demo corpus's products and advertisers (its plan, without rendering media)."""
    import random

    from adlake.datasets.splits import test_product_target
    from adlake.synth.corpus import _advertiser_of, _plan_ads

    plans = _plan_ads(72, random.Random(7))
    keys = [AdKey(p.ad_id, p.product_id, _advertiser_of(p.product_id, 0), p.file_name) for p in plans]
    products = len({k.product_id for k in keys})
    out = assign_splits(keys, None, seed=0, test_products=test_product_target(products, 0.2),
                        max_videos_per_product=2, finetune_share=0.3, near_duplicate_cosine=0.97)
    assert not any(leaks(out).values())
    sizes = split_sizes(out)
    assert sizes["test"]["products"] >= products // 5 and sizes["test_distractor"]["ads"] > 0
    assert sizes["pretrain"]["ads"] > 0 and sizes["finetune"]["ads"] > 0
    assert sum(v["ads"] for v in sizes.values()) == 72


def test_the_latest_crawl_of_each_ad_wins_whatever_the_row_order() -> None:
    from adlake.vectors import latest_per_key

    rows = [{"ad_id": "a", "crawl_date": "2026-11-02", "v": 2}, {"ad_id": "b", "crawl_date": "2026-11-01", "v": 1},
            {"ad_id": "a", "crawl_date": "2026-11-01", "v": 1}, {"ad_id": "b", "crawl_date": "2026-11-03", "v": 3}]
    for order in (rows, rows[::-1], rows[1:] + rows[:1]):
        assert {k: r["v"] for k, r in latest_per_key(order).items()} == {"a": 2, "b": 3}


def test_training_sets_on_an_empty_lake_are_nothing_to_do(home, monkeypatch, capsys) -> None:
    import sys

    from adlake.datasets.build import NotReady
    from adlake.errors import NothingToDo
    from adlake.jobs import cli
    from jobs.build_training_sets import main

    assert issubclass(NotReady, NothingToDo)
    with pytest.raises(NotReady, match="silver.ads does not exist yet"):
        main(["--run-id", "empty"])
    monkeypatch.setattr(sys, "argv", ["build_training_sets"])
    cli(main)  # from the shell: the reason and exit 0
    assert json.loads(capsys.readouterr().out) == {
        "job": "build_training_sets", "skipped": "silver.ads does not exist yet: run ads_ingest and ads_parse first"}
    assert not (home / "mlflow").exists()  # skipped before any MLflow run
