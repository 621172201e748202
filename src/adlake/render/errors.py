"""The errors of rendering. Each names what is wrong and where (``clips[3]``, ``position 41``)."""

from __future__ import annotations

from adlake.errors import ClassifiedError


class PlanError(ClassifiedError):
    """A plan (or model output turned into one) that cannot be rendered; ``error_class`` says which kind."""

    def __init__(self, kind: str, where: str, message: str):
        super().__init__(f"plan.{kind}", f"{where}: {message}" if where else message)
        self.kind, self.where = kind, where


class RenderFailed(ClassifiedError):
    """ffmpeg (or the TTS) failed on a plan that resolved; nothing is left behind."""

    def __init__(self, message: str, kind: str = "ffmpeg"):
        super().__init__(f"render.{kind}", message)
