"""The editor LLM's answers on the benchmark: greedy decoding constrained to the sample's clip labels.

An answer is the compound task's JSON list, built piece by piece: at each clip the model's likeliest label
among the candidates not yet used (the whole label scored, all its tokens), then — when
``max_script_tokens`` > 0 — its script, greedy and free, up to the closing quote. Exactly ``k`` clips.
"""

from __future__ import annotations

import json
from typing import Any

import torch


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


@torch.no_grad()
def _best_label(model, prefix: list[int], options: list[list[int]], dev: torch.device) -> int:
    """The option whose tokens the model finds likeliest after ``prefix`` (summed log-probability)."""
    width = max(len(o) for o in options)
    rows = [prefix + o + [0] * (width - len(o)) for o in options]
    x = torch.tensor(rows, device=dev)
    logits = model(input_ids=x, logits_to_keep=width + 1).logits.float()  # the last width+1 positions
    logp = torch.log_softmax(logits, -1)
    scores = []
    for r, o in enumerate(options):
        # the token at prefix position p is predicted from position p-1; kept logits start at len(prefix)-1
        scores.append(sum(float(logp[r, j, t]) for j, t in enumerate(o)))
    return max(range(len(options)), key=lambda i: (scores[i], -i))


@torch.no_grad()
def _script(model, tokenizer, prefix: list[int], max_tokens: int, dev: torch.device) -> tuple[str, list[int]]:
    """Greedy tokens until one closes the string (a quote) or ``max_tokens``; the text before the quote."""
    ids: list[int] = []
    past = None
    x = torch.tensor([prefix], device=dev)
    for _ in range(max_tokens):
        out = model(input_ids=x, past_key_values=past, use_cache=True)
        past = out.past_key_values
        nxt = int(out.logits[0, -1].argmax())
        ids.append(nxt)
        text = tokenizer.decode(ids, skip_special_tokens=False)
        if '"' in text or "<|" in text:
            return text.split('"', 1)[0].split("<|", 1)[0].replace("\\", ""), ids
        x = torch.tensor([[nxt]], device=dev)
    return tokenizer.decode(ids, skip_special_tokens=False).replace("\\", ""), ids


def answer(model, tokenizer, prompt: str, labels: list[str], k: int, max_script_tokens: int,
           dev: torch.device) -> dict[str, Any]:
    """One benchmark sample: ``{"clips": [labels in order], "scripts": [...]}`` (scripts only when generated)."""
    ids = _ids(tokenizer, prompt)
    text = '[{"clip": "'
    chosen: list[str] = []
    scripts: list[str] = []
    for i in range(min(k, len(labels))):
        ids += _ids(tokenizer, text)
        left = [lab for lab in labels if lab not in chosen]
        pick = left[_best_label(model, ids, [_ids(tokenizer, f'{lab}"') for lab in left], dev)]
        chosen.append(pick)
        text = f'{pick}", "script": "'
        if max_script_tokens:
            ids += _ids(tokenizer, text)
            script, _ = _script(model, tokenizer, ids, max_script_tokens, dev)
            scripts.append(script)
            text = json.dumps(script, ensure_ascii=False)[1:] + ', "subtitles": []}'
        else:
            text += '", "subtitles": []}'
        text += ', {"clip": "' if i + 1 < min(k, len(labels)) else "]"
    return {"clips": chosen, **({"scripts": scripts} if max_script_tokens else {})}
