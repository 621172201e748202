"""Frame-embedding throughput of the Ray Data job against a bare forward pass of the same model.

The job reads JPEGs from the media store, decodes and resizes them in the actors, runs the encoder and
commits to silver.embeddings through delta-rs. The baseline, measured in the same run on the same frames,
is the encoder's forward pass alone on tensors decoded beforehand: the ceiling the job can approach.
Ray's start-up is left out of both (it is paid once per job, not per frame); the actor's start-up (loading
torch and the model in a new process) is reported apart: the steady-state rate counts from the first commit.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def run(frames: int | None = None) -> None:
    import cv2
    import pyarrow as pa

    from adlake.config import get_settings
    from adlake.embed.encoders import EfficientNetLite0, decode_image
    from adlake.embed.job import embed_pending
    from adlake.lake import Lake
    from adlake.media.store import MediaStore
    from adlake.provenance import RunContext
    from adlake.ray_session import ray_init
    from schemas.registry import FRAMES

    frames = frames or int(os.environ.get("ADLAKE_BENCH_FRAMES", "512"))
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="adlake-bench-embed-") as tmp:
        os.environ["ADLAKE_HOME"] = str(Path(tmp) / "home")
        # one actor using every core, as the bare pass does (Ray caps an actor's threads at its CPUs)
        os.environ["ADLAKE__EMBED__CPUS_PER_ACTOR"] = str(cores)
        # commits of a few batches, so that the first one marks when the actor started producing
        os.environ["ADLAKE__EMBED__COMMIT_ROWS"] = "64"
        get_settings.cache_clear()
        settings = get_settings()
        lake = Lake(RunContext.create("bench", run_id="bench-embed"))
        store = MediaStore(settings)
        rng = np.random.default_rng(0)
        rows, images = [], []
        for i in range(frames):
            # smooth gradients plus noise: JPEGs of a realistic size, each distinct
            base = np.linspace(0, 255, 560, dtype=np.float32)[None, :, None] * rng.random(3)
            img = np.clip(base + rng.normal(0, 20, (315, 560, 3)), 0, 255).astype(np.uint8)
            data = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
            images.append(data)
            rows.append({"frame_id": f"bench:{i // 10}:fps1:{i}", "clip_id": f"bench:{i // 10}", "video_id": "bench",
                         "t_s": float(i), "role": "fps1", "media_uri": store.uri(store.put_bytes(data, "frames")),
                         "width": 560, "height": 315, "run_id": "bench"})
        lake.merge(FRAMES, pa.Table.from_pylist(rows, schema=FRAMES.schema))

        encoder = EfficientNetLite0.load()
        pixels = np.stack([decode_image(b, encoder.image_size) for b in images])
        batch = settings.embed.frame.batch_size
        encoder.embed_tensors(pixels[:batch])  # warm-up
        t0 = time.perf_counter()
        for i in range(0, len(pixels), batch):
            encoder.embed_tensors(pixels[i: i + batch])
        bare = frames / (time.perf_counter() - t0)

        ray_init(settings)
        t0 = time.perf_counter()
        result = embed_pending(lake, "frame")
        total = time.perf_counter() - t0
        job = result.embedded / total
        steady = (result.embedded - result.first_commit_rows) / (total - result.first_commit_s)
        print(f"\n== frame embeddings ({frames} JPEGs 560x315, EfficientNet-Lite0 on CPU, {cores} cores, "
              f"batch {batch}, {settings.embed.actors} actor x {cores} CPUs) {dt.date.today()}")
        print(f"  bare forward pass on pre-decoded tensors  {bare:7.1f} frames/s")
        print(f"  Ray Data job, steady state (decode, embed, commit after the first commit)  {steady:7.1f} frames/s"
              f"   ratio {steady / bare:.2f} (aim ≥ 0.7)")
        print(f"  Ray Data job, end to end (actor start-up included: first commit after "
              f"{result.first_commit_s:.1f} s)  {job:7.1f} frames/s   ratio {job / bare:.2f}; "
              f"{result.commits} delta-rs commits")
