"""`adlake evaluate`: stage scores against a corpus's ground truth, and benchmark scoring."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from typer.core import TyperGroup

from adlake.cli.common import (
    JsonOpt,
    app,
    cli_lake,
    current_settings,
    out,
    print_json,
    stdout_to_stderr,
    verdict,
)


class _BenchmarkByDefault(TyperGroup):
    """`adlake evaluate PREDICTIONS` is `adlake evaluate benchmark PREDICTIONS`; the stage scorers keep their names."""

    def resolve_command(self, ctx, args):
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["benchmark", *args]
        return super().resolve_command(ctx, args)


evaluate_app = typer.Typer(cls=_BenchmarkByDefault, no_args_is_help=True,
                           help="Score predictions on the benchmark (adlake evaluate PREDICTIONS), or pipeline "
                                "stages against a synthetic corpus's ground truth.")
app.add_typer(evaluate_app, name="evaluate")


@evaluate_app.command("shots")
def evaluate_shots(
    corpus: Annotated[Path, typer.Argument(metavar="CORPUS", help="A folder written by adlake synth.")],
    tolerance_s: Annotated[float, typer.Option("--tolerance")] = 0.5,
    detector: Annotated[str | None, typer.Option(help="auto, adaptive, content or transnetv2 (default: "
                                                 "parse.shots.detector)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Shot-boundary F1 on hard cuts (and dissolves found) with the configured detector, timed against a
    bare ffmpeg decode of the same files."""
    from adlake.clips.shots import detector_name
    from adlake.evaluate.shots import score_corpus

    conf = current_settings().parse.shots
    if detector:
        conf = conf.model_validate({**conf.model_dump(), "detector": detector})
    with stdout_to_stderr():
        score = score_corpus(corpus, conf, tolerance_s, floor=True).as_dict()
    if as_json:
        print_json({"detector": {**conf.model_dump(), "used": detector_name(conf)}, **score})
        return
    out.print(f"detector {detector_name(conf)} ({conf.detector}) · {score['videos']} videos · "
              f"tolerance ±{tolerance_s} s")
    out.print(f"hard cuts: F1 {score['f1']:.3f} (precision {score['precision']:.3f}, recall {score['recall']:.3f}; "
              f"{score['cut_hits']}/{score['cuts']} found, {score['false_positives']} false)")
    out.print(f"dissolves: {score['dissolve_hits']}/{score['dissolves']} found")
    out.print(f"decode + detection {score['seconds']:.1f} s vs bare ffmpeg decode {score['floor_seconds']:.1f} s: "
              f"{score['seconds'] / score['floor_seconds']:.2f}x the floor")


