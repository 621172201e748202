"""The ``adlake`` command line (contract: synth, serve, run, tables, show; plus demo)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from adlake.service import cli as service_cli

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="adlake: the ad-video data lifecycle.")
console = Console(stderr=True)
out = Console(width=None if sys.stdout.isatty() else 160)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print a machine-readable summary.")]

service_cli.register(app)  # adlake up | down | status


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Send everything written to fd 1 (Airflow's task logs included) to stderr, keeping stdout for results."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _settings():
    from adlake.config import get_settings

    return get_settings()


@app.command()
def synth(
    out_dir: Annotated[Path, typer.Argument(metavar="OUT", help="Folder to write the corpus to.")],
    n: Annotated[int, typer.Option("--n", help="Good ads to generate (bad inputs come on top).")] = 24,
    seed: Annotated[int, typer.Option("--seed")] = 7,
    base_url: Annotated[str, typer.Option(help="Base URL the manifest points at (see adlake serve).")] = (
        "http://127.0.0.1:8765"),
    metadata_only: Annotated[bool, typer.Option("--metadata-only", help="Only a manifest, no media.")] = False,
    rows: Annotated[int, typer.Option(help="Rows of a --metadata-only manifest.")] = 1_570_000,
    as_json: JsonOpt = False,
) -> None:
    """Write a synthetic ad corpus (media, manifest, ground truth), or a metadata-only manifest."""
    from adlake.synth import generate, generate_metadata_manifest

    if metadata_only:
        with console.status(f"writing {rows:,} manifest rows"):
            summary = generate_metadata_manifest(out_dir / "manifest.parquet", rows=rows, seed=seed)
    else:
        from rich.progress import Progress

        with Progress(console=console, transient=True) as progress:
            bar = progress.add_task("synthesizing ads", total=n)
            result = generate(out_dir, n=n, seed=seed, base_url=base_url,
                              progress=lambda msg: progress.update(bar, advance=1, description=msg))
        summary = result.__dict__
    if as_json:
        _print_json(summary)
    else:
        for k, v in summary.items():
            out.print(f"[bold]{k}[/]: {v}")


@app.command()
def serve(
    directory: Annotated[Path, typer.Argument(metavar="DIR")],
    port: Annotated[int, typer.Option("--port")] = 8765,
) -> None:
    """Serve a folder over HTTP on 127.0.0.1 until interrupted."""
    from adlake.serve import make_server

    server = make_server(directory, port, quiet=False)
    console.print(f"serving {directory} at http://127.0.0.1:{server.server_address[1]}/ (Ctrl-C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _parse_params(params: list[str]) -> dict[str, Any]:
    conf: dict[str, Any] = {}
    for item in params:
        if "=" not in item:
            raise typer.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--param")
        key, value = item.split("=", 1)
        try:
            conf[key] = json.loads(value) if value[:1] in "[{" else value
        except json.JSONDecodeError:
            conf[key] = value
    return conf


def _describe(output: Any) -> str:
    """One line of what a task returned: its counts and the table versions it wrote."""
    if not isinstance(output, dict):
        return "" if output is None else json.dumps(output, default=str)
    if set(output) == {"skipped"}:  # a task skipped with nothing to do (adlake.orchestration.task_errors)
        return f"nothing to do: {output['skipped']}"
    parts = [f"{k}={v}" for k, v in output.items() if isinstance(v, int | float) and not isinstance(v, bool)]
    for k, v in output.items():
        if isinstance(v, dict) and k not in ("wrote", "changes") and v:
            parts.append(f"{k}={json.dumps(v)}")
    wrote = output.get("wrote") or {}
    if wrote:
        parts.append("wrote " + ", ".join(f"{t}@v{v}" for t, v in wrote.items()))
    return "  ".join(parts)


def _print_outcome(outcome) -> None:
    colour = "green" if outcome.ok else "red"
    out.print(f"[bold]{outcome.dag_id}[/] · {outcome.run_id} · [{colour}]{outcome.state}[/]")
    for t in outcome.tasks:
        name = t.task_id + (f"[{t.map_index}]" if t.map_index >= 0 else "")
        tcolour = "green" if t.state in ("success", "skipped") else "red"
        out.print(f"  {name:<28} [{tcolour}]{t.state:<8}[/] try {t.try_number}  {_describe(t.output)}")


@app.command()
def run(
    dag_id: Annotated[str, typer.Argument(metavar="DAG_ID")],
    param: Annotated[list[str], typer.Option("--param", help="DAG param KEY=VALUE (repeatable).")] = [],  # noqa: B006
    as_json: JsonOpt = False,
) -> None:
    """Run one DAG end to end through Airflow; exit non-zero if any task failed."""
    from adlake.orchestration import prepare_airflow, run_dag

    settings = _settings()
    conf = _parse_params(param)
    with _stdout_to_stderr():
        console.print(f"preparing Airflow in {settings.airflow.home}")
        prepare_airflow(settings)
        console.print(f"running {dag_id} with {conf or 'default params'}")
        outcome = run_dag(settings, dag_id, conf)
    if as_json:
        _print_json(outcome.as_dict())
    else:
        _print_outcome(outcome)
    if not outcome.ok:
        console.print(f"[red]{dag_id} did not succeed: {outcome.state}[/]")
        raise typer.Exit(1)
    return outcome


def _lake():
    from adlake.lake import Lake
    from adlake.provenance import RunContext

    return Lake(RunContext.create("cli", settings=_settings()))


def table_summaries() -> list[dict[str, Any]]:
    from schemas import TABLES

    lake = _lake()
    rows = []
    for name, spec in TABLES.items():
        if not lake.exists(spec):
            rows.append({"table": name, "exists": False})
            continue
        last = lake.history(spec, 1)[0]
        rows.append({
            "table": name, "exists": True, "version": lake.version(spec), "rows": lake.count(spec),
            "last_operation": last.get("adlake.operation") or last.get("operation"),
            "last_run_id": last.get("adlake.run_id"),
            "last_commit": dt.datetime.fromtimestamp(last["timestamp"] / 1000, dt.UTC).isoformat(timespec="seconds"),
        })
    return rows


@app.command()
def tables(
    show_all: Annotated[bool, typer.Option("--all", help="Also list tables not created yet.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Every table with its current version, row count and last operation."""
    rows = [r for r in table_summaries() if r["exists"] or show_all]
    if as_json:
        _print_json(rows)
        return
    table = Table(title=f"lake: {_settings().lake.uri}")
    for c in ("table", "version", "rows", "last operation", "last run", "last commit (UTC)"):
        table.add_column(c, justify="right" if c in ("version", "rows") else "left")
    for r in rows:
        if r["exists"]:
            table.add_row(r["table"], str(r["version"]), f"{r['rows']:,}", str(r["last_operation"]),
                          str(r["last_run_id"]), r["last_commit"])
        else:
            table.add_row(r["table"], "-", "-", "not created", "", "")
    out.print(table)


