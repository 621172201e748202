"""Embed pending frames or clip soundtracks on Ray Data and commit them to silver.embeddings.

    python -m jobs.embed --entity frame [--run-id ID]
    python -m jobs.embed --entity audio        # each clip's soundtrack
    python -m jobs.embed --entity bgm          # background-music windows where nobody speaks

Entities already embedded by the configured encoder are skipped; with nothing pending there is nothing to
do (``NothingToDo``, decided before any MLflow run or Ray start), and a rerun adds nothing.
"""

from __future__ import annotations

from typing import Any

from adlake.embed.job import embed_pending, pending_items
from adlake.errors import NothingToDo
from adlake.jobs import cli, context, parser
from adlake.lake import Lake
from adlake.tracking import job_run
from schemas.registry import ASR_SENTENCES, CLIPS, EMBEDDINGS, FRAMES, PARSED_VIDEOS

JOB = "embed"
WHAT = {"frame": "1 fps frame", "audio": "clip soundtrack", "bgm": "background-music window"}
SOURCES = {"frame": (FRAMES,), "audio": (CLIPS, PARSED_VIDEOS), "bgm": (PARSED_VIDEOS,)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--entity", choices=["frame", "audio", "bgm"], required=True)
    args = p.parse_args(argv)
    ctx = context(JOB, args)
    lake = Lake(ctx)
    conf = lake.settings.embed
    inputs = lake.pin(FRAMES, CLIPS, PARSED_VIDEOS, ASR_SENTENCES, EMBEDDINGS)
    pending = pending_items(lake, args.entity)
    if not pending[1]:
        sources = SOURCES[args.entity]
        missing = [s.name for s in sources if inputs[s.name] is None]
        if missing:
            raise NothingToDo(f"nothing to embed: {' and '.join(missing)} "
                              f"{'does' if len(missing) == 1 else 'do'} not exist yet: run ads_parse first")
        at = ", ".join(f"{s.name}@v{inputs[s.name]}" for s in sources)
        raise NothingToDo(f"nothing to embed: every {WHAT[args.entity]} of {at} is already embedded by "
                          f"{pending[0]} in {EMBEDDINGS.name}@v{inputs[EMBEDDINGS.name]}")
    params = {"entity": args.entity, "actors": conf.actors, "gpus_per_actor": conf.gpus_per_actor,
              "batch_size": conf.frame.batch_size if args.entity == "frame" else conf.audio.batch_size,
              "ray_address": lake.settings.ray.address or "local", "encoder_id": pending[0]}
    with job_run(ctx, params=params, inputs=inputs) as run:
        result = embed_pending(lake, args.entity, pending)
        run.metrics({k: v for k, v in result.as_dict().items() if isinstance(v, int | float)})
        summary = {"job": JOB, "run_id": ctx.run_id, **result.as_dict(),
                   "wrote": {EMBEDDINGS.name: lake.version(EMBEDDINGS)}}
        run.summary(summary)
    return summary


if __name__ == "__main__":
    cli(main)
