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
    transition: str = "start"  # how the shot begins: 'start', 'cut' or 'dissolve'


def _transition(stats, frame: int, window: int = 10) -> str:
    """A hard cut changes one frame; a dissolve spreads its change over several. Counts the frames
    around the boundary whose content change is at least a quarter of the largest one."""
    values = [stats.get_metrics(k, ["content_val"])[0] or 0.0 for k in range(max(0, frame - window), frame + window + 1)
              if stats.metrics_exist(k, ["content_val"])]
    peak = max(values, default=0.0)
    return "dissolve" if peak > 0 and sum(v > 0.25 * peak for v in values) >= 2 else "cut"


def _detector(conf: ShotsConf):
    from scenedetect import AdaptiveDetector, ContentDetector

    if conf.detector == "content":
        return ContentDetector(threshold=conf.threshold, min_scene_len=conf.min_scene_len_frames)
    # Adaptive compares each frame's change with its neighbourhood: hard cuts plus most dissolves.
    return AdaptiveDetector(adaptive_threshold=conf.adaptive_threshold, min_scene_len=conf.min_scene_len_frames)


def detect_shots(path: Path, conf: ShotsConf, video=None) -> list[Shot]:
    """The shots of one video, covering it from start to end. ``video``: a PySceneDetect stream to read
    instead of opening ``path`` (a frame tap that samples frames from the same decode)."""
    from scenedetect import SceneManager, StatsManager, open_video

    video = video if video is not None else open_video(str(path), backend="opencv")
    stats = StatsManager()  # per-frame content change, to tell dissolves from cuts
    manager = SceneManager(stats)
    manager.auto_downscale = False
    manager.downscale = conf.downscale
    manager.add_detector(_detector(conf))
    manager.detect_scenes(video)
    scenes = manager.get_scene_list(start_in_scene=True)
    return [Shot(i, round(start.seconds, 3), round(end.seconds, 3),
                 "start" if i == 0 else _transition(stats, start.frame_num)) for i, (start, end) in enumerate(scenes)]


def boundaries(shots: list[Shot]) -> list[float]:
    return [s.start_s for s in shots[1:]]
