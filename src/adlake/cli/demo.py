"""`adlake demo`: the whole lifecycle on a synthetic corpus, end to end."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated

import typer

from adlake.cli.common import app, cli_lake, console, current_settings, out, stdout_to_stderr
from adlake.cli.evaluate import (
    print_benchmark_report,
    print_editor_training,
    print_parse_reconciliation,
    print_parse_score,
    print_training_sets,
)
from adlake.cli.lifecycle import print_reconciliation, run, synth, tables
from adlake.cli.models import (
    index_versions,
    load_index_quietly,
    print_index_figures,
    print_tokenizer_figures,
    tokenizer_versions,
)


def run_outputs(dag_id: str) -> tuple[bool, dict]:
    """Run a DAG through Airflow: whether it succeeded, and each task's output."""
    try:
        outcome = run(dag_id, param=[], as_json=False)
    except typer.Exit:
        out.print(f"[red]{dag_id} failed[/]")
        return False, {}
    return True, {t.task_id: t.output for t in outcome.tasks}


@app.command()
def demo(
    # 72 ads give about 1,200 frames at 1 fps: enough for a held-out split of whole videos (issue 5's bar)
    n: Annotated[int, typer.Option("--n")] = 72,
    seed: Annotated[int, typer.Option("--seed")] = 7,
    real: Annotated[float, typer.Option(help="Share of the ads cut from real footage, speech and music.",
                                        min=0.0, max=1.0)] = 0.5,
    port: Annotated[int, typer.Option("--port", envvar="ADLAKE_DEMO_PORT")] = 8765,
    crawl_date: Annotated[str, typer.Option(help="Crawl date the manifest lands under.")] = "2026-11-01",
) -> None:
    """Synthesize a corpus, serve it, run ingest → parse → features → train_tokenizer → features → index_refresh →
    training_sets → train_editor, ending with the editor models' benchmark report beside the baselines."""
    import socket

    with socket.socket() as probe_port:
        if probe_port.connect_ex(("127.0.0.1", port)) == 0:
            console.print(f"[red]port {port} on 127.0.0.1 is in use; choose another with --port or ADLAKE_DEMO_PORT[/]")
            raise typer.Exit(2)
    from adlake.evaluate.ingest import check_against_truth
    from adlake.ingest.crawl import reconcile
    from adlake.ingest.manifest import land_manifest
    from adlake.serve import serving

    settings = current_settings()
    corpus = settings.home / "corpus" / f"seed{seed}-n{n}-real{real:g}-port{port}"
    if not (corpus / "ground_truth.json").exists():
        console.rule("1/11 synthesize")
        synth(corpus, n=n, seed=seed, base_url=f"http://127.0.0.1:{port}", metadata_only=False, rows=0,
              real=real, as_json=False)
    else:
        console.print(f"corpus already at {corpus}")
    day = dt.date.fromisoformat(crawl_date)
    landed = land_manifest(corpus / "manifest.parquet", settings.ingest.landing_uri, day,
                           settings.lake.storage_options)
    with serving(corpus, port) as url:
        console.rule(f"2/11 ads_ingest through Airflow (manifest landed at {landed}, corpus served at {url})")
        run("ads_ingest", param=[f"crawl_date={crawl_date}"], as_json=False)
    console.rule("3/11 reconciliation")
    lake = cli_lake()
    print_reconciliation(reconcile(lake, day).as_dict())
    check = check_against_truth(lake, corpus, day)
    out.print(f"ground truth: {check.matched}/{check.checked} ads where the corpus says they belong")
    for m in check.mismatches:
        out.print(f"  [red]{m['ad']}[/]: expected {m['expected']}, found {m['found']}")
    console.rule("4/11 ads_parse through Airflow (triggered by bronze.videos)")
    run("ads_parse", param=[], as_json=False)
    from adlake.evaluate.parse import score_lake
    from adlake.parse.batch import reconcile_parse
    from schemas.registry import AD_SEQUENCES, EMBEDDINGS

    print_parse_reconciliation(reconcile_parse(lake).as_dict())
    with stdout_to_stderr():
        parse_score = score_lake(lake, corpus)
    print_parse_score(parse_score)
    console.rule("5/11 ads_features through Airflow (triggered by silver.frames): embeddings on Ray")
    run("ads_features", param=[], as_json=False)
    embedded = lake.read(EMBEDDINGS, columns=["entity_type"]).column("entity_type").value_counts().to_pylist()
    out.print("silver.embeddings: " + ", ".join(f"{c['counts']} {c['values']}" for c in embedded))
    console.rule("6/11 train_tokenizer through Airflow: RQ-VAE 8 x 256 per modality, gated in MLflow")
    trained = True
    try:
        run("train_tokenizer", param=[], as_json=False)
    except typer.Exit:
        trained = False
        out.print("[red]a tokenizer gate failed: production stays where it was (figures below)[/]")
    with stdout_to_stderr():
        rows = tokenizer_versions()
    print_tokenizer_figures(rows)
    console.rule("7/11 ads_features again: tokens with the production tokenizers (nothing left to embed)")
    run("ads_features", param=[], as_json=False)
    if lake.exists(AD_SEQUENCES):
        sample = lake.read(AD_SEQUENCES, limit=1).to_pylist()
        if sample:
            seq = sample[0]["sequence"]
            out.print(f"gold.ad_sequences, ad {sample[0]['ad_id']} ({sample[0]['tokenizer_id']}, {len(seq)} "
                      f"characters): {seq[:400]}…")
    console.rule("8/11 index_refresh through Airflow: FAISS clip and music indexes, recall-gated in MLflow")
    indexed = True
    try:
        run("index_refresh", param=[], as_json=False)
    except typer.Exit:
        indexed = False
        out.print("[red]an index gate failed: production stays where it was (figures below)[/]")
    with stdout_to_stderr():
        index_rows = index_versions()
    print_index_figures(index_rows)
    clips = [r for r in index_rows if r["kind"] == "clips"]
    if clips:
        with stdout_to_stderr():
            loaded = load_index_quietly("clips")
        query = loaded.ids[0]
        hits = loaded.search(loaded.vector_of(query), 3)[0]
        out.print(f"adlake search --clip {query} --k 3 → " + ", ".join(f"{h.id} ({h.score:.3f})" for h in hits))
    console.rule("9/11 training_sets through Airflow: splits, task samples, benchmark, baselines; the lake")
    sets_ok, outputs = run_outputs("training_sets")
    if outputs:
        print_training_sets(outputs["build_training_sets"])
    tables(show_all=False, as_json=False)
    out.print(f"corpus: {corpus} · lake: {settings.lake.uri} · media: {settings.media.uri} · "
              f"MLflow: {settings.mlflow.tracking_uri}")
    console.rule("10/11 the baselines' benchmark report")
    if outputs:
        scored = outputs["score_baselines"]
        report = json.loads((Path(scored["report_dir"]) / "report.json").read_text())
        print_benchmark_report({**report, "judge": scored["judge"], "report_dir": scored["report_dir"],
                                "mlflow_run_id": scored["mlflow_run_id"]})
        previews = outputs.get("render_previews") or {}
        if previews.get("dir"):
            out.print(f"previews: {previews['videos']} MP4s (ground truth and baselines) and a contact sheet for "
                      f"each of {previews['samples']} samples in {previews['dir']} (MLflow run "
                      f"{previews['mlflow_run_id']}); {len(previews['failed'])} failed to render")
            for f in previews["failed"]:
                out.print(f"  [red]{f['sample_id']} {f['system']}: {f['error']}[/] {f['message']}")
    console.rule("11/11 train_editor through Airflow: the LLM's extended vocabulary and two stages, SSMP, scored")
    editor_ok, trained_out = run_outputs("train_editor")
    print_editor_training(trained_out)
    if trained_out.get("score_editor"):
        print_benchmark_report(trained_out["score_editor"])
    if not (check.ok and trained and indexed and sets_ok and editor_ok):
        raise typer.Exit(1)
