"""The token round trip, rendered: an ad's ground-truth plan and the plan read back from its own tokens,
each rendered and checked against its plan (``adlake plan roundtrip --render N``)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from adlake.errors import AdlakeError
from adlake.lake import Lake
from adlake.render.checks import verify
from adlake.render.plans import Library, frame_of_clip, ground_truth_plan, plan_from_tokens
from adlake.render.render import render_plan
from schemas.edit_plan import Output
from schemas.registry import AD_SEQUENCES


def render_round_trip(lake: Lake, library: Library, trip: dict[str, Any], n: int) -> list[dict[str, Any]]:
    """The ground-truth plan and the token plan of the first ``n`` ads of the round trip, rendered and checked."""
    seqs = {r["ad_id"]: r["sequence"] for r in lake.read(AD_SEQUENCES, columns=["ad_id", "sequence", "tokenizer_id"])
            .to_pylist() if r["tokenizer_id"] == trip["sequence_tokenizer"]}
    rows = []
    with tempfile.TemporaryDirectory(prefix="adlake-roundtrip-") as d:
        for ad in trip["per_ad"][:n]:
            truth = ground_truth_plan(lake, ad["ad_id"])
            plans = {"truth": truth}
            try:
                plans["tokens"] = plan_from_tokens(seqs[ad["ad_id"]], library, product_id=truth.product_id,
                                                   min_score=lake.settings.render.min_clip_score).model_copy(
                    update={"output": Output(**frame_of_clip(lake, truth.clips[0].clip_id))})
            except AdlakeError as e:
                rows.append({"ad_id": ad["ad_id"], "plan": "tokens", "duration_s": 0.0, "checks": {},
                             "error": str(e)})
            for kind, plan in plans.items():
                mp4 = Path(d) / f"{ad['ad_id']}-{kind}.mp4"
                try:
                    r = render_plan(lake, plan, out=mp4)
                    rows.append({"ad_id": ad["ad_id"], "plan": kind, "duration_s": r.duration_s,
                                 "checks": verify(lake, plan, r, mp4)})
                except AdlakeError as e:
                    rows.append({"ad_id": ad["ad_id"], "plan": kind, "duration_s": 0.0, "checks": {},
                                 "error": str(e)})
    return rows
