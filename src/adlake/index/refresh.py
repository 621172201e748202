"""index_refresh: build one FAISS index from pinned table versions, evaluate it, register it, gate production.

1. The inputs are pinned (``silver.embeddings``, and ``silver.frames`` for clips); when the production
   version was built from the same embeddings (same encoder, same entity ids) and settings, nothing is
   built.
2. A refresh re-adds the vectors into the production index's trained coarse quantizer; a full build
   (new quantizer, tuned training sample and nprobe) happens when there is none, when it is older than
   ``index.retrain_after_days``, when the vectors drifted from its cells, when the size calls for another
   kind of index, or on request.
3. The figures: recall@1 and @10 against exact search on held-out queries, queries per second against
   exact search, build time, index size, and the token round trip (each clip's tokens decoded with the
   production tokenizer find the clip's own video in the top k).
4. One MLflow run per build; the version is registered, and ``production`` moves only when the gate
   passes. Older versions stay registered for rollback.
"""

from __future__ import annotations

import hashlib
import json
import resource
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from adlake.index.corpus import KINDS, Corpus, fingerprint, input_versions, load_corpus
from adlake.index.registry import MODEL_NAMES, index_meta, load_index, prune, registry
from adlake.lake import Lake
from adlake.lake.sql import sql_literal
from adlake.vectors import mean_by_group
from schemas.registry import TOKENS


@dataclass
class Plan:
    mode: str  # "full" or "refresh"
    reason: str


def settings_key(conf) -> str:
    """What makes two builds of the same vectors equivalent: every index setting."""
    return hashlib.sha256(json.dumps(conf.model_dump(), sort_keys=True).encode()).hexdigest()[:16]


def choose_plan(conf, corpus: Corpus, production: dict | None, retrain: bool) -> Plan:
    from adlake.index.faiss_index import nlist_for

    n = len(corpus.ids)
    wants_ivf = n >= max(conf.exact_below, 1) and n >= 16 * 39
    if retrain:
        return Plan("full", "retrain requested")
    if production is None:
        return Plan("full", "no production index yet")
    if not wants_ivf:
        return Plan("full", f"{n} vectors: an exact index, nothing to re-use")
    if production.get("index_kind") != "ivf":
        return Plan("full", "the production index is exact: a first IVF index")
    if production.get("encoder_id") != corpus.encoder_id or production.get("dim") != corpus.vectors.shape[1]:
        return Plan("full", "another encoder")
    if production.get("ivf_codes") != conf.ivf_codes:
        return Plan("full", "other IVF codes configured")
    age_days = (time.time() - float(production.get("trained_at") or 0)) / 86400
    if age_days > conf.retrain_after_days:
        return Plan("full", f"the coarse quantizer is {age_days:.1f} days old (retrain after "
                            f"{conf.retrain_after_days})")
    wanted = nlist_for(n, conf.nlist_per_sqrt_n)
    if not production["nlist"] / 2 <= wanted <= production["nlist"] * 2:
        return Plan("full", f"{n} vectors call for {wanted} cells, the quantizer has {production['nlist']}")
    return Plan("refresh", f"re-add into the quantizer trained {age_days:.1f} days ago")


