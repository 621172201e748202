"""The judged metrics (VSC, Fact, Coh, Logic, SQ) through an OpenAI-compatible chat endpoint.

Prompt templates are versioned files (``prompts/<version>/<metric>.txt``); the version and each
template's sha256 go into the report. Without an endpoint in configuration (``evaluate.judge.base_url``)
the judged metrics are reported as not computed, never guessed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

PROMPTS = Path(__file__).parent / "prompts"
JUDGED = {"VSC": "vsc", "Fact": "fact", "Coh": "coh", "Logic": "logic", "SQ": "sq"}


def templates(version: str) -> dict[str, str]:
    folder = PROMPTS / version
    if not folder.is_dir():
        raise ValueError(f"no judge prompt version {version!r} (have {sorted(p.name for p in PROMPTS.iterdir())})")
    return {metric: (folder / f"{name}.txt").read_text() for metric, name in JUDGED.items()}


def template_hashes(version: str) -> dict[str, str]:
    return {m: hashlib.sha256(t.encode()).hexdigest()[:12] for m, t in templates(version).items()}


def parse_score(text: str) -> int | None:
    """The integer 1-5 of a ``{"score": n}`` reply (tolerating text around the JSON); None when absent."""
    match = re.search(r"\{.*\}", text, re.S)
    if match:
        try:
            value = json.loads(match.group(0)).get("score")
            if isinstance(value, int | float) and 1 <= value <= 5:
                return int(value)
        except (json.JSONDecodeError, AttributeError):
            pass
    return None


def judge(items: list[dict[str, str]], conf) -> dict[str, Any]:
    """Mean score per judged metric over ``items`` ({"product", "video"} texts), or why it was not computed."""
    status = {"prompt_version": conf.prompt_version, "templates": template_hashes(conf.prompt_version),
              "model": conf.model}
    if not conf.base_url:
        return {**status, "computed": False,
                "status": "not computed: no judge endpoint configured (evaluate.judge.base_url)"}
    if not items:
        return {**status, "computed": False, "status": "not computed: no predicted scripts to judge"}
    import httpx

    key = os.environ.get(conf.api_key_env, "")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    scores: dict[str, list[int]] = {m: [] for m in JUDGED}
    unparsed = 0
    with httpx.Client(base_url=conf.base_url.rstrip("/"), timeout=conf.timeout_s, headers=headers) as client:
        for item in items:
            for metric, template in templates(conf.prompt_version).items():
                reply = client.post("/chat/completions", json={
                    "model": conf.model, "temperature": 0,
                    "messages": [{"role": "user", "content": template.format(**item)}]})
                reply.raise_for_status()
                value = parse_score(reply.json()["choices"][0]["message"]["content"])
                if value is None:
                    unparsed += 1
                else:
                    scores[metric].append(value)
    return {**status, "computed": True, "status": f"judged by {conf.model} at {conf.base_url}",
            "unparsed_replies": unparsed,
            **{m: (round(sum(v) / len(v), 3) if v else None) for m, v in scores.items()}}