@app.command()
def show(
    table_name: Annotated[str, typer.Argument(metavar="TABLE")],
    version: Annotated[int | None, typer.Option("--version", help="Read this table version.")] = None,
    limit: Annotated[int, typer.Option("--limit")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """Rows of one table, at its latest version or at --version."""
    from schemas import get

    spec = get(table_name)
    data = _lake().read(spec, version=version, limit=limit)
    rows = data.to_pylist()
    if as_json:
        _print_json(rows)
        return
    table = Table(title=f"{table_name} (version {version if version is not None else 'latest'}, {len(rows)} rows)")
    for c in data.column_names:
        table.add_column(c, overflow="fold")
    for r in rows:
        table.add_row(*("" if v is None else str(v) for v in r.values()))
    out.print(table)


def print_reconciliation(rec: dict[str, Any]) -> None:
    table = Table(title=f"reconciliation · crawl date {rec['crawl_date']} · "
                        f"{'balanced' if rec['balanced'] else 'NOT BALANCED'}")
    table.add_column("where")
    table.add_column("ads", justify="right")
    table.add_column("detail")
    table.add_row("manifest rows", str(rec["manifest_rows"]), "")
    table.add_row("  quarantined at landing", str(rec["manifest_quarantined"]), "contract violations")
    table.add_row("  landed", str(rec["landed"]), "bronze.crawl_manifest")
    table.add_row("    selected with a video", str(rec["selected"]), f"{rec['videos']} distinct videos")
    table.add_row("    filtered with a reason", str(rec["filtered"]), json.dumps(rec["by_reason"]))
    table.add_row("    quarantined in the crawl", str(rec["crawl_quarantined"]), "")
    table.add_row("    still pending", str(rec["pending"]), "")
    table.add_row("error classes", str(sum(rec["by_error_class"].values())), json.dumps(rec["by_error_class"]))
    out.print(table)
    out.print(f"{rec['manifest_rows']} = {rec['manifest_quarantined']} + {rec['selected']} + {rec['filtered']} + "
              f"{rec['crawl_quarantined']}" + ("" if rec["balanced"] else "  [red]does not add up[/]"))


@app.command()
def demo(
    # 72 ads give about 1,200 frames at 1 fps: enough for a held-out split of whole videos (issue 5's bar)
    n: Annotated[int, typer.Option("--n")] = 72,
    seed: Annotated[int, typer.Option("--seed")] = 7,
    port: Annotated[int, typer.Option("--port", envvar="ADLAKE_DEMO_PORT")] = 8765,
    crawl_date: Annotated[str, typer.Option(help="Crawl date the manifest lands under.")] = "2026-11-01",
) -> None:
    """Synthesize a corpus, serve it, run ingest → parse → features → train_tokenizer → features → index_refresh →
    training_sets, ending with the baselines' benchmark report."""
    import socket

    with socket.socket() as probe_port:
        if probe_port.connect_ex(("127.0.0.1", port)) == 0:
            console.print(f"[red]port {port} on 127.0.0.1 is in use; choose another with --port or ADLAKE_DEMO_PORT[/]")
            raise typer.Exit(2)
    from adlake.evaluate.ingest import check_against_truth
    from adlake.ingest.crawl import reconcile
    from adlake.ingest.manifest import land_manifest
    from adlake.serve import serving

    settings = _settings()
    corpus = settings.home / "corpus" / f"seed{seed}-n{n}-port{port}"
    if not (corpus / "ground_truth.json").exists():
        console.rule("1/10 synthesize")
        synth(corpus, n=n, seed=seed, base_url=f"http://127.0.0.1:{port}", metadata_only=False, rows=0,
              as_json=False)
    else:
        console.print(f"corpus already at {corpus}")
    day = dt.date.fromisoformat(crawl_date)
    landed = land_manifest(corpus / "manifest.parquet", settings.ingest.landing_uri, day,
                           settings.lake.storage_options)
    with serving(corpus, port) as url:
        console.rule(f"2/10 ads_ingest through Airflow (manifest landed at {landed}, corpus served at {url})")
        run("ads_ingest", param=[f"crawl_date={crawl_date}"], as_json=False)
    console.rule("3/10 reconciliation")
    lake = _lake()
    print_reconciliation(reconcile(lake, day).as_dict())
    check = check_against_truth(lake, corpus, day)
    out.print(f"ground truth: {check.matched}/{check.checked} ads where the corpus says they belong")
    for m in check.mismatches:
        out.print(f"  [red]{m['ad']}[/]: expected {m['expected']}, found {m['found']}")
    console.rule("4/10 ads_parse through Airflow (triggered by bronze.videos)")
    run("ads_parse", param=[], as_json=False)
    from adlake.evaluate.parse import score_lake
    from adlake.parse.batch import reconcile_parse
    from schemas.registry import AD_SEQUENCES, EMBEDDINGS

    print_parse_reconciliation(reconcile_parse(lake).as_dict())
    with _stdout_to_stderr():
        parse_score = score_lake(lake, corpus)
    print_parse_score(parse_score)
    console.rule("5/10 ads_features through Airflow (triggered by silver.frames): embeddings on Ray")
    run("ads_features", param=[], as_json=False)
    embedded = lake.read(EMBEDDINGS, columns=["entity_type"]).column("entity_type").value_counts().to_pylist()
    out.print("silver.embeddings: " + ", ".join(f"{c['counts']} {c['values']}" for c in embedded))
    console.rule("6/10 train_tokenizer through Airflow: RQ-VAE 8 x 256 per modality, gated in MLflow")
    trained = True
    try:
        run("train_tokenizer", param=[], as_json=False)
    except typer.Exit:
        trained = False
        out.print("[red]a tokenizer gate failed: production stays where it was (figures below)[/]")
    with _stdout_to_stderr():
        rows = tokenizer_versions()
    print_tokenizer_figures(rows)
    console.rule("7/10 ads_features again: tokens with the production tokenizers (nothing left to embed)")
    run("ads_features", param=[], as_json=False)
    if lake.exists(AD_SEQUENCES):
        sample = lake.read(AD_SEQUENCES, limit=1).to_pylist()
        if sample:
            seq = sample[0]["sequence"]
            out.print(f"gold.ad_sequences, ad {sample[0]['ad_id']} ({sample[0]['tokenizer_id']}, {len(seq)} "
                      f"characters): {seq[:400]}…")
    console.rule("8/10 index_refresh through Airflow: FAISS clip and music indexes, recall-gated in MLflow")
    indexed = True
    try:
        run("index_refresh", param=[], as_json=False)
    except typer.Exit:
        indexed = False
        out.print("[red]an index gate failed: production stays where it was (figures below)[/]")
    with _stdout_to_stderr():
        index_rows = index_versions()
    print_index_figures(index_rows)
    clips = [r for r in index_rows if r["kind"] == "clips"]
    if clips:
        with _stdout_to_stderr():
            loaded = _load_index_quietly("clips")
        query = loaded.ids[0]
        hits = loaded.search(loaded.vector_of(query), 3)[0]
        out.print(f"adlake search --clip {query} --k 3 → " + ", ".join(f"{h.id} ({h.score:.3f})" for h in hits))
    console.rule("9/10 training_sets through Airflow: splits, task samples, benchmark, baselines; the lake")
    sets_ok = True
    try:
        outcome = run("training_sets", param=[], as_json=False)
    except typer.Exit:
        sets_ok, outcome = False, None
        out.print("[red]training_sets failed[/]")
    outputs = {} if outcome is None else {t.task_id: t.output for t in outcome.tasks}
    if outputs:
        print_training_sets(outputs["build_training_sets"])
    tables(show_all=False, as_json=False)
    out.print(f"corpus: {corpus} · lake: {settings.lake.uri} · media: {settings.media.uri} · "
              f"MLflow: {settings.mlflow.tracking_uri}")
    console.rule("10/10 the baselines' benchmark report")
    if outputs:
        scored = outputs["score_baselines"]
        report = json.loads((Path(scored["report_dir"]) / "report.json").read_text())
        print_benchmark_report({**report, "judge": scored["judge"], "report_dir": scored["report_dir"],
                                "mlflow_run_id": scored["mlflow_run_id"]})
    if not (check.ok and trained and indexed and sets_ok):
        raise typer.Exit(1)


def _load_index_quietly(kind: str):
    from adlake.index.registry import load_index
    from adlake.provenance import RunContext

    return load_index(RunContext.create("cli", settings=_settings()), kind)


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
    as_json: JsonOpt = False,
) -> None:
    """Shot-boundary F1 on hard cuts (and dissolves found) with the configured detector."""
    from adlake.evaluate.shots import score_corpus

    conf = _settings().parse.shots
    with _stdout_to_stderr():
        score = score_corpus(corpus, conf, tolerance_s).as_dict()
    if as_json:
        _print_json({"detector": conf.model_dump(), **score})
        return
    out.print(f"detector {conf.detector} · {score['videos']} videos · tolerance ±{tolerance_s} s")
    out.print(f"hard cuts: F1 {score['f1']:.3f} (precision {score['precision']:.3f}, recall {score['recall']:.3f}; "
              f"{score['cut_hits']}/{score['cuts']} found, {score['false_positives']} false)")
    out.print(f"dissolves: {score['dissolve_hits']}/{score['dissolves']} found")


@evaluate_app.command("asr")
def evaluate_asr(
    corpus: Annotated[Path, typer.Argument(metavar="CORPUS", help="A folder written by adlake synth.")],
    tolerance_s: Annotated[float, typer.Option("--tolerance")] = 0.5,
    as_json: JsonOpt = False,
) -> None:
    """Word error rate and sentence timing of the configured ASR (bundled tiny.en by default)."""
    from adlake.evaluate.asr import score_corpus

    conf = _settings().parse.asr
    with _stdout_to_stderr():  # the VAD's libraries print to stdout
        score = score_corpus(corpus, conf, tolerance_s).as_dict()
    if as_json:
        _print_json({"asr": conf.model_dump(), **score})
        return
    out.print(f"model {conf.model_path or 'bundled tiny.en'} · {score['videos']} videos with audio · "
              f"{score['sentences']} voiceover sentences")
    out.print(f"WER {score['wer']:.3f} (lower-cased, punctuation stripped, numbers spelled out)")
    out.print(f"sentences with start and end within ±{tolerance_s} s: {score['timed_within']}/{score['sentences']}"
              f" ({score['timing_share']:.1%})")
    out.print(f"voiceover flag right on {score['voiceover_correct']}/{score['videos']} · "
              f"real-time factor {score['real_time_factor']:.3f} ({score['seconds']} s for {score['audio_s']} s)")


@evaluate_app.command("clips")
def evaluate_clips(
    corpus: Annotated[Path, typer.Argument(metavar="CORPUS", help="A folder written by adlake synth.")],
    as_json: JsonOpt = False,
) -> None:
    """Share of ads cut into the true number of clips (sentences with a voiceover, else shots)."""
    from adlake.evaluate.clips import score_corpus

    with _stdout_to_stderr():
        score = score_corpus(corpus, _settings().parse).as_dict()
    if as_json:
        _print_json(score)
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

    with _stdout_to_stderr():
        score = score_lake(_lake(), corpus, tolerance_s)
    if as_json:
        _print_json(score)
    else:
        print_parse_score(score)
    if not all(score[k]["pass"] for k in ("shots", "asr", "clips", "frames")):
        raise typer.Exit(1)


tokenizer_app = typer.Typer(no_args_is_help=True, help="RQ-VAE tokenizers: train, show, vocabulary, decode.")
app.add_typer(tokenizer_app, name="tokenizer")
Modality = Annotated[str, typer.Option("--modality", help="video or audio")]


def print_tokenizer_figures(rows: list[dict[str, Any]]) -> None:
    """The bar's figures per trained version: held-out cosine against FAISS residual k-means, codebooks, gate."""
    table = Table(title="RQ-VAE tokenizers (held-out = whole videos never trained on)")
    for c in ("tokenizer", "vectors train/held-out", "held-out cos", "FAISS RQ cos", "margin", "util. min",
              "perplexity", "distinct", "train s", "gate", "paper bar", "prod."):
        table.add_column(c)
    for r in rows:
        base = r.get("baseline_faiss_rq_cosine")
        margin = r.get("margin_over_baseline")
        table.add_row(f"{r['model'].removeprefix('adlake-rqvae-')} v{r['version']}", f"{r['n_train']}/{r['n_heldout']}",
                      f"{r['heldout_cosine']:.4f}",
                      "not computed" if base is None else f"{base:.4f}",
                      "n/a" if margin is None else f"{margin:+.4f}", f"{min(r['utilization']):.1%}",
                      f"{min(r['perplexity']):.0f}-{max(r['perplexity']):.0f}", f"{r['distinct_tuples_heldout']:.1%}",
                      f"{r['train_s']:.0f}", _verdict(r["gate_passed"]) + ("" if r["gate_passed"] else
                                                                           " " + ",".join(r["gate_failures"])),
                      _verdict(r["paper_bar_passed"]) + ("" if r["paper_bar_passed"] else
                                                         " " + ",".join(r["paper_bar_failures"])),
                      str(r["production"]))
    out.print(table)
    out.print("paper bar (AutoCut): held-out cosine ≥ 0.89 video, ≥ 0.96 audio; ≥ 0.01 above FAISS residual "
              "k-means with the same 8 × 256 budget; every level's utilization ≥ 95 % (on the training sample)")
    for r in rows:
        if r.get("baseline_error"):
            out.print(f"{r['model']} v{r['version']}: FAISS baseline not computed: {r['baseline_error']}")


@tokenizer_app.command("train")
def tokenizer_train(
    modality: Annotated[str, typer.Option("--modality", help="video, audio or all")] = "all",
    embeddings_version: Annotated[int | None, typer.Option(help="silver.embeddings version (default: latest)")] = None,
    force: Annotated[bool, typer.Option("--force", help="train again even if already trained so")] = False,
    bootstrap: Annotated[bool, typer.Option("--bootstrap", help="only modalities without a production tokenizer, "
                                                                "once enough vectors arrived")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Train and gate the tokenizers here (the train_tokenizer DAG's job); exit non-zero when a gate fails
    (nothing to train is not a failure: the reasons are printed)."""
    from adlake.provenance import RunContext
    from jobs.train_tokenizer import train

    with _stdout_to_stderr():
        summary = train(RunContext.create("train_tokenizer", settings=_settings()),
                        ["video", "audio"] if modality == "all" else [modality], embeddings_version, force,
                        bootstrap=bootstrap)
    if as_json:
        _print_json(summary)
    else:
        print_tokenizer_figures(list(summary["trained"].values()))
        for r in summary["trained"].values():
            if r.get("skipped"):
                out.print(f"{r['modality']}: not trained again: {r['skipped']} (--force trains again)")
        for m, why in summary["skipped"].items():
            out.print(f"{m}: not trained: {why}")
    if summary["gate_failures"]:
        raise typer.Exit(1)


def tokenizer_versions() -> list[dict[str, Any]]:
    """Figures of each modality's production version and, when newer, its latest version (from MLflow)."""
    from adlake.provenance import RunContext
    from adlake.tokenizer.registry import MODEL_NAMES, registry

    ctx = RunContext.create("cli", settings=_settings())
    rows = []
    for modality, name in MODEL_NAMES.items():
        reg = registry(ctx, modality)
        versions = reg.versions()
        if not versions:
            continue
        current = reg.production()
        production = None if current is None else str(current.version)
        for mv in {str(v.version): v for v in (current, versions[-1]) if v is not None}.values():
            version = str(mv.version)
            meta = reg.read_json(mv, "tokenizer/tokenizer.json")
            checks = meta.get("gate", {})
            rows.append({"model": name, "modality": modality, "version": version, "production": production,
                         "gate_passed": mv.tags.get("gate") == "passed", "pruned": bool(mv.tags.get("pruned")),
                         "gate_failures": [k for k, v in checks.items() if not v["passed"]],
                         "embeddings_version": meta["embeddings_version"], "encoder_id": meta["encoder_id"],
                         "mlflow_run_id": mv.run_id, **meta["figures"],
                         "n_train": meta.get("n_train"), "n_heldout": meta.get("n_heldout")})
    return rows


@tokenizer_app.command("show")
def tokenizer_show(as_json: JsonOpt = False) -> None:
    """Each modality's production tokenizer (and the latest version when it differs), with its figures."""
    with _stdout_to_stderr():
        rows = tokenizer_versions()
    if as_json:
        _print_json(rows)
    elif not rows:
        out.print("no tokenizer registered yet: run `adlake run train_tokenizer` (after ads_features)")
    else:
        print_tokenizer_figures(rows)


@tokenizer_app.command("vocab")
def tokenizer_vocab(
    out_file: Annotated[Path, typer.Argument(metavar="OUT", help="JSON file to write.")],
    modality: Modality = "video",
    version: Annotated[str | None, typer.Option(help="registered version (default: production)")] = None,
) -> None:
    """Write a tokenizer version's vocabulary: levels × codes code tokens plus every special token."""
    from adlake.provenance import RunContext
    from adlake.tokenizer.registry import load_tokenizer
    from adlake.tokenizer.vocab import write_vocabulary

    tok = load_tokenizer(RunContext.create("cli", settings=_settings()), modality, version)
    write_vocabulary(out_file, modality, tok.levels, tok.model.cfg.codebook_size)
    out.print(f"{tok.tokenizer_id}: wrote {out_file}")


@tokenizer_app.command("decode")
def tokenizer_decode(
    tokens: Annotated[str, typer.Argument(metavar="TOKENS", help="e.g. '<v_0_12><v_1_3>...' (whole code tuples)")],
    version: Annotated[str | None, typer.Option(help="registered version (default: production)")] = None,
) -> None:
    """Token string → embeddings (JSON lists), for retrieval."""
    from adlake.provenance import RunContext
    from adlake.tokenizer.registry import load_tokenizer
    from adlake.tokenizer.vocab import MODALITY_OF_PREFIX

    modality = MODALITY_OF_PREFIX.get(tokens.strip()[1:2])
    if modality is None:
        raise typer.BadParameter("tokens start with <v_ (video) or <a_ (audio)")
    tok = load_tokenizer(RunContext.create("cli", settings=_settings()), modality, version)
    try:
        vectors = tok.decode_tokens(tokens)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    _print_json({"tokenizer_id": tok.tokenizer_id, "vectors": [[round(float(x), 6) for x in v] for v in vectors]})


index_app = typer.Typer(no_args_is_help=True, help="FAISS indexes: build, show, rollback (search: adlake search).")
app.add_typer(index_app, name="index")
IndexKind = Annotated[str, typer.Option("--index", help="clips or bgm")]


def print_index_figures(rows: list[dict[str, Any]]) -> None:
    """Per built version: the kind of index, recall against exact search, speed, size, round trip, gate."""
    table = Table(title="FAISS indexes (recall against exact search on held-out queries, own entry excluded)")
    for c in ("index", "mode", "kind", "vectors", "recall@1", "recall@10", "QPS", "× exact", "build s", "MiB",
              "token round trip", "gate", "prod."):
        table.add_column(c)
    for r in rows:
        f, rt = r["figures"], r["token_roundtrip"]
        trip = (f"{rt['own_video_hits']}/{rt['queries']} = {rt['own_video_in_top_k']:.1%} own video in top "
                f"{rt['k']}" if rt.get("computed") else f"not computed: {rt['reason']}")
        table.add_row(f"{r['kind']} v{r['version']}", r["mode"], f"{r['factory']}" + (
            f" nprobe {r['nprobe']}" if r.get("nprobe") else ""), f"{r['vectors']:,}", f"{f['recall_at_1']:.3f}",
            f"{f['recall_at_10']:.3f}", f"{f['qps']:,.0f}", f"{f['speedup_over_exact']}", f"{r['build_s']:.1f}",
            f"{r['index_bytes'] / 2**20:.1f}", trip,
            _verdict(r["gate_passed"]) + ("" if r["gate_passed"] else " " + ",".join(r["gate_failures"])),
            str(r["production"]))
    out.print(table)


@index_app.command("build")
def index_build(
    kind: Annotated[str, typer.Option("--index", help="clips, bgm or all")] = "all",
    embeddings_version: Annotated[int | None, typer.Option(help="silver.embeddings version (default: latest)")] = None,
    force: Annotated[bool, typer.Option("--force", help="build even when nothing new arrived")] = False,
    retrain: Annotated[bool, typer.Option("--retrain", help="train a new coarse quantizer")] = False,
    bootstrap: Annotated[bool, typer.Option("--bootstrap", help="only kinds without a production index")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Build, evaluate and gate the indexes here (the index_refresh DAG's job); exit 1 when a gate fails
    (nothing to build is not a failure: the reasons are printed)."""
    from adlake.provenance import RunContext
    from jobs.build_index import build

    with _stdout_to_stderr():
        summary = build(RunContext.create("build_index", settings=_settings()),
                        ["clips", "bgm"] if kind == "all" else [kind], embeddings_version, force, retrain,
                        bootstrap=bootstrap)
    if as_json:
        _print_json(summary)
    else:
        print_index_figures(list(summary["built"].values()))
        for k, why in summary["skipped"].items():
            out.print(f"{k}: not built: {why}")
    if summary["gate_failures"]:
        raise typer.Exit(1)


def index_versions() -> list[dict[str, Any]]:
    """Every registered index version with its figures (from MLflow)."""
    from adlake.index.registry import MODEL_NAMES, index_meta, registry
    from adlake.provenance import RunContext

    ctx = RunContext.create("cli", settings=_settings())
    rows = []
    for kind in MODEL_NAMES:
        reg = registry(ctx, kind)
        production = reg.production()
        for mv in reg.versions():
            meta = index_meta(ctx, mv)
            checks = meta["gate"]
            rows.append({**meta, "version": mv.version, "model": MODEL_NAMES[kind],
                         "production": None if production is None else production.version,
                         "gate_passed": mv.tags.get("gate") == "passed", "pruned": bool(mv.tags.get("pruned")),
                         "gate_failures": [k for k, c in checks.items() if not c["passed"]]})
    return rows


@index_app.command("show")
def index_show(as_json: JsonOpt = False) -> None:
    """Every registered index version, its figures and which one is production."""
    with _stdout_to_stderr():
        rows = index_versions()
    if as_json:
        _print_json(rows)
    elif not rows:
        out.print("no index registered yet: run `adlake run index_refresh`")
    else:
        print_index_figures(rows)


@index_app.command("rollback")
def index_rollback(
    kind: IndexKind = "clips",
    to: Annotated[str | None, typer.Option("--to", help="version (default: the previous passing one)")] = None,
) -> None:
    """Point production back at an earlier gate-passing version."""
    from adlake.index.registry import registry
    from adlake.provenance import RunContext
    from adlake.registry import NoVersion

    try:
        with _stdout_to_stderr():
            result = registry(RunContext.create("cli", settings=_settings()), kind).rollback(to)
    except NoVersion as e:
        console.print(f"[red]{e}[/]")
        raise typer.Exit(1) from None
    out.print(f"{result['model']}: production {result['previous_production']} → {result['production']}")


def _query_vectors(loaded, clip: str | None, vector_file: Path | None, tokens: str | None, codes: str | None,
                   version: str | None):
    import numpy as np

    from adlake.index.corpus import KINDS
    from adlake.provenance import RunContext

    given = [v for v in (clip, vector_file, tokens, codes) if v is not None]
    if len(given) != 1:
        raise typer.BadParameter("give exactly one of --clip, --vector, --tokens, --codes")
    if clip is not None:
        try:
            return loaded.vector_of(clip)[None, :], f"{loaded.kind} entry {clip}"
        except KeyError as e:
            raise typer.BadParameter(str(e.args[0])) from None
    if vector_file is not None:
        text = vector_file.read_text() if vector_file.suffix != ".npy" else None
        x = np.load(vector_file) if text is None else np.array(json.loads(text), dtype=np.float32)
        x = np.atleast_2d(x).astype(np.float32)
        if x.shape[1] != loaded.index.d:
            raise typer.BadParameter(f"{vector_file}: {x.shape[1]}-d vectors, the index holds {loaded.index.d}-d")
        return x.mean(axis=0, keepdims=True), f"{len(x)} vector(s) from {vector_file}"
    from adlake.tokenizer.registry import load_tokenizer

    modality = KINDS[loaded.kind][0]
    tok = load_tokenizer(RunContext.create("cli", settings=_settings()), modality, version)
    if tok.encoder_id != loaded.meta["encoder_id"]:
        raise typer.BadParameter(f"{tok.tokenizer_id} decodes into {tok.encoder_id}, the index holds "
                                 f"{loaded.meta['encoder_id']}")
    try:
        if tokens is not None:
            x = tok.decode_tokens(tokens)
        else:
            x = tok.decode(np.array([[int(c) for c in t.split(",")] for t in codes.split(";")], dtype=np.int64))
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    return x.mean(axis=0, keepdims=True), f"{len(x)} code tuple(s) decoded by {tok.tokenizer_id}"


@app.command()
def search(
    clip: Annotated[str | None, typer.Option("--clip", help="an indexed id (a clip id, or a bgm window id)")] = None,
    vector: Annotated[Path | None, typer.Option("--vector", help=".npy or JSON list(s) of floats; rows averaged")
                      ] = None,
    tokens: Annotated[str | None, typer.Option("--tokens", help="token string, e.g. '<v_0_12>…' (frames averaged)")
                      ] = None,
    codes: Annotated[str | None, typer.Option("--codes", help="codes per frame, e.g. '3,17,…;5,2,…'")] = None,
    kind: IndexKind = "clips",
    k: Annotated[int, typer.Option("--k", help="results")] = 10,
    index_version: Annotated[str | None, typer.Option("--index-version", help="default: production")] = None,
    tokenizer_version: Annotated[str | None, typer.Option("--tokenizer-version", help="default: production")
                                 ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Nearest clips (or music windows) to a clip, a vector file or token codes, from a registered index."""
    from adlake.index.registry import NoIndex, load_index
    from adlake.provenance import RunContext

    try:
        with _stdout_to_stderr():
            loaded = load_index(RunContext.create("cli", settings=_settings()), kind, index_version)
            query, what = _query_vectors(loaded, clip, vector, tokens, codes, tokenizer_version)
            hits = loaded.search(query, k)[0]
    except NoIndex as e:
        console.print(f"[red]{e}[/]")
        raise typer.Exit(1) from None
    result = {"index": loaded.index_id, "query": what, "k": k,
              "hits": [{"rank": h.rank, "id": h.id, "video_id": h.video_id, "score": h.score} for h in hits]}
    if as_json:
        _print_json(result)
        return
    table = Table(title=f"{loaded.index_id} ({loaded.meta['factory']}, {loaded.meta['vectors']:,} vectors): "
                        f"nearest to {what}")
    for c in ("rank", "id", "video", "score"):
        table.add_column(c)
    for h in hits:
        table.add_row(str(h.rank), h.id, h.video_id[:12], f"{h.score:.4f}")
    out.print(table)


def print_benchmark_report(report: dict[str, Any]) -> None:
    from adlake.evaluate.benchmark import METRICS

    table = Table(title=f"benchmark {report['benchmark']} v{report['benchmark_version']}: {report['samples']} "
                        "test ads, each with its product's other ads' clips as distractors")
    table.add_column("system")
    for m in METRICS:
        table.add_column(m)
    for name, figures in report["systems"].items():
        table.add_row(name, *["not computed" if figures.get(m) is None else f"{figures[m]:.3f}" for m in METRICS])
    out.print(table)
    out.print(f"judged metrics (VSC, Fact, Coh, Logic, SQ): {report['judge']}")
    out.print(f"report: {report['report_dir']}/report.md · MLflow run {report.get('mlflow_run_id')}")


@evaluate_app.command("benchmark")
def evaluate_benchmark(
    predictions: Annotated[Path | None, typer.Argument(metavar="[PREDICTIONS]", help="JSONL predictions")] = None,
    benchmark_version: Annotated[int | None, typer.Option(help="gold.benchmark version (default: latest)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Score PREDICTIONS (JSONL) on the benchmark beside the random and embedding baselines; JSON, Markdown, MLflow."""
    from jobs.score_benchmark import main as score_main

    if predictions is not None and not predictions.is_file():
        raise typer.BadParameter(f"{predictions} is not a file")
    argv = [] if predictions is None else ["--predictions", str(predictions)]
    if benchmark_version is not None:
        argv += ["--benchmark-version", str(benchmark_version)]
    with _stdout_to_stderr():
        report = score_main(argv)
    if as_json:
        _print_json(report)
    else:
        print_benchmark_report(report)


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


def _verdict(ok: bool) -> str:
    return "[green]pass[/]" if ok else "[red]FAIL[/]"


def print_parse_score(score: dict[str, Any]) -> None:
    sh, asr, cl, fr = score["shots"], score["asr"], score["clips"], score["frames"]
    out.print(f"{score['videos_scored']} parsed videos matched to the corpus")
    out.print(f"shots: hard cuts F1 {sh['f1']:.3f} (precision {sh['precision']:.3f}, recall {sh['recall']:.3f}; "
              f"{sh['cut_hits']}/{sh['cuts']} within ±{sh['tolerance_s']} s, {sh['false_positives']} false) "
              f"{_verdict(sh['pass'])} · dissolves {sh['dissolve_hits']}/{sh['dissolves']} found · transition "
              f"labels right on {sh['transition_labels']['right']}/{sh['transition_labels']['found']} found boundaries")
    wer = "n/a" if asr["wer"] is None else f"{asr['wer']:.3f}"
    timing = "n/a" if asr["timing_share"] is None else f"{asr['timing_share']:.1%}"
    out.print(f"asr: WER {wer} over {asr['sentences']} voiceover sentences · start and end within ±0.5 s: "
              f"{asr['timed_within']}/{asr['sentences']} ({timing}) · voiceover flag right on "
              f"{asr['voiceover_correct']}/{asr['videos']} {_verdict(asr['pass'])}")
    share = "n/a" if cl["share"] is None else f"{cl['share']:.1%}"
    out.print(f"clips: count right on {cl['right']}/{cl['videos']} videos ({share}) {_verdict(cl['pass'])}")
    for m in cl["misses"]:
        out.print(f"  {m['file']} ({m['kind']}): expected {m['expected']}, found {m['found']}")
    out.print(f"frames: {fr['clips']} clips · 1 fps ±1 on {fr['fps1_within_1']} · spatial view (long side 996) on "
              f"{fr['spatial_ok']} · temporal views (≤5, long side 560) on {fr['temporal_ok']} {_verdict(fr['pass'])}")


def print_parse_reconciliation(rec: dict[str, Any]) -> None:
    out.print(f"videos: {rec['videos']} = {rec['parsed']} parsed + {rec['filtered']} filtered "
              f"{json.dumps(rec['by_reason'])} + {rec['quarantined']} quarantined {json.dumps(rec['by_error_class'])}"
              + ("" if rec["balanced"] else f"  [red]{rec['pending']} unaccounted[/]"))


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
