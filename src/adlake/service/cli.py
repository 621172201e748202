"""``adlake up | down | status``: the service stack from the command line."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console

from adlake.config import get_settings
from adlake.service.cluster import Cluster, ClusterError
from adlake.service.stack import Stack, StackError

err = Console(stderr=True)
out = Console()


def _stack() -> Stack:
    return Stack(get_settings())


def _print_components(status: dict, ports: bool = False) -> None:
    """A line per component: its state, pid, port (with ``ports``: the stack's) and log."""
    for name, c in status["components"].items():
        colour = {"running": "green", "unhealthy": "yellow"}.get(c["state"], "red")
        port = (f":{c['port']}" if c["port"] else "").ljust(7) + " " if ports else ""
        out.print(f"  {name:<14} [{colour}]{c['state']:<9}[/] pid {c['pid'] or '-':<8} {port}{c['log']}")


def _print_stack(status: dict) -> None:
    _print_components(status, ports=True)
    af = status["airflow"]
    out.print(f"Airflow UI    {af['ui']}  (login {af['auth']['body']['username']}, password: "
              f"`{af['auth']['password_key']}` in {af['auth']['password_file']})")
    out.print(f"REST API      {af['api']}  (token: POST {af['auth']['token_url']})")
    out.print(f"MLflow        {status['mlflow']['tracking_uri']}")
    out.print(f"Postgres      {status['postgres']['host']}:{status['postgres']['port']} "
              f"(user {status['postgres']['user']}, databases {status['postgres']['databases']})")


JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _run(step, error: type[Exception]) -> dict:
    """``up`` or ``down`` of the stack or the cluster, narrating on stderr; an ``error`` exits 1 with its message."""
    try:
        return step(say=lambda m: err.print(m))
    except error as e:
        err.print(f"[red]{e}[/]")
        raise typer.Exit(1) from e


def _report(result: dict, as_json: bool, header: str | None = None, show=None, ok: bool = True) -> None:
    """``result`` as JSON, else ``header`` and ``show(result)``; exit 1 unless ``ok``."""
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        if header:
            out.print(header)
        if show:
            show(result)
    if not ok:
        raise typer.Exit(1)


def _started(what: str, status: dict) -> str:
    return f"[bold]adlake {what} up[/] in {status['home']} (started: {status['started'] or 'nothing'})"


def _stopped(what: str, result: dict) -> str:
    return f"stopped: {result['stopped'] or 'nothing was running'}; no process of the {what} is left"


def _cluster() -> Cluster:
    return Cluster(get_settings())


def _print_cluster(status: dict) -> None:
    _print_components(status)
    out.print(f"S3            {status['s3']['endpoint']}  buckets {status['s3']['buckets']}")
    out.print(f"Spark         {status['spark']['master']}  (UI {status['spark']['ui']}, "
              f"{len(status['spark']['workers'])} worker(s))")
    out.print(f"Ray           {status['ray']['address']}  ({status['ray']['nodes']} node(s))")


cluster_app = typer.Typer(help="The local cluster (ADLAKE_ENV=cluster.local): an S3 object store, Spark "
                               "standalone, Ray.", no_args_is_help=True)


@cluster_app.command("up")
def cluster_up(as_json: JsonOpt = False) -> None:
    """Start the object store, the Spark master and workers and the Ray nodes this profile points at."""
    status = _run(_cluster().up, ClusterError)
    _report(status, as_json, _started("cluster", status), _print_cluster)


@cluster_app.command("down")
def cluster_down(as_json: JsonOpt = False) -> None:
    """Stop every engine of the local cluster and check that none of its processes is left."""
    result = _run(_cluster().down, ClusterError)
    _report(result, as_json, _stopped("cluster", result))


@cluster_app.command("status")
def cluster_status(as_json: JsonOpt = False) -> None:
    """Each engine's state; exit 1 unless all run."""
    st = _cluster().status()
    _report(st, as_json, show=_print_cluster, ok=st["up"])


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
        status = _run(stack.up, StackError)
        _report(status, as_json, _started("service stack", status), _print_stack)

    @app.command()
    def down(as_json: JsonOpt = False) -> None:
        """Stop every component of the service stack and check that none of its processes is left."""
        result = _run(_stack().down, StackError)
        _report(result, as_json, _stopped("stack", result))

    @app.command()
    def status(as_json: JsonOpt = False) -> None:
        """Each component's state, the Airflow API URL and how to authenticate to it; exit 1 unless all run."""
        st = _stack().status()
        _report(st, as_json, show=_print_stack, ok=st["up"])
