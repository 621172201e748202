"""The edit plan: what `adlake render` turns into an MP4. A JSON file format, versioned like the tables.

A plan names the product, the clips in playing order (by ``clip_id``, or as retrieved from an index with
the hit's score and the index version), each clip's script and subtitle segments, optional narration
audio, background music, a target duration and the output frame. Bump ``PLAN_VERSION`` on any change of
meaning; a reader refuses versions it does not know.
"""

from __future__ import annotations

import json
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

PLAN_FORMAT = "adlake.edit_plan"
PLAN_VERSION = 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Subtitle(_Strict):
    """One subtitle segment; times are seconds from the clip's start. Without times, segments share the
    narration (or the clip) in proportion to their length."""

    text: str = Field(min_length=1)
    start_s: float | None = Field(None, ge=0)
    end_s: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _times(self) -> Subtitle:
        if (self.start_s is None) != (self.end_s is None):
            raise ValueError("a subtitle gives both start_s and end_s, or neither")
        if self.start_s is not None and self.end_s <= self.start_s:
            raise ValueError(f"subtitle {self.text!r} ends before it starts")
        return self


class Retrieved(_Strict):
    """Where a clip came from when a model's output was matched to the library."""

    query: str = Field(description="what was looked up, e.g. the token string of the model's clip")
    score: float
    index: str = Field(description="the index and version searched, e.g. 'adlake-index-clip/3'")


class PlanClip(_Strict):
    clip_id: str = Field(min_length=1, description="a silver.clips clip_id")
    retrieved: Retrieved | None = None
    script: str | None = None
    subtitles: list[Subtitle] | None = Field(None, description="None: segmented from the script")
    narration: str | None = Field(None, description="an audio file for the narration; None: TTS of the script")
    narration_offset_s: float = Field(0.2, ge=0, description="narration start after the clip's start")


class Music(_Strict):
    """Background music: a ``bgm`` entity (``<video_id>:bgm:<start_ms>``) or an audio file; looped or
    trimmed to the ad's length and ducked under the narration."""

    entity_id: str | None = None
    file: str | None = None
    gain_db: float = Field(-12.0, le=0)

    @model_validator(mode="after")
    def _one_source(self) -> Music:
        if (self.entity_id is None) == (self.file is None):
            raise ValueError("bgm gives exactly one of entity_id and file")
        return self


class Output(_Strict):
    width: int = Field(720, ge=16, le=4096)
    height: int = Field(1280, ge=16, le=4096)
    fps: float = Field(25.0, gt=0, le=120)
    fit: Literal["pad", "crop"] = "pad"

    @model_validator(mode="after")
    def _even(self) -> Output:
        if self.width % 2 or self.height % 2:
            raise ValueError(f"H.264 needs an even frame size, not {self.width}x{self.height}")
        return self

    @property
    def orientation(self) -> str:
        return "portrait" if self.height > self.width else "landscape" if self.width > self.height else "square"


class EditPlan(_Strict):
    format: Literal["adlake.edit_plan"] = PLAN_FORMAT
    version: Literal[1] = PLAN_VERSION
    product_id: str | None = None
    product_name: str | None = None
    clips: list[PlanClip] = Field(min_length=1)
    narrations: list[str] | None = Field(
        None, description="scripts given apart from the clips: placed on clips by the SSMP dynamic programme")
    bgm: Music | None = None
    target_duration_s: float | None = Field(None, gt=0, description="the ad is cut at this length")
    output: Output = Field(default_factory=Output)
    transition: Literal["cut", "dissolve"] = "cut"
    dissolve_s: float = Field(0.3, gt=0, le=2.0)
    source: dict[str, str] = Field(default_factory=dict, description="where the plan came from (free text)")

    @model_validator(mode="after")
    def _consistent(self) -> EditPlan:
        seen: dict[str, int] = {}
        for i, c in enumerate(self.clips):
            if c.clip_id in seen:
                raise ValueError(f"clips[{i}]: clip {c.clip_id!r} is already used at clips[{seen[c.clip_id]}]")
            seen[c.clip_id] = i
        if self.narrations is not None and any(c.script or c.narration for c in self.clips):
            raise ValueError("narrations are placed by SSMP: clips then carry no script or narration of their own")
        return self

    def canonical_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def has_cjk(text: str) -> bool:
    return bool(re.search(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]", text))


def json_schema() -> dict:
    return EditPlan.model_json_schema()