@evaluate_app.command("asr")
def evaluate_asr(
    corpus: Annotated[Path, typer.Argument(metavar="CORPUS", help="A folder written by adlake synth.")],
    tolerance_s: Annotated[float, typer.Option("--tolerance")] = 0.5,
    baseline: Annotated[bool, typer.Option("--baseline", help="Also plain sequential faster-whisper on the "
                                           "same audio, same model, in the same run.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Word error rate and sentence timing of the configured ASR (bundled tiny.en by default)."""
    from adlake.evaluate.asr import score_corpus

    conf = current_settings().parse.asr
    with stdout_to_stderr():  # the VAD's libraries print to stdout
        score = score_corpus(corpus, conf, tolerance_s, baseline=baseline).as_dict()
    if as_json:
        print_json({"asr": conf.model_dump(), **score})
        return
    out.print(f"model {conf.model_path or 'bundled tiny.en'} · {score['videos']} videos with audio · "
              f"{score['sentences']} voiceover sentences")
    out.print(f"WER {score['wer']:.3f} (lower-cased, punctuation stripped, numbers spelled out)")
    out.print(f"sentences with start and end within ±{tolerance_s} s: {score['timed_within']}/{score['sentences']}"
              f" ({score['timing_share']:.1%})")
    out.print(f"voiceover flag right on {score['voiceover_correct']}/{score['videos']} · "
              f"real-time factor {score['real_time_factor']:.3f} ({score['seconds']} s for {score['audio_s']} s)")
    if score["baseline_wer"] is not None:
        out.print(f"plain sequential faster-whisper, same model and audio: WER {score['baseline_wer']:.3f} in "
                  f"{score['baseline_seconds']} s · adlake is {score['speed_up']:.2f}x its speed")
    for part, figures in score["by_part"].items():
        base = f" (baseline {figures['baseline_wer']:.3f})" if "baseline_wer" in figures else ""
        out.print(f"  {part}: {figures['ads']} ads, WER {figures['wer']:.3f}{base}")
    out.print(f"chunks the sequential decoder transcribed again: {score['redone_chunks']}")
    for row in score["per_video"]:  # the ads that lost words or sentence times, and music heard as words
        if "heard_in_music" in row:
            out.print(f"  {row['ad']}: no voiceover, heard {row['heard_in_music']}")
        elif row["wer"] > row.get("baseline_wer", row["wer"]) or row["timed_within"] < row["true"]:
            base = f" (baseline {row['baseline_wer']:.3f})" if "baseline_wer" in row else ""
            out.print(f"  {row['ad']} ({row['part']}): WER {row['wer']:.3f}{base}, "
                      f"{row['timed_within']}/{row['true']} sentences in time, {row['found']} found")


@evaluate_app.command("clips")
def evaluate_clips(
    corpus: Annotated[Path, typer.Argument(metavar="CORPUS", help="A folder written by adlake synth.")],
    as_json: JsonOpt = False,
) -> None:
    """Share of ads cut into the true number of clips (sentences with a voiceover, else shots)."""
    from adlake.evaluate.clips import score_corpus

    with stdout_to_stderr():
        score = score_corpus(corpus, current_settings().parse).as_dict()
    if as_json:
        print_json(score)
        return
    out.print(f"clip count right on {score['exact']}/{score['ads']} ads ({score['share']:.1%})")
    for m in score["misses"]:
        out.print(f"  {m['ad']} ({m['kind']}): expected {m['expected']}, found {m['found']}")


@evaluate_app.command("parse")
def evaluate_parse(
    corpus: Annotated[Path, typer.Argument(metavar="CORPUS", help="The corpus the lake's videos were crawled from.")],
    tolerance_s: Annotated[float, typer.Option("--tolerance")] = 0.5,
    as_json: JsonOpt = False,
) -> None:
    """Score what ads_parse wrote (shots, ASR, clips, frames) against the corpus's ground truth."""
    from adlake.evaluate.parse import score_lake

    with stdout_to_stderr():
        score = score_lake(cli_lake(), corpus, tolerance_s)
    if as_json:
        print_json(score)
    else:
        print_parse_score(score)
    if not all(score[k]["pass"] for k in ("shots", "asr", "clips", "frames")):
        raise typer.Exit(1)


def print_benchmark_report(report: dict[str, Any]) -> None:
    from adlake.evaluate.benchmark import METRICS, cell

    table = Table(title=f"benchmark {report['benchmark']} v{report['benchmark_version']}: {report['samples']} "
                        "test ads, each with its product's other ads' clips as distractors")
    table.add_column("system", no_wrap=True)
    for m in METRICS:
        table.add_column(m)
    for name, figures in report["systems"].items():
        table.add_row(name, *[cell(figures, m) for m in METRICS])
    out.print(table)
    if report.get("ranking"):
        out.print(f"[bold]{report['ranking']['statement']}[/] (intervals: {report.get('confidence', 0.95):.0%} "
                  "bootstrap over samples)")
    judge = report["judge"]
    out.print(f"judged metrics (VSC, Fact, Coh, Logic, SQ): {judge if isinstance(judge, str) else judge['status']}")
    out.print(f"report: {report['report_dir']}/report.md · MLflow run {report.get('mlflow_run_id')}")


@evaluate_app.command("benchmark")
def evaluate_benchmark(
    predictions: Annotated[list[Path] | None, typer.Argument(metavar="[PREDICTIONS]...",
                                                             help="JSONL predictions, one system per file")] = None,
    benchmark_version: Annotated[int | None, typer.Option(help="gold.benchmark version (default: latest)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Score PREDICTIONS (JSONL; each file one system, named by its stem) on the benchmark beside the random and
    embedding baselines, with bootstrap intervals; JSON, Markdown, MLflow."""
    from adlake.evaluate.report import BASELINES
    from jobs.score_benchmark import main as score_main

    argv = []
    stems = [p.stem for p in predictions or []]
    for path in predictions or []:
        if not path.is_file():
            raise typer.BadParameter(f"{path} is not a file")
        if stems.count(path.stem) > 1 or path.stem in BASELINES:
            raise typer.BadParameter(f"{path}: each file names one system by its stem, distinct and none of "
                                     f"{', '.join(BASELINES)}")
        argv += ["--predictions", str(path)]
    if benchmark_version is not None:
        argv += ["--benchmark-version", str(benchmark_version)]
    with stdout_to_stderr():
        report = score_main(argv)
    if as_json:
        print_json(report)
    else:
        print_benchmark_report(report)


@evaluate_app.command("editor")
def evaluate_editor(as_json: JsonOpt = False) -> None:
    """The trained editor models (LLM; SSMP greedy and self-corrective) beside the random and embedding baselines,
    from the answers the last train_editor run wrote for the latest benchmark version."""
    from jobs.score_editor import main as score_main

    with stdout_to_stderr():
        report = score_main([])
    if as_json:
        print_json(report)
        return
    print_benchmark_report(report)
    if report["missing"]:
        out.print(f"[yellow]no answers from {', '.join(report['missing'])}: run `adlake run train_editor`[/]")


def print_editor_training(outputs: dict[str, Any]) -> None:
    """What train_editor's tasks did: each LLM stage's figures, the gate, SSMP's training."""
    llm = outputs.get("train_llm") or {}
    if llm.get("skipped"):
        out.print(f"LLM: {llm['skipped']}")
    elif llm.get("stage1"):
        d1, d2 = llm["stage1_data"], llm["stage2_data"]
        out.print(f"LLM {llm['model']} v{llm['version']}: {llm['added_tokens']} tokens added; stage 1 (new rows only, "
                  f"{d1['sequences']} ad sequences) loss {llm['stage1']['first_loss']:.2f} → "
                  f"{llm['stage1']['final_loss']:.2f} (other init: "
                  + ", ".join(f"{k} {v:.2f}" for k, v in llm["stage1"]["final_loss_by_init"].items())
                  + f"), {llm['stage1']['tokens_per_s']:.0f} tokens/s")
        out.print(f"  stage 2 (all weights, {d2['sequences']} samples, dropped over seq_len: "
                  f"{sum(d2['dropped_overlong'].values())}, truncated: {sum(d2['truncated_overlong'].values())}) "
                  f"loss {llm['stage2']['first_loss']:.2f} → {llm['stage2']['final_loss']:.2f}, "
                  f"{llm['stage2']['tokens_per_s']:.0f} tokens/s, peak memory {llm['stage2']['peak_memory_mb']:.0f} MB")
        g = llm["gate"]
        out.print(f"  gate: {g['metric']} {g['model']} vs best baseline {g['best_baseline']} + margin {g['margin']}: "
                  + ("production moved" if g["passed"] else "production unchanged"))
    ssmp = outputs.get("train_ssmp") or {}
    if ssmp.get("skipped"):
        out.print(f"SSMP: {ssmp['skipped']}")
    elif ssmp.get("steps"):
        out.print(f"SSMP: {ssmp['sequences']} training ads, {ssmp['steps']} steps in {ssmp['seconds']} s, loss "
                  f"{ssmp['final_loss']:.2f}, masked-slot accuracy {ssmp['final_accuracy']:.2f} at mask ratio "
                  f"{ssmp['final_mask_ratio']:.2f}")


def print_training_sets(result: dict[str, Any]) -> None:
    sizes = ", ".join(f"{k} {v['ads']} ads/{v['products']} products" for k, v in result["sizes"].items())
    out.print(f"splits: {sizes}; leaks: {sum(len(v) for v in result['leaks'].values())}")
    table = Table(title="gold.samples (ShareGPT chat messages, LLaMA-Factory layout)")
    for c in ("task", "split", "samples"):
        table.add_column(c)
    for task, splits in sorted(result["samples"].items()):
        for split, count in sorted(splits.items()):
            table.add_row(task, split, str(count))
    out.print(table)
    out.print(f"benchmark: {result['benchmark_samples']} samples, gold.benchmark v{result['benchmark_version']}")
    out.print(f"exports: {result['export_dir']} sha256 {result['export_hash']}")


def print_parse_score(score: dict[str, Any]) -> None:
    sh, asr, cl, fr = score["shots"], score["asr"], score["clips"], score["frames"]
    out.print(f"{score['videos_scored']} parsed videos matched to the corpus")
    out.print(f"shots: hard cuts F1 {sh['f1']:.3f} (precision {sh['precision']:.3f}, recall {sh['recall']:.3f}; "
              f"{sh['cut_hits']}/{sh['cuts']} within ±{sh['tolerance_s']} s, {sh['false_positives']} false) "
              f"{verdict(sh['pass'])} · dissolves {sh['dissolve_hits']}/{sh['dissolves']} found · transition "
              f"labels right on {sh['transition_labels']['right']}/{sh['transition_labels']['found']} found boundaries")
    wer = "n/a" if asr["wer"] is None else f"{asr['wer']:.3f}"
    timing = "n/a" if asr["timing_share"] is None else f"{asr['timing_share']:.1%}"
    out.print(f"asr: WER {wer} over {asr['sentences']} voiceover sentences · start and end within ±0.5 s: "
              f"{asr['timed_within']}/{asr['sentences']} ({timing}) · voiceover flag right on "
              f"{asr['voiceover_correct']}/{asr['videos']} {verdict(asr['pass'])}")
    share = "n/a" if cl["share"] is None else f"{cl['share']:.1%}"
    out.print(f"clips: count right on {cl['right']}/{cl['videos']} videos ({share}) {verdict(cl['pass'])}")
    for m in cl["misses"]:
        out.print(f"  {m['file']} ({m['kind']}): expected {m['expected']}, found {m['found']}")
    out.print(f"frames: {fr['clips']} clips · 1 fps ±1 on {fr['fps1_within_1']} · spatial view (long side 996) on "
              f"{fr['spatial_ok']} · temporal views (≤5, long side 560) on {fr['temporal_ok']} {verdict(fr['pass'])}")


def print_parse_reconciliation(rec: dict[str, Any]) -> None:
    out.print(f"videos: {rec['videos']} = {rec['parsed']} parsed + {rec['filtered']} filtered "
              f"{json.dumps(rec['by_reason'])} + {rec['quarantined']} quarantined {json.dumps(rec['by_error_class'])}"
              + ("" if rec["balanced"] else f"  [red]{rec['pending']} unaccounted[/]"))
