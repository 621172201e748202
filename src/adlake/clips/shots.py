"""Shot boundaries with PySceneDetect on downscaled frames; detector and thresholds from configuration."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from adlake.config import ShotsConf


@dataclass(frozen=True)
class Shot:
    idx: int
    start_s: float
    end_s: float


def _detector(conf: ShotsConf):
    from scenedetect import AdaptiveDetector, ContentDetector

    if conf.detector == "content":
        return ContentDetector(threshold=conf.threshold, min_scene_len=conf.min_scene_len_frames)
    # Adaptive compares each frame's change with its neighbourhood: hard cuts plus most dissolves.
    return AdaptiveDetector(adaptive_threshold=conf.adaptive_threshold, min_scene_len=conf.min_scene_len_frames)


def detect_shots(path: Path, conf: ShotsConf) -> list[Shot]:
    """The shots of one video, covering it from start to end."""
    from scenedetect import SceneManager, open_video

    video = open_video(str(path), backend="opencv")
    manager = SceneManager()
    manager.auto_downscale = False
    manager.downscale = conf.downscale
    manager.add_detector(_detector(conf))
    manager.detect_scenes(video)
    scenes = manager.get_scene_list(start_in_scene=True)
    return [Shot(i, round(start.seconds, 3), round(end.seconds, 3)) for i, (start, end) in enumerate(scenes)]


def boundaries(shots: list[Shot]) -> list[float]:
    return [s.start_s for s in shots[1:]]
