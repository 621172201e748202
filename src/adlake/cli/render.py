"""`adlake render PLAN` and `adlake plan …`: from edit plans (the lake's ads, model output) to MP4s."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from adlake.cli.common import JsonOpt, app, cli_lake, console, out, print_json, stdout_to_stderr

plan_app = typer.Typer(no_args_is_help=True, help="Edit plans: an ad as cut, a model's answer or tokens, the "
                                                 "token round trip.")
app.add_typer(plan_app, name="plan")

OutOpt = Annotated[Path | None, typer.Option("--out", help="write the plan here (default: stdout)")]


def _fail(e: Exception) -> None:
    kind = getattr(e, "error_class", type(e).__name__)
    console.print(f"[red]{kind}[/]: {e}")
    raise typer.Exit(2) from None


def _emit(plan, dest: Path | None) -> None:
    text = json.dumps(plan.model_dump(mode="json", exclude_none=True), indent=2, ensure_ascii=False)
    if dest is None:
        out.print(text, markup=False, highlight=False, soft_wrap=True)
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(text + "\n", encoding="utf-8")
    console.print(f"plan of {len(plan.clips)} clips → {dest}")


@app.command()
def render(
    plan: Annotated[Path, typer.Argument(metavar="PLAN", help="an edit plan (JSON; adlake plan writes one)")],
    dest: Annotated[Path | None, typer.Option("--out", help="copy the MP4 here (sidecars beside it)")] = None,
    check: Annotated[bool, typer.Option("--check", help="check the MP4 against the plan (streams, length, each "
                                        "clip's frames, subtitles, narration onsets, ducking, loudness); exit 1 "
                                        "when a check fails")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Render an edit plan to an H.264/AAC MP4 with burned-in subtitles and SRT/WebVTT sidecars. The same plan
    renders once: later calls return the stored render."""
    from rich.progress import Progress

    from adlake.errors import AdlakeError
    from adlake.render.render import render_plan
    from adlake.render.resolve import load_plan

    try:
        with stdout_to_stderr(), Progress(console=console, transient=True) as bar:
            task = bar.add_task("rendering", total=1.0)
            result = render_plan(cli_lake(), load_plan(plan), out=dest,
                                 progress=lambda f: bar.update(task, completed=f))
    except AdlakeError as e:
        _fail(e)
    info: dict[str, Any] = result.as_dict()
    if check:
        with stdout_to_stderr():
            info["checks"] = _checks(load_plan(plan), result)
    failed = [k for k, v in info.get("checks", {}).items() if v["ok"] is False]
    if as_json:
        print_json(info)
    else:
        where = result.out or result.mp4_uri
        out.print(f"{'already rendered' if result.cached else 'rendered'}: {where} ({result.duration_s:.2f} s, "
                  f"{len(result.clips)} clips, {len(result.cues)} subtitle cues; render {result.digest[:12]})")
        for name, c in info.get("checks", {}).items():
            figures = ", ".join(f"{k} {v}" for k, v in c.items() if k != "ok")
            mark = "n/a" if c["ok"] is None else "pass" if c["ok"] else "[red]FAIL[/]"
            out.print(f"  {name:17} {mark:4} {figures}")
    if failed:
        raise typer.Exit(1)


def _checks(plan, result) -> dict[str, Any]:
    from adlake.media.store import MediaStore
    from adlake.render.checks import verify

    lake = cli_lake()
    if result.out:
        return verify(lake, plan, result, Path(result.out))
    store = MediaStore(lake.settings)
    path, temporary = store.local_copy(store.key_of(result.mp4_uri))
    try:
        return verify(lake, plan, result, path)
    finally:
        if temporary:
            path.unlink(missing_ok=True)


@plan_app.command("truth")
def plan_truth(ad_id: Annotated[str, typer.Argument(metavar="AD_ID")], dest: OutOpt = None) -> None:
    """The plan of an ad as it was cut: its clips in order, with their scripts."""
    from adlake.render.errors import PlanError
    from adlake.render.plans import ground_truth_plan

    try:
        with stdout_to_stderr():
            plan = ground_truth_plan(cli_lake(), ad_id)
    except PlanError as e:
        _fail(e)
    _emit(plan, dest)


