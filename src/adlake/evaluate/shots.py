"""Shot boundaries against a synthetic corpus's ground truth: F1 on hard cuts, dissolves apart."""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from adlake.clips.shots import boundaries, shots_of_file
from adlake.config import ShotsConf


@dataclass
class ShotScore:
    videos: int
    cuts: int
    cut_hits: int
    false_positives: int
    dissolves: int
    dissolve_hits: int
    tolerance_s: float
    seconds: float = 0.0  # decode + detection
    floor_seconds: float = 0.0  # a bare ffmpeg decode of the same files (when asked)

    @property
    def precision(self) -> float:
        found = self.cut_hits + self.false_positives
        return self.cut_hits / found if found else 0.0

    @property
    def recall(self) -> float:
        return self.cut_hits / self.cuts if self.cuts else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def add(self, found: list[float], truth: list[dict]) -> None:
        """Score one video's found boundaries against its true ones."""
        cut_hits, dissolve_hits, extra = match(found, truth, self.tolerance_s)
        self.videos += 1
        self.cuts += sum(1 for b in truth if b["type"] == "cut")
        self.dissolves += sum(1 for b in truth if b["type"] == "dissolve")
        self.cut_hits += cut_hits
        self.dissolve_hits += dissolve_hits
        self.false_positives += extra

    def as_dict(self) -> dict:
        return {**asdict(self), "precision": round(self.precision, 4), "recall": round(self.recall, 4),
                "f1": round(self.f1, 4)}


def match(found: list[float], truth: list[dict], tolerance_s: float) -> tuple[int, int, int]:
    """Greedy one-to-one matching within the tolerance: (cut hits, dissolve hits, unmatched found)."""
    used: set[int] = set()
    hits = {"cut": 0, "dissolve": 0}
    for b in sorted(truth, key=lambda b: b["type"] != "cut"):  # cuts claim their neighbours first
        near = sorted((abs(f - b["t_s"]), i) for i, f in enumerate(found) if i not in used
                      and abs(f - b["t_s"]) <= tolerance_s)
        if near:
            used.add(near[0][1])
            hits[b["type"]] += 1
    return hits["cut"], hits["dissolve"], len(found) - len(used)


def bare_decode_s(path: Path) -> float:
    """The floor: FFmpeg decoding the video stream to nothing."""
    t0 = time.perf_counter()
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map", "0:v:0", "-f", "null", "-"],
                   check=True)
    return time.perf_counter() - t0


def score_corpus(corpus: Path, conf: ShotsConf, tolerance_s: float = 0.5, floor: bool = False) -> ShotScore:
    truth = json.loads((Path(corpus) / "ground_truth.json").read_text())["ads"]
    score = ShotScore(0, 0, 0, 0, 0, 0, tolerance_s)
    for t in truth.values():
        if t["kind"] == "bad":
            continue
        path = Path(corpus) / t["file"]
        t0 = time.perf_counter()
        found = boundaries(shots_of_file(path, conf))
        score.seconds += time.perf_counter() - t0
        score.add(found, t["boundaries"])
        if floor:
            score.floor_seconds += bare_decode_s(path)
    return score
