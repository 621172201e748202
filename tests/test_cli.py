"""The adlake command line end to end: a DAG run through Airflow, the tables it leaves, a failing run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from adlake.serve import serving

ADLAKE = [sys.executable, "-m", "adlake.cli"]


def adlake(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "ADLAKE_HOME": str(home), "ADLAKE_ENV": "test"}
    res = subprocess.run([*ADLAKE, *args], env=env, capture_output=True, text=True, timeout=600)
    if check and res.returncode:
        raise AssertionError(f"adlake {' '.join(args)} exited {res.returncode}:\n{res.stdout}\n{res.stderr[-4000:]}")
    return res


def test_serve_exposes_a_folder_on_loopback(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("hello")
    with serving(tmp_path, port=0) as url:
        assert url.startswith("http://127.0.0.1:")
        assert httpx.get(f"{url}/a.txt").text == "hello"
        assert httpx.get(f"{url}/missing").status_code == 404


@pytest.mark.slow
@pytest.mark.airflow
def test_run_ads_ingest_lands_the_manifest_and_is_idempotent(corpus: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    gt = json.loads((corpus / "ground_truth.json").read_text())
    contract_breakers = sum(1 for t in gt["ads"].values()
                            if t["expected"].get("error_class") in {"missing_field", "bad_url", "duplicate_ad_id",
                                                                    "bad_value"})
    params = ["--param", f"manifest={corpus / 'manifest.parquet'}", "--param", "crawl_date=2026-11-01"]
    first = adlake(home, "run", "ads_ingest", *params, "--json")
    outcome = json.loads(first.stdout)
    assert outcome["ok"] and [t["state"] for t in outcome["tasks"]] == ["success"]
    summary = outcome["tasks"][0]["output"]
    assert summary["rows"] == gt["manifest_rows"]
    assert summary["landed"] + summary["quarantined"] == gt["manifest_rows"]
    assert summary["quarantined"] == contract_breakers

    tables = {t["table"]: t for t in json.loads(adlake(home, "tables", "--json").stdout)}
    assert tables["bronze.crawl_manifest"]["rows"] == gt["manifest_rows"] - contract_breakers
    assert tables["ops.quarantine"]["rows"] == contract_breakers

    adlake(home, "run", "ads_ingest", *params, "--json")
    again = {t["table"]: t for t in json.loads(adlake(home, "tables", "--json").stdout)}
    assert again["bronze.crawl_manifest"]["version"] == tables["bronze.crawl_manifest"]["version"]
    assert {k: v["rows"] for k, v in again.items()} == {k: v["rows"] for k, v in tables.items()}

    shown = json.loads(adlake(home, "show", "bronze.crawl_manifest", "--limit", "3", "--json").stdout)
    assert len(shown) == 3 and {"ad_id", "crawl_date", "url"} <= set(shown[0])
    old = json.loads(adlake(home, "show", "bronze.crawl_manifest", "--version", "0", "--json").stdout)
    assert old == []

    human = adlake(home, "tables").stdout
    assert "bronze.crawl_manifest" in human


@pytest.mark.slow
@pytest.mark.airflow
def test_a_failing_dag_run_exits_non_zero(tmp_path: Path) -> None:
    res = adlake(tmp_path / "home", "run", "ads_ingest", "--param", f"manifest={tmp_path / 'nope.parquet'}",
                 "--param", "crawl_date=2026-11-01", check=False)
    assert res.returncode != 0
    assert "failed" in res.stdout + res.stderr