@plan_app.command("answer")
def plan_answer(
    answer: Annotated[Path, typer.Argument(metavar="ANSWER", help="a VC-LLM compound answer (JSON text)")],
    sample: Annotated[str, typer.Option("--sample", help="the gold.benchmark sample_id it answers")],
    dest: OutOpt = None,
) -> None:
    """A plan from a VC-LLM compound answer to a benchmark sample (labels → the sample's candidate clips)."""
    from adlake.lake.sql import sql_literal
    from adlake.render.errors import PlanError
    from adlake.render.plans import plan_from_compound
    from schemas.registry import BENCHMARK

    try:
        with stdout_to_stderr():
            lake = cli_lake()
            rows = lake.read(BENCHMARK, where=f"sample_id = {sql_literal(sample)}").to_pylist()
            if not rows:
                raise PlanError("unknown_sample", "--sample", f"{sample!r} is not in gold.benchmark")
            plan = plan_from_compound(answer.read_text(encoding="utf-8"), rows[0])
    except (PlanError, OSError, UnicodeDecodeError) as e:
        _fail(e)
    _emit(plan, dest)


@plan_app.command("tokens")
def plan_tokens(
    sequence: Annotated[Path, typer.Argument(metavar="SEQUENCE", help="an AutoCut token sequence (text file)")],
    product: Annotated[str | None, typer.Option("--product", help="retrieve from this product's clips "
                                                "(default: the product of the first clip's best match)")] = None,
    any_product: Annotated[bool, typer.Option("--any-product", help="retrieve from the whole library")] = False,
    dest: OutOpt = None,
) -> None:
    """A plan from an AutoCut token sequence: video tokens → the production tokenizer's decode → the production
    clip index (no clip twice); audio tokens → the music index."""
    from adlake.render.errors import PlanError
    from adlake.render.plans import Library, frame_of_clip, plan_from_tokens
    from schemas.edit_plan import Output

    try:
        with stdout_to_stderr():
            lake = cli_lake()
            plan = plan_from_tokens(sequence.read_text(encoding="utf-8"), Library.load(lake), product_id=product,
                                    any_product=any_product, min_score=lake.settings.render.min_clip_score)
            plan = plan.model_copy(update={"output": Output(**frame_of_clip(lake, plan.clips[0].clip_id))})
    except (PlanError, OSError, UnicodeDecodeError) as e:
        _fail(e)
    _emit(plan, dest)


@plan_app.command("roundtrip")
def plan_roundtrip(
    render_ads: Annotated[int, typer.Option("--render", help="also render and check the truth and token plans of "
                                            "this many training ads")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Each training ad's gold.ad_sequences tokens back into a plan: the share of its own clips, in place."""
    from adlake.render.errors import PlanError
    from adlake.render.plans import Library, token_round_trip
    from adlake.render.roundtrip import render_round_trip

    try:
        with stdout_to_stderr():
            lake = cli_lake()
            library = Library.load(lake)
            result = token_round_trip(lake, library)
            if render_ads:
                result["renders"] = render_round_trip(lake, library, result, render_ads)
    except PlanError as e:
        _fail(e)
    if as_json:
        print_json(result)
        return
    share = "not computed (no training ad has a sequence)" if result["fraction"] is None else f"{result['fraction']:.1%}"
    out.print(f"token round trip ({result['sequence_tokenizer']}): {result['own_in_place']}/{result['clips']} clips "
              f"of {result['ads']} training ads come back as their own, in place: {share}")
    for ad in result["per_ad"]:
        if ad["misses"] or ad["error"]:
            out.print(f"  {ad['ad_id']}: {ad['own_in_place']}/{ad['clips']}" + (f" ({ad['error']})" if ad["error"] else ""))
    for r in result.get("renders", []):
        failed = [k for k, v in r["checks"].items() if v["ok"] is False]
        applied = sum(v["ok"] is not None for v in r["checks"].values())
        out.print(f"  {r['ad_id']} {r['plan']:6} {r['duration_s']:6.2f} s  "
                  + ("[red]FAIL " + ", ".join(failed) + "[/]" if failed else f"all {applied} checks pass")
                  + (f" ({r['error']})" if r.get("error") else ""))
    if result.get("renders"):
        ok = sum(not r.get("error") and all(v["ok"] is not False for v in r["checks"].values())
                 for r in result["renders"])
        out.print(f"renders passing every check that applies: {ok}/{len(result['renders'])}")


@plan_app.command("schema")
def plan_schema() -> None:
    """The JSON Schema of edit plans (schemas/edit_plan.py, format adlake.edit_plan, version 1)."""
    from schemas.edit_plan import json_schema

    print_json(json_schema())
