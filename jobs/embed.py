"""Embed pending frames or clip soundtracks on Ray Data and commit them to silver.embeddings.

    python -m jobs.embed --entity frame [--run-id ID]
    python -m jobs.embed --entity audio        # each clip's soundtrack
    python -m jobs.embed --entity bgm          # background-music windows where nobody speaks

Entities already embedded by the configured encoder are skipped; a rerun adds nothing.
"""

from __future__ import annotations

from typing import Any

from adlake.embed.job import embed_pending
from adlake.jobs import cli, context, parser
from adlake.lake import Lake
from adlake.tracking import job_run
from schemas.registry import CLIPS, EMBEDDINGS, FRAMES, PARSED_VIDEOS

JOB = "embed"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--entity", choices=["frame", "audio", "bgm"], required=True)
    args = p.parse_args(argv)
    ctx = context(JOB, args)
    lake = Lake(ctx)
    conf = lake.settings.embed
    inputs = {s.name: lake.version(s) for s in (FRAMES, CLIPS, PARSED_VIDEOS, EMBEDDINGS)}
    params = {"entity": args.entity, "actors": conf.actors, "gpus_per_actor": conf.gpus_per_actor,
              "batch_size": conf.frame.batch_size if args.entity == "frame" else conf.audio.batch_size,
              "ray_address": lake.settings.ray.address or "local"}
    with job_run(ctx, params=params, inputs=inputs) as run:
        result = embed_pending(lake, args.entity)
        run.params({"encoder_id": result.encoder_id})
        run.metrics({k: v for k, v in result.as_dict().items() if isinstance(v, int | float)})
        summary = {"job": JOB, "run_id": ctx.run_id, **result.as_dict(),
                   "wrote": {EMBEDDINGS.name: lake.version(EMBEDDINGS)}}
        run.summary(summary)
    return summary


if __name__ == "__main__":
    cli(main)