def token_roundtrip(lake: Lake, corpus: Corpus, search, k: int) -> dict[str, Any]:
    """Decode each indexed entity's tokens (production tokenizer), search, and count own-video hits in the top k."""
    from adlake.tokenizer.registry import load_tokenizer, production_version

    modality, entity_type = KINDS[corpus.kind]
    version = production_version(lake.ctx, modality)
    if version is None:
        return {"computed": False, "reason": f"no production {modality} tokenizer yet (train_tokenizer)"}
    tok = load_tokenizer(lake.ctx, modality, version)
    if tok.encoder_id != corpus.encoder_id:
        return {"computed": False, "tokenizer_id": tok.tokenizer_id,
                "reason": f"the production tokenizer was trained on {tok.encoder_id}, the index holds "
                          f"{corpus.encoder_id}"}
    if not lake.exists(TOKENS):
        return {"computed": False, "tokenizer_id": tok.tokenizer_id, "reason": "gold.tokens does not exist yet"}
    tokens_version = lake.version(TOKENS)
    rows = lake.read(TOKENS, version=tokens_version, columns=["entity_id", "codes"],
                     where=f"tokenizer_id = {sql_literal(tok.tokenizer_id)} AND "
                           f"entity_type = {sql_literal(entity_type)}")
    keep = [i for i, e in enumerate(rows["entity_id"].to_pylist()) if e in corpus.group_of]
    if not keep:
        return {"computed": False, "tokenizer_id": tok.tokenizer_id,
                "reason": f"gold.tokens@v{tokens_version} has no {entity_type} tokens of {tok.tokenizer_id}"}
    entity_ids = rows["entity_id"].to_pylist()
    codes = np.stack(rows["codes"].to_numpy(zero_copy_only=False)[keep]).astype(np.int64)
    ids, decoded = mean_by_group([corpus.group_of[entity_ids[i]] for i in keep], tok.decode(codes))
    video_of = dict(zip(corpus.ids, corpus.videos, strict=True))
    results = search(decoded, k)
    own_video = [any(h.video_id == video_of[i] for h in hits) for i, hits in zip(ids, results, strict=True)]
    own_entry = [any(h.id == i for h in hits) for i, hits in zip(ids, results, strict=True)]
    misses = [i for i, hit in zip(ids, own_video, strict=True) if not hit]
    return {"computed": True, "tokenizer_id": tok.tokenizer_id, "tokens_version": tokens_version, "k": k,
            "queries": len(ids), "own_video_hits": int(sum(own_video)),
            "own_video_in_top_k": round(float(np.mean(own_video)), 4),
            "own_entry_in_top_k": round(float(np.mean(own_entry)), 4),
            "videos_missed": len({video_of[i] for i in misses}), "misses": misses[:200]}


def apply_gate(gate, figures: dict[str, Any], roundtrip: dict[str, Any]) -> dict[str, dict[str, Any]]:
    checks = {"recall_at_10": {"value": figures["recall_at_10"], "min": gate.min_recall_at_10,
                               "passed": figures["recall_at_10"] >= gate.min_recall_at_10}}
    if gate.min_token_roundtrip is not None:
        value = roundtrip.get("own_video_in_top_k")
        checks["token_roundtrip"] = {"value": value, "min": gate.min_token_roundtrip,
                                     "passed": value is not None and value >= gate.min_token_roundtrip}
    return checks


def _write_files(folder: Path, index, corpus: Corpus, meta: dict[str, Any]) -> None:
    import faiss
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    faiss.write_index(index, str(folder / "index.faiss"))
    pq.write_table(pa.table({"row": pa.array(np.arange(len(corpus.ids)), pa.int64()),
                             "id": corpus.ids, "video_id": corpus.videos}), folder / "ids.parquet")
    (folder / "index.json").write_text(json.dumps(meta, indent=1, default=str))


