"""Preview MP4s and contact sheets for a benchmark version: what each sample's ground truth and each baseline
would make, so that a benchmark report comes with videos to look at.

For every sample: the ground-truth plan (the test ad's clips in order, with their scripts and subtitle
segments, narrated) and one plan per baseline (its clips in its order, unnarrated: the baselines choose and
order clips, they write no script), each rendered; and a contact sheet of the ad (each clip's spatial view
with its script). Renders are content-addressed, so a rerun on the same version renders nothing.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

from adlake.errors import AdlakeError
from adlake.lake import Lake
from adlake.lake.sql import sql_literal
from adlake.media.store import MediaStore
from adlake.render.plans import frame_of_clip
from adlake.render.render import render_plan
from schemas.edit_plan import EditPlan, has_cjk
from schemas.registry import FRAMES


def truth_plan(row: dict[str, Any], output: dict[str, int]) -> EditPlan:
    truth = json.loads(row["truth"])
    return EditPlan(product_id=row["product_id"], output=output,
                    clips=[{"clip_id": t["clip_id"], "script": t.get("script") or None,
                            "subtitles": [{"text": s} for s in t.get("subtitles") or []] or None} for t in truth],
                    source={"kind": "benchmark_truth", "sample_id": row["sample_id"]})


def baseline_plan(row: dict[str, Any], clips: list[str], system: str, output: dict[str, int]) -> EditPlan | None:
    by_label = {c["label"]: c["clip_id"] for c in json.loads(row["candidates"])}
    ids = list(dict.fromkeys(by_label.get(c, c) for c in clips))
    if not ids:
        return None
    return EditPlan(product_id=row["product_id"], output=output, clips=[{"clip_id": i} for i in ids],
                    source={"kind": f"baseline:{system}", "sample_id": row["sample_id"]})


def contact_sheet(lake: Lake, plan: EditPlan, dest: Path, columns: int = 4, thumb_w: int = 240) -> Path:
    """A PNG grid: each clip's spatial view (silver.frames) with its number and script under it."""
    from PIL import Image, ImageDraw

    ids = [c.clip_id for c in plan.clips]
    views = {r["clip_id"]: r["media_uri"] for r in lake.read(
        FRAMES, columns=["clip_id", "media_uri"],
        where=f"role = 'spatial' AND clip_id IN ({', '.join(sql_literal(i) for i in ids)})").to_pylist()}
    store = MediaStore(lake.settings)
    conf = lake.settings.render
    text = " ".join(c.script or "" for c in plan.clips)
    font_name = conf.cjk_font if has_cjk(text) else conf.font
    font = _font(font_name, 14)
    tiles = []
    for i, c in enumerate(plan.clips):
        tile = Image.new("RGB", (thumb_w, thumb_w * 9 // 16 + 70), "white")
        if c.clip_id in views:
            import io

            img = Image.open(io.BytesIO(store.read_bytes(store.key_of(views[c.clip_id])))).convert("RGB")
            img.thumbnail((thumb_w, thumb_w * 9 // 16))
            tile.paste(img, ((thumb_w - img.width) // 2, 0))
        draw = ImageDraw.Draw(tile)
        lines = textwrap.wrap(f"{i + 1}. {c.script or '(no script)'}", 30 if not has_cjk(c.script or "") else 14)[:3]
        draw.multiline_text((4, thumb_w * 9 // 16 + 4), "\n".join(lines), fill="black", font=font)
        tiles.append(tile)
    rows = (len(tiles) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * thumb_w, rows * tiles[0].height), "#dddddd")
    for i, t in enumerate(tiles):
        sheet.paste(t, ((i % columns) * thumb_w, (i // columns) * t.height))
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    sheet.save(part, format="PNG")
    part.replace(dest)
    return dest


def _font(name: str, size: int):
    import subprocess

    from PIL import ImageFont

    path = subprocess.run(["fc-match", "-f", "%{file}", name], capture_output=True, text=True).stdout.strip()
    return ImageFont.truetype(path, size) if path else ImageFont.load_default()


def render_previews(lake: Lake, rows: list[dict[str, Any]], baselines: dict[str, dict[str, dict[str, Any]]],
                    out_dir: Path) -> dict[str, Any]:
    """Render each sample's truth and baselines into ``out_dir`` (``<sample>/<system>.mp4``, ``sheet.png``).
    A plan that cannot render is reported with its error, the others go on."""
    made: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    rendered = cached = 0
    for row in sorted(rows, key=lambda r: r["sample_id"]):
        folder = out_dir / row["sample_id"].replace(":", "_")
        truth = json.loads(row["truth"])
        output = frame_of_clip(lake, truth[0]["clip_id"]) if truth else {}
        plans = {"truth": truth_plan(row, output)}
        for system, predictions in baselines.items():
            p = baseline_plan(row, predictions.get(row["sample_id"], {}).get("clips", []), system, output)
            if p is not None:
                plans[system] = p
        entry: dict[str, Any] = {"sample_id": row["sample_id"], "videos": {}}
        for system, plan in plans.items():
            try:
                r = render_plan(lake, plan, out=folder / f"{system}.mp4")
            except AdlakeError as e:
                failed.append({"sample_id": row["sample_id"], "system": system,
                               "error": getattr(e, "error_class", type(e).__name__), "message": str(e)[:300]})
                continue
            cached += r.cached
            rendered += not r.cached
            entry["videos"][system] = {"file": r.out, "render": r.digest, "duration_s": r.duration_s}
        entry["contact_sheet"] = str(contact_sheet(lake, plans["truth"], folder / "sheet.png"))
        made.append(entry)
    return {"samples": len(made), "videos": sum(len(m["videos"]) for m in made), "rendered": rendered,
            "already_rendered": cached, "failed": failed, "previews": made, "dir": str(out_dir)}
