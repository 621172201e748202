"""ads_parse on Ray Data (``parse.engine: ray``): one actor pool per stage, the way Cosmos-Curate scales
video. ``Hear`` (soundtrack + ASR, batched across ``parse.asr.batch_size`` videos) loads WhisperX once per
actor; ``See`` (one decode: shots, 1 fps frames, clips) follows with what was heard. CPUs and GPUs per actor, the pool sizes and the videos in flight per
actor come from ``parse.ray``. Each video's rows are staged exactly as a mapped Airflow task stages them,
and the same single writer (``commit_parse``) commits and reconciles. Airflow stays the orchestrator: one
``parse_batch`` task drives the pipeline.
"""

from __future__ import annotations

import pickle
import time
from typing import Any

import numpy as np

from adlake.lake import Lake
from adlake.parse.batch import (
    BatchResult,
    attempt,
    batch_result,
    hear_batch,
    pending_videos,
    stage_video,
    staging_root,
    unstaged,
    with_local_copy,
)
from adlake.ray_session import node_id, ray_init

VIDEO_KEYS = ("video_id", "media_uri", "duration_s", "has_audio", "width", "height")


def _videos(batch: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    n = len(batch["video_id"])
    return [{k: batch[k][i].item() if hasattr(batch[k][i], "item") else batch[k][i] for k in VIDEO_KEYS}
            for i in range(n)]


class _Actor:
    def __init__(self) -> None:
        from adlake.config import get_settings
        from adlake.media.store import MediaStore

        self.settings = get_settings()
        self.store = MediaStore(self.settings)


class Hear(_Actor):
    """Soundtrack → ASR. The Transcriber is loaded on first use and kept for the actor's life."""

    def __init__(self) -> None:
        super().__init__()
        self._transcriber = None

    def transcriber(self):
        if self._transcriber is None:
            from adlake.asr.transcribe import Transcriber

            self._transcriber = Transcriber(self.settings.parse.asr)
        return self._transcriber

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        got = hear_batch(_videos(batch), self.store, self.transcriber)  # ASR batched across the videos
        heard = [pickle.dumps(h) if error is None else b"" for h, error in got]
        errors = [pickle.dumps(error) if error else b"" for _, error in got]
        return {**{k: batch[k] for k in VIDEO_KEYS}, "heard": np.array(heard, dtype=object),
                "error": np.array(errors, dtype=object), "heard_on": np.array([node_id()] * len(heard), dtype=object)}


class See(_Actor):
    """One decode → shots, frames, clips; stages the video's rows (or its failure) for ``commit_parse``."""

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id
        self.root = staging_root(self.settings)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from adlake.parse.video import see

        outcomes = []
        for video, heard, error in zip(_videos(batch), batch["heard"], batch["error"], strict=True):
            parsed, error = (None, pickle.loads(error)) if error else attempt(lambda video=video, heard=heard: (
                with_local_copy(self.store, video, lambda path: see(video, path, pickle.loads(heard), self.settings,
                                                                    self.store, self.run_id))))
            outcomes.append(stage_video(self.root, video["video_id"], parsed, error))
        n = len(outcomes)
        return {"video_id": batch["video_id"], "outcome": np.array(outcomes, dtype=object),
                "heard_on": batch["heard_on"], "seen_on": np.array([node_id()] * n, dtype=object)}


def parse_on_ray(lake: Lake) -> BatchResult:
    """Every pending video through the two pools; returns when all are staged."""
    t_start = time.perf_counter()
    settings = lake.settings
    conf = settings.parse.ray
    pending = pending_videos(lake)
    todo = unstaged(lake, pending)
    outcomes: list[str] = []
    by_node: dict[str, dict[str, int]] = {"hear": {}, "see": {}}
    if todo:
        ray_init(settings)  # before Ray is imported: it reads its authentication settings then
        import ray

        def pool(size: int):
            return ray.data.ActorPoolStrategy(size=size, max_tasks_in_flight_per_actor=conf.in_flight_per_actor)

        items = [{k: v[k] for k in VIDEO_KEYS} for v in todo]
        ds = (ray.data.from_items(items, override_num_blocks=len(items))
              .map_batches(Hear, batch_size=settings.parse.asr.batch_size, batch_format="numpy", compute=pool(conf.hear_actors),
                           num_cpus=conf.cpus_per_actor, num_gpus=conf.gpus_per_hear_actor, scheduling_strategy="SPREAD")
              .map_batches(See, fn_constructor_kwargs={"run_id": lake.ctx.run_id}, batch_size=1,
                           batch_format="numpy", compute=pool(conf.see_actors), num_cpus=conf.cpus_per_actor,
                           scheduling_strategy="SPREAD"))  # across the nodes; a lost node's actor restarts elsewhere
        for batch in ds.iter_batches(batch_size=16, batch_format="numpy"):
            outcomes += [str(o) for o in batch["outcome"]]
            for stage, column in (("hear", "heard_on"), ("see", "seen_on")):
                for node in batch[column]:
                    by_node[stage][str(node)] = by_node[stage].get(str(node), 0) + 1
    return batch_result(0, 1, len(pending), outcomes, len(pending) - len(todo), t_start, engine="ray",
                        videos_by_node={stage: dict(sorted(n.items())) for stage, n in by_node.items()})
