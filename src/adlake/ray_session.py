"""The Ray session of a job: a bounded local Ray by default, a cluster by configuration (``ray.address``)."""

from __future__ import annotations

import os
from typing import Any

from adlake.config import Settings


def ray_auth_env(settings: Settings) -> dict[str, str]:
    """What a Ray client or node needs to join a cluster with token authentication (``ray.auth_token_path``)."""
    path = settings.ray.auth_token_path
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": path} if path else {}


def ray_init(settings: Settings) -> None:
    """Connect (or start a local Ray) once per process. Call it before importing ray: Ray reads its
    authentication settings when it is imported."""
    if settings.ray.address:
        os.environ.update(ray_auth_env(settings))
    import ray

    if ray.is_initialized():
        return
    env = {k: v for k, v in os.environ.items() if k.startswith("ADLAKE")}
    env.setdefault("ADLAKE_HOME", str(settings.home))
    env.setdefault("ADLAKE_ENV", settings.env)
    kwargs: dict[str, Any] = {"runtime_env": {"env_vars": env}, "include_dashboard": False, "log_to_driver": False,
                              "ignore_reinit_error": True}
    if settings.ray.address:
        kwargs["address"] = settings.ray.address
    else:  # a bounded local Ray on this machine
        kwargs.update(num_cpus=settings.ray.num_cpus, object_store_memory=settings.ray.object_store_mb * 1024 * 1024)
    ray.init(**kwargs)
    import ray.data

    ctx = ray.data.DataContext.get_current()
    # A pool hands out work once all its actors are up: else its first ready actor may take every block
    # before the others (on other nodes) have loaded their models.
    ctx.wait_for_min_actors_s = settings.ray.actor_start_timeout_s
    # Locality would send every block to the actor on the node that holds it (the driver's, for blocks made
    # from a list of items): measured on the local cluster, one of two actors got all 76 frames.
    ctx.execution_options.actor_locality_enabled = False


def node_id() -> str:
    """The Ray node this worker runs on (a short id): jobs report where their work ran."""
    import ray

    return ray.get_runtime_context().get_node_id()[:12]
