"""AutoCut token sequences, read back: the grammar ``adlake.tokenizer.tokenize.ad_sequence`` writes.

    <|ad_start|> ( <|clip_start|> [<|text_start|> TEXT <|text_end|>] <|video_start|>
                   ( <|frame_start|> CODES <|frame_end|> )+ <|video_end|> <|clip_end|> )+
                 [ <|audio_start|> CODES+ <|audio_end|> ] <|ad_end|>

A model's output is read the same way. Anything else (an unknown token, a marker out of place, codes that are
not whole tuples of the tokenizer's levels, an empty clip) is a :class:`PlanError` naming the character
position, never a crash or an empty plan.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from adlake.render.errors import PlanError
from adlake.tokenizer.vocab import SPECIAL, SPECIAL_TOKENS

_TOKEN = re.compile(r"<\|[^|<>]*\|>|<[va]_\d+_\d+>|<[a-z]_[^<>]*>")
_CODE = re.compile(r"<([va])_(\d+)_(\d+)>")


@dataclass
class ParsedClip:
    position: int  # character offset of its <|clip_start|>
    script: str | None
    frames: list[str] = field(default_factory=list)  # each frame's code tokens


@dataclass
class ParsedSequence:
    clips: list[ParsedClip]
    audio: list[str]  # audio code tuples, each a token string
    audio_position: int | None = None


def _lex(text: str) -> list[tuple[int, str, str]]:
    """(position, kind, value): kind 'marker', 'code' or 'text'."""
    out, pos = [], 0
    for m in _TOKEN.finditer(text):
        if m.start() > pos and text[pos:m.start()].strip():
            out.append((pos, "text", text[pos:m.start()].strip()))
        tok = m.group(0)
        if tok.startswith("<|"):
            if tok not in SPECIAL_TOKENS:
                raise PlanError("unknown_token", f"position {m.start()}", f"{tok} is not a token of the vocabulary")
            out.append((m.start(), "marker", tok))
        elif _CODE.fullmatch(tok):
            out.append((m.start(), "code", tok))
        else:
            raise PlanError("unknown_token", f"position {m.start()}", f"{tok} is not a token of the vocabulary")
        pos = m.end()
    if text[pos:].strip():
        out.append((pos, "text", text[pos:].strip()))
    return out


class _Reader:
    def __init__(self, tokens: list[tuple[int, str, str]], end: int):
        self.tokens, self.i, self.end = tokens, 0, end

    def peek(self) -> tuple[int, str, str]:
        return self.tokens[self.i] if self.i < len(self.tokens) else (self.end, "end", "")

    def take(self, marker: str) -> int:
        pos, kind, value = self.peek()
        if kind != "marker" or value != SPECIAL[marker]:
            found = "the end of the output" if kind == "end" else (value if kind != "text" else f"text {value[:30]!r}")
            raise PlanError("bad_nesting", f"position {pos}", f"expected {SPECIAL[marker]}, found {found}")
        self.i += 1
        return pos

    def at(self, marker: str) -> bool:
        _, kind, value = self.peek()
        return kind == "marker" and value == SPECIAL[marker]

    def codes(self, modality: str, levels: int, where: str) -> str:
        """One whole code tuple of ``modality``."""
        got = []
        for level in range(levels):
            pos, kind, value = self.peek()
            m = _CODE.fullmatch(value) if kind == "code" else None
            if m is None:
                raise PlanError("bad_codes", f"position {pos}", f"{where}: expected code level {level} of "
                                f"{levels}, found {value[:30] or 'the end'}")
            if m.group(1) != modality[0] or int(m.group(2)) != level:
                raise PlanError("bad_codes", f"position {pos}", f"{where}: {value} is not a {modality} code of "
                                f"level {level}")
            got.append(value)
            self.i += 1
        return "".join(got)


def parse_sequence(text: str, video_levels: int, audio_levels: int | None = None) -> ParsedSequence:
    r = _Reader(_lex(text), len(text))
    r.take("ad_start")
    clips: list[ParsedClip] = []
    while r.at("clip_start"):
        pos = r.take("clip_start")
        script = None
        if r.at("text_start"):
            r.take("text_start")
            p, kind, value = r.peek()
            if kind == "text":
                script, r.i = value, r.i + 1
            r.take("text_end")
        r.take("video_start")
        clip = ParsedClip(pos, script)
        while r.at("frame_start"):
            r.take("frame_start")
            clip.frames.append(r.codes("video", video_levels, f"clip {len(clips) + 1}"))
            r.take("frame_end")
        if not clip.frames:
            raise PlanError("empty_clip", f"position {pos}", f"clip {len(clips) + 1} has no frame tokens")
        r.take("video_end")
        r.take("clip_end")
        clips.append(clip)
    if not clips:
        raise PlanError("empty_plan", f"position {r.peek()[0]}", "the sequence has no clip")
    audio, audio_pos = [], None
    if r.at("audio_start"):
        audio_pos = r.take("audio_start")
        if audio_levels is None:
            raise PlanError("bad_codes", f"position {audio_pos}", "audio tokens, but no audio tokenizer to read them")
        while not r.at("audio_end"):
            audio.append(r.codes("audio", audio_levels, "audio"))
        r.take("audio_end")
    r.take("ad_end")
    pos, kind, value = r.peek()
    if kind != "end":
        raise PlanError("bad_nesting", f"position {pos}", f"{value[:30]} after <|ad_end|>")
    return ParsedSequence(clips, audio, audio_pos)
