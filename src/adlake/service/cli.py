"""``adlake up | down | status``: the service stack from the command line."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console

err = Console(stderr=True)
out = Console()


def _stack():
    from adlake.config import get_settings
    from adlake.service import Stack

    return Stack(get_settings())


def _print(status: dict) -> None:
    for name, c in status["components"].items():
        colour = {"running": "green", "unhealthy": "yellow"}.get(c["state"], "red")
        port = f":{c['port']}" if c["port"] else ""
        out.print(f"  {name:<14} [{colour}]{c['state']:<9}[/] pid {c['pid'] or '-':<8} {port:<7} {c['log']}")
    af = status["airflow"]
    out.print(f"Airflow UI    {af['ui']}  (login {af['auth']['body']['username']}, password: "
              f"`{af['auth']['password_key']}` in {af['auth']['password_file']})")
    out.print(f"REST API      {af['api']}  (token: POST {af['auth']['token_url']})")
    out.print(f"MLflow        {status['mlflow']['tracking_uri']}")
    out.print(f"Postgres      {status['postgres']['host']}:{status['postgres']['port']} "
              f"(user {status['postgres']['user']}, databases {status['postgres']['databases']})")


JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _run(step) -> dict:
    """``stack.up`` or ``stack.down``, narrating on stderr; a StackError exits 1 with its message."""
    from adlake.service import StackError

    try:
        return step(say=lambda m: err.print(m))
    except StackError as e:
        err.print(f"[red]{e}[/]")
        raise typer.Exit(1) from e


def _cluster():
    from adlake.config import get_settings
    from adlake.service.cluster import Cluster

    return Cluster(get_settings())


def _cluster_run(step) -> dict:
    from adlake.service.cluster import ClusterError

    try:
        return step(say=lambda m: err.print(m))
    except ClusterError as e:
        err.print(f"[red]{e}[/]")
        raise typer.Exit(1) from e


def _print_cluster(status: dict) -> None:
    for name, c in status["components"].items():
        colour = {"running": "green", "unhealthy": "yellow"}.get(c["state"], "red")
        out.print(f"  {name:<14} [{colour}]{c['state']:<9}[/] pid {c['pid'] or '-':<8} {c['log']}")
    out.print(f"S3            {status['s3']['endpoint']}  buckets {status['s3']['buckets']}")
    out.print(f"Spark         {status['spark']['master']}  (UI {status['spark']['ui']}, "
              f"{len(status['spark']['workers'])} worker(s))")
    out.print(f"Ray           {status['ray']['address']}  ({status['ray']['nodes']} node(s))")


cluster_app = typer.Typer(help="The local cluster (ADLAKE_ENV=cluster.local): an S3 object store, Spark "
                               "standalone, Ray.", no_args_is_help=True)


@cluster_app.command("up")
def cluster_up(as_json: JsonOpt = False) -> None:
    """Start the object store, the Spark master and workers and the Ray nodes this profile points at."""
    status = _cluster_run(_cluster().up)
    if as_json:
        print(json.dumps(status, indent=2))
    else:
        out.print(f"[bold]adlake cluster up[/] in {status['home']} (started: {status['started'] or 'nothing'})")
        _print_cluster(status)


@cluster_app.command("down")
def cluster_down(as_json: JsonOpt = False) -> None:
    """Stop every engine of the local cluster and check that none of its processes is left."""
    result = _cluster_run(_cluster().down)
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        out.print(f"stopped: {result['stopped'] or 'nothing was running'}; no process of the cluster is left")


@cluster_app.command("status")
def cluster_status(as_json: JsonOpt = False) -> None:
    """Each engine's state; exit 1 unless all run."""
    st = _cluster().status()
    if as_json:
        print(json.dumps(st, indent=2))
    else:
        _print_cluster(st)
    if not st["up"]:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(cluster_app, name="cluster")

    @app.command()
    def up(as_json: JsonOpt = False) -> None:
        """Start the service stack (Postgres, MLflow server, Airflow api-server, scheduler, dag-processor,
        triggerer) from the configuration; what already runs is left alone."""
        stack = _stack()
        if not stack.conf.manage:
            err.print("[red]service.manage is false in this configuration: use ADLAKE_ENV=service (make up), or "
                      "point conf at your own Airflow and MLflow (README: Run it as a service)[/]")
            raise typer.Exit(2)
        status = _run(stack.up)
        if as_json:
            print(json.dumps(status, indent=2))
        else:
            out.print(f"[bold]adlake service stack up[/] in {status['home']} (started: {status['started'] or 'nothing'})")
            _print(status)

    @app.command()
    def down(as_json: JsonOpt = False) -> None:
        """Stop every component of the service stack and check that none of its processes is left."""
        result = _run(_stack().down)
        if as_json:
            print(json.dumps(result, indent=2))
        else:
            out.print(f"stopped: {result['stopped'] or 'nothing was running'}; no process of the stack is left")

    @app.command()
    def status(as_json: JsonOpt = False) -> None:
        """Each component's state, the Airflow API URL and how to authenticate to it; exit 1 unless all run."""
        st = _stack().status()
        if as_json:
            print(json.dumps(st, indent=2))
        else:
            _print(st)
        if not st["up"]:
            raise typer.Exit(1)
