"""The adlake command line end to end: a DAG run through Airflow, the tables it leaves, a failing run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from lake_state import lake_state

from adlake.serve import serving

ADLAKE = [sys.executable, "-m", "adlake.cli"]


def adlake(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "ADLAKE_HOME": str(home), "ADLAKE_ENV": "test"}
    res = subprocess.run([*ADLAKE, *args], env=env, capture_output=True, text=True, timeout=600)
    if check and res.returncode:
        raise AssertionError(f"adlake {' '.join(args)} exited {res.returncode}:\n{res.stdout}\n{res.stderr[-4000:]}")
    return res


def test_serve_exposes_a_folder_on_loopback(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("hello")
    with serving(tmp_path, port=0) as url:
        assert url.startswith("http://127.0.0.1:")
        assert httpx.get(f"{url}/a.txt").text == "hello"
        assert httpx.get(f"{url}/missing").status_code == 404


def media_files(home: Path) -> dict[str, int]:
    files = (p.relative_to(home) for p in (home / "media").rglob("*") if p.is_file())
    return {str(p): (home / p).stat().st_size for p in files if p.parts[1] != "tmp"}  # not media/tmp/


class Pipeline:
    """One lake carried through the DAGs in order by the stage tests below: each test is one stage, so a
    failure names its stage and each stays well within the per-test time limit."""

    def __init__(self, home: Path, corpus: Path) -> None:
        self.home, self.corpus = home, corpus
        self.done: set[str] = set()
        self.state: dict = {}

    def needs(self, stage: str) -> None:
        if stage not in self.done:
            pytest.skip(f"the {stage} stage did not complete; its own test says why")


@pytest.fixture(scope="module")
def pipeline(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    return Pipeline(tmp_path_factory.mktemp("e2e") / "home", corpus)


@pytest.mark.slow
@pytest.mark.airflow
def test_ads_ingest_reconciles_with_the_truth_and_a_rerun_changes_nothing(pipeline: Pipeline) -> None:
    import datetime as dt
    from urllib.parse import urlparse

    from adlake.config import load_settings
    from adlake.evaluate.ingest import check_against_truth
    from adlake.lake import Lake
    from adlake.provenance import RunContext
    from schemas.registry import VIDEOS

    home, corpus = pipeline.home, pipeline.corpus
    gt = json.loads((corpus / "ground_truth.json").read_text())
    params = ["--param", f"manifest={corpus / 'manifest.parquet'}", "--param", "crawl_date=2026-11-01"]
    with serving(corpus, port=urlparse(gt["base_url"]).port):
        outcome = json.loads(adlake(home, "run", "ads_ingest", *params, "--json").stdout)
        assert outcome["ok"]
        tasks = [t["task_id"] for t in outcome["tasks"]]
        assert tasks[0] == "filter_manifest" and tasks[-1] == "finalize" and "crawl_shard" in tasks
        rec = outcome["tasks"][-1]["output"]["reconciliation"]
        assert rec["balanced"] and rec["manifest_rows"] == gt["manifest_rows"]
        assert rec["manifest_quarantined"] + rec["selected"] + rec["filtered"] + rec["crawl_quarantined"] == \
            gt["manifest_rows"]

        lake = Lake(RunContext.create("test", settings=load_settings(home=str(home))))
        check = check_against_truth(lake, corpus, dt.date(2026, 11, 1))
        assert check.ok, check.mismatches
        assert check.checked == gt["manifest_rows"]

        tables = {t["table"]: t for t in json.loads(adlake(home, "tables", "--json").stdout)}
        media = media_files(home)
        blobs = {Path(p).name for p in media if p.startswith("media/videos/")}
        assert blobs == {r["video_id"] for r in lake.read(VIDEOS).to_pylist()}  # no blob that failed the probe
        adlake(home, "run", "ads_ingest", *params, "--json")
    again = {t["table"]: t for t in json.loads(adlake(home, "tables", "--json").stdout)}
    assert {k: v["rows"] for k, v in again.items()} == {k: v["rows"] for k, v in tables.items()}
    for table in ("bronze.crawl_manifest", "bronze.videos", "silver.ads", "ops.quarantine"):
        assert again[table]["version"] == tables[table]["version"], table  # an unchanged manifest commits nothing
    assert media_files(home) == media
    pipeline.state["bronze_tables"] = again
    pipeline.done.add("ads_ingest")


@pytest.mark.slow
@pytest.mark.airflow
def test_ads_parse_puts_every_video_in_one_place_and_a_rerun_changes_nothing(pipeline: Pipeline) -> None:
    pipeline.needs("ads_ingest")
    home, corpus = pipeline.home, pipeline.corpus
    again = pipeline.state["bronze_tables"]
    # ads_parse on what the crawl brought in; every video in one place; the bar's checks on its tables
    parsed = json.loads(adlake(home, "run", "ads_parse", "--json").stdout)
    assert parsed["ok"], parsed
    tasks = [t["task_id"] for t in parsed["tasks"]]
    assert tasks[0] == "plan_batches" and tasks[-1] == "commit" and "parse_batch" in tasks
    rec = parsed["tasks"][-1]["output"]["reconciliation"]
    assert rec["balanced"] and rec["videos"] == again["bronze.videos"]["rows"] == rec["parsed"] + rec["filtered"]
    score = json.loads(adlake(home, "evaluate", "parse", str(corpus), "--json", check=False).stdout)
    assert score["videos_scored"] == rec["videos"]
    assert score["shots"]["pass"] and score["asr"]["pass"] and score["frames"]["pass"], score
    parsed_tables = {t["table"]: t for t in json.loads(adlake(home, "tables", "--json").stdout)}
    rerun = json.loads(adlake(home, "run", "ads_parse", "--json").stdout)
    assert rerun["ok"] and all(t["output"]["videos"] == 0 for t in rerun["tasks"] if t["task_id"] == "parse_batch")
    after = {t["table"]: t for t in json.loads(adlake(home, "tables", "--json").stdout)}
    assert {k: (v["version"], v["rows"]) for k, v in after.items()} == \
        {k: (v["version"], v["rows"]) for k, v in parsed_tables.items()}
    pipeline.done.add("ads_parse")


@pytest.mark.slow
@pytest.mark.airflow
def test_ads_features_embeds_everything_once_and_waits_for_a_tokenizer(pipeline: Pipeline) -> None:
    pipeline.needs("ads_parse")
    home = pipeline.home
    # ads_features on a fresh lake: embeds on Ray, says tokenization waits for train_tokenizer, succeeds
    features = json.loads(adlake(home, "run", "ads_features", "--json").stdout)
    assert features["ok"], features
    out = {t["task_id"]: t["output"] for t in features["tasks"]}
    assert out["embed_frames"]["embedded"] == out["embed_frames"]["pending"] > 0
    assert out["embed_audio"]["embedded"] == out["embed_audio"]["pending"] > 0
    # no tokenizer yet: tokenize is skipped (no gold.tokens event), and says why
    tok_task = next(t for t in features["tasks"] if t["task_id"] == "tokenize")
    assert tok_task["state"] == "skipped" and "train_tokenizer" in out["tokenize"]["skipped"]
    embedded = {t["table"]: t for t in json.loads(adlake(home, "tables", "--json").stdout)}["silver.embeddings"]
    assert embedded["rows"] == sum(out[t]["embedded"] for t in ("embed_frames", "embed_audio", "embed_bgm"))
    again = json.loads(adlake(home, "run", "ads_features", "--json").stdout)
    assert again["ok"] and all(t["output"].get("pending", 0) == 0 for t in again["tasks"])
    assert {t["table"]: t for t in json.loads(adlake(home, "tables", "--json").stdout)}["silver.embeddings"] == \
        embedded
    pipeline.state["embedded"] = out
    pipeline.done.add("ads_features")


@pytest.mark.slow
@pytest.mark.airflow
def test_train_tokenizer_then_ads_features_tokenizes_and_a_second_version_adds_its_rows(pipeline: Pipeline) -> None:
    pipeline.needs("ads_features")
    home = pipeline.home
    out = pipeline.state["embedded"]
    # train_tokenizer (a small tokenizer under conf/test.yaml), then ads_features tokenizes with it
    trained = json.loads(adlake(home, "run", "train_tokenizer", "--json").stdout)
    assert trained["ok"], trained
    figures = {t["task_id"]: t["output"]["trained"] for t in trained["tasks"] if t["task_id"] != "announce"}
    announced = next(t for t in trained["tasks"] if t["task_id"] == "announce")
    assert announced["state"] == "success" and announced["output"]["promoted"] == {"video": "1", "audio": "1"}
    assert figures["train_video"]["video"]["production"] == figures["train_audio"]["audio"]["production"] == "1"
    tokenized = json.loads(adlake(home, "run", "ads_features", "--json").stdout)
    tok = {t["task_id"]: t["output"] for t in tokenized["tasks"]}["tokenize"]
    assert tok["production"] == {"video": "1", "audio": "1"}
    assert tok["tokenized"]["video"] == out["embed_frames"]["embedded"]
    assert tok["tokenized"]["audio"] == out["embed_audio"]["embedded"] + out["embed_bgm"]["embedded"]
    assert tok["sequences"] == tok["sequences_written"] > 0 and tok["sequences_incomplete"] == 0
    seq = json.loads(adlake(home, "show", "gold.ad_sequences", "--limit", "1", "--json").stdout)[0]["sequence"]
    assert seq.startswith("<|ad_start|><|clip_start|><|text_start|>") and "<|frame_start|><v_0_" in seq
    assert seq.endswith("<|ad_end|>")
    gold = {t["table"]: t for t in json.loads(adlake(home, "tables", "--json").stdout)}
    rerun = json.loads(adlake(home, "run", "ads_features", "--json").stdout)
    assert "nothing to tokenize" in {t["task_id"]: t["output"] for t in rerun["tasks"]}["tokenize"]["skipped"]
    after = {t["table"]: t for t in json.loads(adlake(home, "tables", "--json").stdout)}
    for table in ("gold.tokens", "gold.ad_sequences", "silver.embeddings"):
        assert (after[table]["version"], after[table]["rows"]) == (gold[table]["version"], gold[table]["rows"])
    # a second video tokenizer adds its own rows; version 1's stay readable
    adlake(home, "tokenizer", "train", "--modality", "video", "--force")
    adlake(home, "run", "ads_features", "--json")
    tokens = json.loads(adlake(home, "show", "gold.tokens", "--limit", "100000", "--json").stdout)
    per_version = {tid: sum(1 for r in tokens if r["tokenizer_id"] == tid) for tid in {r["tokenizer_id"] for r in tokens}}
    assert per_version == {"adlake-rqvae-video/1": tok["tokenized"]["video"],
                           "adlake-rqvae-video/2": tok["tokenized"]["video"],
                           "adlake-rqvae-audio/1": tok["tokenized"]["audio"]}
    shown = json.loads(adlake(home, "tokenizer", "show", "--json").stdout)
    assert {(r["modality"], r["version"], r["production"]) for r in shown} == {("video", "2", "2"), ("audio", "1", "1")}
    pipeline.state["tokens"] = tokens
    pipeline.done.add("train_tokenizer")


@pytest.mark.slow
@pytest.mark.airflow
def test_index_refresh_builds_exact_indexes_that_search_finds_and_skips_an_unchanged_night(pipeline: Pipeline) -> None:
    pipeline.needs("train_tokenizer")
    home = pipeline.home
    tokens = pipeline.state["tokens"]
    # index_refresh: exact clip and music indexes, the token round trip with the production tokenizer
    indexed = json.loads(adlake(home, "run", "index_refresh", "--json").stdout)
    assert indexed["ok"], indexed
    built = {t["task_id"]: t["output"] for t in indexed["tasks"]}
    clips = built["build_clips"]["built"]["clips"]
    assert clips["production"] == clips["version"] == "1" and clips["figures"]["recall_at_10"] == 1.0
    trip = clips["token_roundtrip"]
    assert trip["computed"] and trip["tokenizer_id"] == "adlake-rqvae-video/2" and trip["queries"] > 0
    assert 0 <= trip["own_video_in_top_k"] <= 1
    assert "bgm" in built["build_bgm"]["built"] or "bgm" in built["build_bgm"]["skipped"]
    nightly = json.loads(adlake(home, "run", "index_refresh", "--json").stdout)
    # nothing new arrived: both builds are skipped, and say so
    assert nightly["ok"] and all(t["state"] == "skipped" and t["output"]["skipped"] for t in nightly["tasks"])
    clip_id = json.loads(adlake(home, "show", "silver.clips", "--limit", "1", "--json").stdout)[0]["clip_id"]
    found = json.loads(adlake(home, "search", "--clip", clip_id, "--k", "3", "--json").stdout)
    assert found["index"] == "adlake-index-clips/1" and found["hits"][0]["id"] == clip_id
    assert len(found["hits"]) == 3 and found["hits"][0]["score"] >= found["hits"][2]["score"]
    frame_tokens = next(r["tokens"] for r in tokens if r["tokenizer_id"] == "adlake-rqvae-video/2")
    by_tokens = json.loads(adlake(home, "search", "--tokens", frame_tokens, "--k", "5", "--json").stdout)
    assert len(by_tokens["hits"]) == 5 and "adlake-rqvae-video/2" in by_tokens["query"]
    assert adlake(home, "search", "--clip", "no-such-clip", check=False).returncode != 0
    pipeline.done.add("index_refresh")


@pytest.mark.slow
@pytest.mark.airflow
def test_training_sets_assigns_every_ad_once_scores_baselines_and_rebuilds_identically(
        pipeline: Pipeline, cli_lake_counts: dict, embedded_lake: dict) -> None:
    pipeline.needs("train_tokenizer")
    home = pipeline.home
    # training_sets: every selected ad in one split, no leaks, a benchmark, baselines; a rebuild changes nothing
    sets = json.loads(adlake(home, "run", "training_sets", "--json").stdout)
    assert sets["ok"], sets
    out = {t["task_id"]: t["output"] for t in sets["tasks"]}
    built = out["build_training_sets"]
    assert not any(built["leaks"].values()) and built["benchmark_samples"] >= 1
    assignments = json.loads(adlake(home, "show", "gold.split_assignments", "--json").stdout)
    selected = [a for a in json.loads(adlake(home, "show", "silver.ads", "--json").stdout) if a["status"] == "selected"]
    assert sorted(a["ad_id"] for a in assignments) == sorted(a["ad_id"] for a in selected)
    assert out["score_baselines"]["systems"]["random"]["samples"] == built["benchmark_samples"]
    assert "not computed" in out["score_baselines"]["judge"]
    tables_before = {t["table"]: (t["version"], t["rows"]) for t in json.loads(adlake(home, "tables", "--json").stdout)}
    again = json.loads(adlake(home, "run", "training_sets", "--json").stdout)
    rebuilt = {t["task_id"]: t["output"] for t in again["tasks"]}["build_training_sets"]
    assert rebuilt["export_hash"] == built["export_hash"] and rebuilt["files"] == built["files"]
    assert not any(rebuilt["written"].values())
    tables_after = {t["table"]: (t["version"], t["rows"]) for t in json.loads(adlake(home, "tables", "--json").stdout)}
    for table in ("gold.samples", "gold.benchmark", "gold.split_assignments"):
        assert tables_after[table] == tables_before[table]
    # adlake evaluate PREDICTIONS: the truth itself scores 1 beside the baselines
    bench = json.loads(adlake(home, "show", "gold.benchmark", "--json").stdout)
    predictions = home.parent / "oracle.jsonl"
    predictions.write_text("".join(json.dumps({
        "sample_id": b["sample_id"], "clips": [t["clip_id"] for t in json.loads(b["truth"])],
        "scripts": [t["script"] for t in json.loads(b["truth"])],
        "subtitles": [t["subtitles"] for t in json.loads(b["truth"])]}) + "\n" for b in bench))
    report = json.loads(adlake(home, "evaluate", str(predictions), "--json").stdout)
    oracle = report["systems"]["oracle"]
    assert oracle["SRA"] == oracle["CSA"] == oracle["CRA"] == 1.0 and oracle["WCD"] is not None
    assert {"random", "embedding"} <= set(report["systems"]) and Path(report["report_dir"], "report.md").exists()

    shown = json.loads(adlake(home, "show", "silver.ads", "--limit", "3", "--json").stdout)
    assert len(shown) == 3 and {"ad_id", "status", "video_id"} <= set(shown[0])
    assert json.loads(adlake(home, "show", "bronze.videos", "--version", "0", "--json").stdout) == []
    # what tests/test_service.py compares the scheduler-built lake of the same corpus with
    env = {**os.environ, "ADLAKE_HOME": str(home), "ADLAKE_ENV": "test"}
    cli_lake_counts.update(lake_state(env, "2026-11-01"))
    embedded_lake.update(env)  # and tests/test_cluster.py
    # every benchmark sample has preview MP4s (truth and both baselines) and a contact sheet; a rebuild renders none
    previews = out["render_previews"]
    assert previews["samples"] == built["benchmark_samples"] and not previews["failed"]
    assert previews["videos"] == 3 * previews["samples"] and previews["rendered"] == previews["videos"]
    again_previews = {t["task_id"]: t["output"] for t in again["tasks"]}["render_previews"]
    assert again_previews["rendered"] == 0 and again_previews["already_rendered"] == previews["videos"]
    for sample in Path(previews["dir"]).iterdir():
        if sample.is_dir():
            assert {p.name for p in sample.glob("*.mp4")} == {"truth.mp4", "random.mp4", "embedding.mp4"}
            assert (sample / "sheet.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pipeline.done.add("training_sets")


@pytest.mark.slow
@pytest.mark.airflow
def test_an_ad_renders_from_its_plan_and_from_its_own_tokens(pipeline: Pipeline, tmp_path: Path) -> None:
    from adlake.render import checks

    pipeline.needs("training_sets")
    pipeline.needs("index_refresh")
    home = pipeline.home
    trip = json.loads(adlake(home, "plan", "roundtrip", "--json").stdout)
    assert trip["ads"] >= 1 and trip["fraction"] >= 0.9, trip
    ad_id = trip["per_ad"][0]["ad_id"]
    # the ad as cut: its plan renders to an MP4 of its clips' length
    adlake(home, "plan", "truth", ad_id, "--out", str(tmp_path / "truth.json"))
    truth = json.loads((tmp_path / "truth.json").read_text())
    rendered = json.loads(adlake(home, "render", str(tmp_path / "truth.json"), "--out", str(tmp_path / "truth.mp4"),
                                 "--check", "--json").stdout)
    assert all(c["ok"] is not False for c in rendered["checks"].values()), rendered["checks"]
    frames = sum(c["frames"] for c in rendered["clips"])
    video = next(s for s in checks.probe(tmp_path / "truth.mp4")["streams"] if s["codec_type"] == "video")
    assert abs(int(video["nb_frames"]) - frames) <= 1 and checks.faststart(tmp_path / "truth.mp4")
    assert [c["clip_id"] for c in rendered["clips"]] == [c["clip_id"] for c in truth["clips"]]
    # the same ad from its gold.ad_sequences tokens: the index gives its own clips back, in order
    seq = next(r["sequence"] for r in json.loads(adlake(home, "show", "gold.ad_sequences", "--json", "--limit",
                                                        "1000").stdout)
               if r["ad_id"] == ad_id and r["tokenizer_id"] == trip["sequence_tokenizer"])
    (tmp_path / "tokens.txt").write_text(seq)
    adlake(home, "plan", "tokens", str(tmp_path / "tokens.txt"), "--product", truth["product_id"], "--out",
           str(tmp_path / "from_tokens.json"))
    from_tokens = json.loads((tmp_path / "from_tokens.json").read_text())
    own = [c["clip_id"] for c in truth["clips"]]
    got = [c["clip_id"] for c in from_tokens["clips"]]
    assert sum(a == b for a, b in zip(own, got, strict=True)) >= 0.9 * len(own)
    assert all(c["retrieved"]["index"].startswith("adlake-index-clips/") for c in from_tokens["clips"])
    again = json.loads(adlake(home, "render", str(tmp_path / "from_tokens.json"), "--check", "--json").stdout)
    assert all(c["ok"] is not False for c in again["checks"].values()), again["checks"]
    if got == own:  # the same clips: the same length as the ad as cut
        assert again["duration_s"] == pytest.approx(rendered["duration_s"])
    # bad model output: a clear error naming the position, exit 2, no plan file
    (tmp_path / "bad.txt").write_text(seq[: len(seq) // 2])
    res = adlake(home, "plan", "tokens", str(tmp_path / "bad.txt"), "--out", str(tmp_path / "bad.json"), check=False)
    assert res.returncode == 2 and "plan.b" in res.stderr and "position" in res.stderr and not (tmp_path / "bad.json").exists()


@pytest.mark.slow
@pytest.mark.airflow
def test_train_editor_trains_both_models_scores_them_with_intervals_and_a_rerun_trains_nothing(
        pipeline: Pipeline) -> None:
    from transformers import AutoTokenizer

    from adlake.tokenizer.vocab import SPECIAL_TOKENS

    pipeline.needs("training_sets")
    home = pipeline.home
    run = json.loads(adlake(home, "run", "train_editor", "--json").stdout)
    assert run["ok"], run
    out = {t["task_id"]: t["output"] for t in run["tasks"]}
    llm, ssmp, scored = out["train_llm"], out["train_ssmp"], out["score_editor"]
    # the test tokenizers are 4 levels x 16 codes per modality
    assert llm["added_tokens"] == 4 * 16 * 2 + len(SPECIAL_TOKENS)
    assert llm["stage1"]["frozen_changed"] == [] and llm["stage1"]["trainable_params"] < llm["stage2"]["trainable_params"]
    assert llm["stage2_data"]["sequences"] + sum(llm["stage2_data"]["dropped_overlong"].values()) >= 1
    assert llm["gate"]["passed"] == llm["production_moved"] and llm["stage1"]["tokens_per_s"] > 0
    assert ssmp["sequences"] >= 1 and ssmp["steps"] == 30
    systems = scored["systems"]
    assert {"llm", "ssmp_greedy", "ssmp_self_correct", "random", "embedding"} == set(systems)
    for figures in systems.values():
        lo, hi = figures["ci"]["shot_f1"]
        assert lo <= figures["shot_f1"] <= hi
    assert scored["ranking"]["statement"].startswith(("ranked", "not ranked"))
    assert (scored["ranking"]["order"] is None) == scored["ranking"]["statement"].startswith("not ranked")
    # the registered model's tokenizer round-trips every training ad's gold.ad_sequences to the same ids
    [folder] = {p.parent for p in home.rglob("editor/editor.json")}
    tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    first_new = len(tok) - llm["added_tokens"]
    sequences = json.loads(adlake(home, "show", "gold.ad_sequences", "--json", "--limit", "1000").stdout)
    assert sequences
    for row in sequences:
        ids = tok(row["sequence"], add_special_tokens=False)["input_ids"]
        assert tok.decode(ids, skip_special_tokens=False) == row["sequence"]
        assert tok(tok.decode(ids), add_special_tokens=False)["input_ids"] == ids
        marked = sum(row["sequence"].count(t) for t in ("<v_", "<a_", *SPECIAL_TOKENS))
        assert sum(i >= first_new for i in ids) == marked
    # the same inputs again: nothing trains, nothing new is registered, the report is the same
    again = {t["task_id"]: t["output"] for t in json.loads(adlake(home, "run", "train_editor", "--json").stdout)["tasks"]}
    assert "already trained" in again["train_llm"]["skipped"] and "already trained" in again["train_ssmp"]["skipped"]
    assert again["train_llm"]["version"] == llm["version"]
    assert again["score_editor"]["systems"] == systems
    table = adlake(home, "evaluate", "editor").stdout
    assert "llm" in table and "ranked" in table


@pytest.mark.slow
@pytest.mark.airflow
def test_a_failing_dag_run_exits_non_zero(tmp_path: Path) -> None:
    res = adlake(tmp_path / "home", "run", "ads_ingest", "--param", f"manifest={tmp_path / 'nope.parquet'}",
                 "--param", "crawl_date=2026-11-01", check=False)
    assert res.returncode != 0
    assert "failed" in res.stdout + res.stderr


def test_json_output_is_the_only_thing_on_stdout_even_when_a_library_writes_after_it() -> None:
    """Ray's log monitor forwarded a killed node's last line to the driver's stdout after `adlake run
    --json` had printed its result (the cluster test's JSON then failed to parse): whatever a library
    writes to stdout, from Python or from C through fd 1, before or after the result, goes to stderr."""
    script = """
import os, sys, threading
from adlake.cli.common import out, print_json, stdout_to_stderr
with stdout_to_stderr():
    print("a library's print")
    os.write(1, b"a C library's write\\n")
print_json({"ok": True})
late = threading.Thread(target=lambda: (print("a late log line"), os.write(1, b"late from C\\n")))
late.start(); late.join()
out.print("[bold]a table[/]")
"""
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    first, _, rest = res.stdout.partition("}\n")
    assert json.loads(first + "}") == {"ok": True}
    assert rest == "a table\n"  # the human console still reaches stdout
    for line in ("a library's print", "a C library's write", "a late log line", "late from C"):
        assert line in res.stderr and line not in res.stdout