def build_and_promote(lake: Lake, kind: str, *, embeddings_version: int | None = None, force: bool = False,
                      retrain: bool = False, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Build, evaluate and register one index; move ``production`` only when its gate passes.

    Returns the figures; raises nothing on a failed gate (the caller decides how loudly to fail).
    """
    import faiss
    import mlflow

    from adlake.embed.encoders import encoder_id_for
    from adlake.index.faiss_index import (
        build_index,
        held_out_queries,
        index_bytes,
        measure,
        refill,
        set_threads,
    )
    from adlake.index.registry import LoadedIndex
    from adlake.tracking import job_run

    conf = lake.settings.index.model_copy(update=overrides or {})
    modality = KINDS[kind][0]
    name = MODEL_NAMES[kind]
    encoder_id = encoder_id_for(lake.settings, modality)
    versions = input_versions(lake, kind, embeddings_version)
    key = settings_key(conf)
    reg = registry(lake.ctx, kind)
    current = reg.production()
    fp = fingerprint(lake, kind, encoder_id, versions)
    if (current is not None and not force and current.tags.get("input_fingerprint") == fp
            and current.tags.get("settings_key") == key):
        return {"kind": kind, "model": name, "status": "skipped", "production": str(current.version),
                "reason": f"no new embeddings since production v{current.version} (same encoder, same "
                          f"{KINDS[kind][1]} ids, same settings)", "input_versions": versions}
    corpus = load_corpus(lake, kind, encoder_id, versions)
    x = corpus.vectors
    set_threads(conf.threads)
    production = None if current is None else index_meta(lake.ctx, current)  # the index itself only for a refresh
    plan = choose_plan(conf, corpus, production, retrain)
    t0 = time.perf_counter()
    if plan.mode == "refresh":
        previous = load_index(lake.ctx, kind, current.version)
        index, add_s, similarity = refill(previous.index, x, conf)
        if production["cell_similarity"] - similarity > conf.max_drift:
            plan = Plan("full", f"drift: the vectors' mean best-cell similarity fell from "
                                f"{production['cell_similarity']} to {similarity}")
        else:
            queries = held_out_queries(x, conf.eval_queries, conf.seed)
            params = {"index_kind": "ivf", "factory": production["factory"], "nlist": production["nlist"],
                      "nprobe": production["nprobe"], "train_size": production["train_size"],
                      "trained_at": production["trained_at"], "cell_similarity": production["cell_similarity"],
                      "train_s": 0.0, "add_s": add_s, "refresh_cell_similarity": similarity,
                      "quantizer_from": f"{name}/{current.version}"}
            faiss.extract_index_ivf(index).nprobe = production["nprobe"]
    if plan.mode == "full":
        build, queries = build_index(x, conf)
        index = build.index
        params = {"index_kind": build.kind, **{k: v for k, v in build.params().items() if k != "kind"}}
    build_s = round(time.perf_counter() - t0, 2)
    figures = measure(index, x, queries)
    loaded = LoadedIndex(kind, "candidate", index, corpus.ids, corpus.videos, {})
    roundtrip = token_roundtrip(lake, corpus, loaded.search, conf.roundtrip_k)
    checks = apply_gate(conf.gates[kind], figures, roundtrip)
    passed = all(c["passed"] for c in checks.values())
    meta = {"kind": kind, "encoder_id": corpus.encoder_id, "dim": int(x.shape[1]), "vectors": len(corpus.ids),
            "videos": len(set(corpus.videos)), "input_versions": versions, "input_fingerprint": fp,
            "settings_key": key, "ivf_codes": conf.ivf_codes, "mode": plan.mode, "plan_reason": plan.reason,
            **params, "build_s": build_s, "index_bytes": index_bytes(index), "figures": figures,
            "token_roundtrip": roundtrip, "gate": checks,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    run_params = {"kind": kind, "encoder_id": corpus.encoder_id, "vectors": len(corpus.ids), "dim": x.shape[1],
                  "mode": plan.mode, "plan_reason": plan.reason, "settings_key": key, "input_fingerprint": fp,
                  "tokenizer_id": roundtrip.get("tokenizer_id"), "tokens_version": roundtrip.get("tokens_version"),
                  **{k: params.get(k) for k in ("index_kind", "factory", "nlist", "nprobe", "train_size")},
                  **{f"index.{k}": v for k, v in conf.model_dump().items() if k != "gates"},
                  **{f"gate.{k}": v for k, v in conf.gates[kind].model_dump().items()}}
    with job_run(lake.ctx, experiment="index_refresh", params=run_params, inputs=versions) as run:
        run.metrics({k: v for k, v in figures.items() if isinstance(v, int | float)})
        run.metrics({"build_s": build_s, "train_s": params.get("train_s"), "add_s": params.get("add_s"),
                     "index_bytes": meta["index_bytes"], "peak_rss_mb": meta["peak_rss_mb"],
                     "gate_passed": float(passed)})
        if roundtrip["computed"]:
            run.metrics({"token_roundtrip_own_video_top_k": roundtrip["own_video_in_top_k"],
                         "token_roundtrip_own_entry_top_k": roundtrip["own_entry_in_top_k"],
                         "token_roundtrip_queries": roundtrip["queries"]})
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "index"
            _write_files(folder, index, corpus, meta)
            mlflow.log_artifacts(str(folder), "index")
        number = str(reg.register(
            run.run_id, "index", passed=passed,
            tags={"input_fingerprint": fp, "settings_key": key, "encoder_id": corpus.encoder_id, "mode": plan.mode,
                  **{f"input.{t}.version": str(v) for t, v in versions.items()}},
            description=f"{kind} index {params.get('factory')}, recall@10 {figures['recall_at_10']}").version)
        previous = None if current is None else str(current.version)
        summary = {"kind": kind, "model": name, "version": number, "status": "built", "gate_passed": passed,
                   "gate_failures": [k for k, c in checks.items() if not c["passed"]],
                   "production": number if passed else previous, "previous_production": previous,
                   "mlflow_run_id": run.run_id, **{k: v for k, v in meta.items() if k != "token_roundtrip"},
                   "token_roundtrip": {k: v for k, v in roundtrip.items() if k != "misses"}}
        try:
            summary["pruned_versions"] = prune(lake.ctx, kind)
        except Exception as e:  # the build stands; old files wait for the next night's prune
            summary["prune_error"] = f"{type(e).__name__}: {e}"
            warnings.warn(f"{name}: pruning old index versions failed: {summary['prune_error']}", stacklevel=1)
        run.summary(summary)
    return summary

