"""Tokenizers and indexes: `adlake tokenizer`, `adlake index`, `adlake search`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from adlake.cli.common import (
    JsonOpt,
    app,
    console,
    current_settings,
    out,
    print_json,
    stdout_to_stderr,
    verdict,
)


def load_index_quietly(kind: str):
    from adlake.index.registry import load_index
    from adlake.provenance import RunContext

    return load_index(RunContext.create("cli", settings=current_settings()), kind)


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
        base_util = r.get("baseline_faiss_rq_utilization")
        table.add_row(f"{r['model'].removeprefix('adlake-rqvae-')} v{r['version']}", f"{r['n_train']}/{r['n_heldout']}",
                      f"{r['heldout_cosine']:.4f}",
                      "not computed" if base is None else f"{base:.4f}",
                      "n/a" if margin is None else f"{margin:+.4f}",
                      f"{min(r['utilization']):.1%}" + (f" (FAISS {min(base_util):.1%})" if base_util else ""),
                      f"{min(r['perplexity']):.0f}-{max(r['perplexity']):.0f}", f"{r['distinct_tuples_heldout']:.1%}",
                      f"{r['train_s']:.0f}", verdict(r["gate_passed"]) + ("" if r["gate_passed"] else
                                                                           " " + ",".join(r["gate_failures"])),
                      verdict(r["paper_bar_passed"]) + ("" if r["paper_bar_passed"] else
                                                         " " + ",".join(r["paper_bar_failures"])),
                      str(r["production"]))
    out.print(table)
    out.print("paper bar (AutoCut): held-out cosine ≥ 0.89 video, ≥ 0.96 audio; ≥ 0.01 above FAISS residual "
              "k-means with the same 8 × 256 budget; every level's utilization ≥ 95 % (on the training sample). "
              "util. min: the least-used level's share of its codebook; FAISS: the same for residual k-means")
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

    with stdout_to_stderr():
        summary = train(RunContext.create("train_tokenizer", settings=current_settings()),
                        ["video", "audio"] if modality == "all" else [modality], embeddings_version, force,
                        bootstrap=bootstrap)
    if as_json:
        print_json(summary)
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

    ctx = RunContext.create("cli", settings=current_settings())
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
    with stdout_to_stderr():
        rows = tokenizer_versions()
    if as_json:
        print_json(rows)
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

    tok = load_tokenizer(RunContext.create("cli", settings=current_settings()), modality, version)
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
    tok = load_tokenizer(RunContext.create("cli", settings=current_settings()), modality, version)
    try:
        vectors = tok.decode_tokens(tokens)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    print_json({"tokenizer_id": tok.tokenizer_id, "vectors": [[round(float(x), 6) for x in v] for v in vectors]})


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
            verdict(r["gate_passed"]) + ("" if r["gate_passed"] else " " + ",".join(r["gate_failures"])),
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

    with stdout_to_stderr():
        summary = build(RunContext.create("build_index", settings=current_settings()),
                        ["clips", "bgm"] if kind == "all" else [kind], embeddings_version, force, retrain,
                        bootstrap=bootstrap)
    if as_json:
        print_json(summary)
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

    ctx = RunContext.create("cli", settings=current_settings())
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
    with stdout_to_stderr():
        rows = index_versions()
    if as_json:
        print_json(rows)
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
        with stdout_to_stderr():
            result = registry(RunContext.create("cli", settings=current_settings()), kind).rollback(to)
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
    tok = load_tokenizer(RunContext.create("cli", settings=current_settings()), modality, version)
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
        with stdout_to_stderr():
            loaded = load_index(RunContext.create("cli", settings=current_settings()), kind, index_version)
            query, what = _query_vectors(loaded, clip, vector, tokens, codes, tokenizer_version)
            hits = loaded.search(query, k)[0]
    except NoIndex as e:
        console.print(f"[red]{e}[/]")
        raise typer.Exit(1) from None
    result = {"index": loaded.index_id, "query": what, "k": k,
              "hits": [{"rank": h.rank, "id": h.id, "video_id": h.video_id, "score": h.score} for h in hits]}
    if as_json:
        print_json(result)
        return
    table = Table(title=f"{loaded.index_id} ({loaded.meta['factory']}, {loaded.meta['vectors']:,} vectors): "
                        f"nearest to {what}")
    for c in ("rank", "id", "video", "score"):
        table.add_column(c)
    for h in hits:
        table.add_row(str(h.rank), h.id, h.video_id[:12], f"{h.score:.4f}")
    out.print(table)
