"""The lifecycle commands of the contract: synth, media-sources, serve, run, tables, show."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from adlake.cli.common import (
    JsonOpt,
    app,
    cli_lake,
    console,
    current_settings,
    out,
    print_json,
    stdout_to_stderr,
)


@app.command()
def synth(
    out_dir: Annotated[Path, typer.Argument(metavar="OUT", help="Folder to write the corpus to.")],
    n: Annotated[int, typer.Option("--n", help="Good ads to generate (bad inputs come on top).")] = 24,
    seed: Annotated[int, typer.Option("--seed")] = 7,
    base_url: Annotated[str, typer.Option(help="Base URL the manifest points at (see adlake serve).")] = (
        "http://127.0.0.1:8765"),
    metadata_only: Annotated[bool, typer.Option("--metadata-only", help="Only a manifest, no media.")] = False,
    rows: Annotated[int, typer.Option(help="Rows of a --metadata-only manifest.")] = 1_570_000,
    real: Annotated[float, typer.Option(help="Share of the ads cut from real footage, speech and music "
                                             "(make media-sources fetches them).", min=0.0, max=1.0)] = 0.0,
    voices: Annotated[str, typer.Option(help="narrow: four espeak-ng voices; wide: every English voice and "
                                             "variant, 130-200 wpm, music 6-18 dB under the voice.")] = "narrow",
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
            result = generate(out_dir, n=n, seed=seed, base_url=base_url, real=real, voices=voices,
                              progress=lambda msg: progress.update(bar, advance=1, description=msg))
        summary = result.__dict__
    if as_json:
        print_json(summary)
    else:
        for k, v in summary.items():
            out.print(f"[bold]{k}[/]: {v}")


@app.command("media-sources")
def media_sources(as_json: JsonOpt = False) -> None:
    """Fetch the real recordings of `adlake synth --real` (Debian packages) into synth.sources_dir."""
    from adlake.synth.sources import fetch

    root = Path(current_settings().synth.sources_dir)
    with console.status(f"fetching media sources into {root}"):
        manifest = fetch(root)
    summary = {"dir": str(root), **{k: f"{v['version']}: {len(v['files'])} files"
                                    for k, v in manifest["packages"].items()}}
    if as_json:
        print_json(summary)
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

    settings = current_settings()
    conf = _parse_params(param)
    with stdout_to_stderr():
        console.print(f"preparing Airflow in {settings.airflow.home}")
        prepare_airflow(settings)
        console.print(f"running {dag_id} with {conf or 'default params'}")
        outcome = run_dag(settings, dag_id, conf)
    if as_json:
        print_json(outcome.as_dict())
    else:
        _print_outcome(outcome)
    if not outcome.ok:
        console.print(f"[red]{dag_id} did not succeed: {outcome.state}[/]")
        raise typer.Exit(1)
    return outcome


def table_summaries() -> list[dict[str, Any]]:
    from schemas import TABLES

    lake = cli_lake()
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
        print_json(rows)
        return
    table = Table(title=f"lake: {current_settings().lake.uri}")
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
    data = cli_lake().read(spec, version=version, limit=limit)
    rows = data.to_pylist()
    if as_json:
        print_json(rows)
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
