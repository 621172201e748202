from __future__ import annotations

from pathlib import Path

import pytest

from adlake.config import ConfigError, load_settings


def test_base_plus_overlay_plus_env(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = load_settings()
    assert s.env == "test"
    assert s.spark.master == "local[2]"  # from conf/test.yaml
    assert s.spark.conf["spark.sql.parquet.outputTimestampType"] == "TIMESTAMP_MICROS"  # kept from base.yaml
    assert s.lake.uri == str(home.resolve() / "lake")
    monkeypatch.setenv("ADLAKE__SPARK__MASTER", "spark://elsewhere:7077")
    monkeypatch.setenv("ADLAKE__LAKE__MERGE_BATCH_ROWS", "77")
    s2 = load_settings()
    assert s2.spark.master == "spark://elsewhere:7077"
    assert s2.lake.merge_batch_rows == 77
    assert s2.spark.conf == s.spark.conf  # a single-key override leaves its siblings alone


def test_fingerprint_is_stable_and_sensitive(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = load_settings().fingerprint(), load_settings().fingerprint()
    assert a == b and len(a) == 16
    monkeypatch.setenv("ADLAKE__RAY__NUM_CPUS", "1")
    assert load_settings().fingerprint() != a


def test_secrets_stay_out_of_the_fingerprint(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADLAKE__LAKE__STORAGE_OPTIONS", '{"AWS_SECRET_ACCESS_KEY": "s3cr3t-one"}')
    first = load_settings()
    monkeypatch.setenv("ADLAKE__LAKE__STORAGE_OPTIONS", '{"AWS_SECRET_ACCESS_KEY": "s3cr3t-two"}')
    second = load_settings()
    assert first.lake.storage_options["AWS_SECRET_ACCESS_KEY"] == "s3cr3t-one"
    assert first.fingerprint() == second.fingerprint()
    assert "s3cr3t" not in str(first.public_dict())


def test_cluster_example_needs_its_secrets_from_the_environment(home: Path, monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Path) -> None:
    conf = Path(__file__).resolve().parents[1] / "conf"
    (tmp_path / "conf").mkdir()
    for name in ("base", "local"):
        (tmp_path / "conf" / f"{name}.yaml").write_text((conf / f"{name}.yaml").read_text())
    (tmp_path / "conf" / "cluster.yaml").write_text((conf / "cluster.example.yaml").read_text())
    monkeypatch.setenv("ADLAKE_CONF_DIR", str(tmp_path / "conf"))
    monkeypatch.setenv("ADLAKE_ENV", "cluster")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    with pytest.raises(ConfigError, match="AWS_ACCESS_KEY_ID"):
        load_settings()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "id")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    s = load_settings()
    assert s.lake.uri == "s3://adlake-prod/lake"
    assert s.ray.address == "ray-head:6379"
    assert s.spark.master == "spark://spark-master:7077"
    assert s.lake.storage_options["AWS_REGION"] == "us-east-1"


def test_the_local_cluster_profile_has_the_shape_of_the_template() -> None:
    """conf/cluster.local.yaml (make cluster-up) and the real-cluster template differ only in values."""
    import yaml

    conf = Path(__file__).resolve().parents[1] / "conf"

    def leaves(d: dict, prefix: str = "") -> set[str]:
        out = set()
        for k, v in d.items():
            out |= leaves(v, f"{prefix}{k}.") if isinstance(v, dict) and k != "storage_options" else {prefix + k}
        return out
    local = yaml.safe_load((conf / "cluster.local.yaml").read_text())
    example = yaml.safe_load((conf / "cluster.example.yaml").read_text())
    assert leaves(local) <= leaves(example)
    for section in ("lake", "media"):  # the same storage options, endpoints aside
        assert set(local[section]["storage_options"]) - {"AWS_ENDPOINT_URL", "AWS_ALLOW_HTTP", "endpoint_url"} == \
            set(example[section]["storage_options"])


def test_unknown_keys_are_rejected(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADLAKE__SPARK__MASTERR", "typo")
    with pytest.raises(ValueError, match="masterr"):
        load_settings()


def test_missing_overlay_is_an_error(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADLAKE_ENV", "nope")
    with pytest.raises(ConfigError, match="nope.yaml"):
        load_settings()


def test_the_service_profile_extends_the_embedded_default_and_derives_the_mlflow_server(
        home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADLAKE_ENV", "local")
    local = load_settings()
    monkeypatch.setenv("ADLAKE_ENV", "service")
    s = load_settings()
    assert s.service.manage and not local.service.manage
    assert s.tokenizer.gates == local.tokenizer.gates and s.spark.conf == local.spark.conf  # from local.yaml
    assert s.mlflow.tracking_uri == f"http://127.0.0.1:{s.service.mlflow_port}" and s.mlflow.artifact_root is None
    assert local.mlflow.tracking_uri.startswith("sqlite:///")
    monkeypatch.setenv("ADLAKE__SERVICE__MLFLOW_PORT", "5999")
    assert load_settings().mlflow.tracking_uri == "http://127.0.0.1:5999"


def test_an_overlay_that_extends_itself_is_refused(home: Path, monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "base.yaml").write_text((Path(__file__).parents[1] / "conf" / "base.yaml").read_text())
    (conf / "a.yaml").write_text("extends: b\n")
    (conf / "b.yaml").write_text("extends: a\n")
    monkeypatch.setenv("ADLAKE_CONF_DIR", str(conf))
    monkeypatch.setenv("ADLAKE_ENV", "a")
    with pytest.raises(ConfigError, match="cycle"):
        load_settings()


def test_service_passwords_stay_out_of_the_fingerprint(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADLAKE__SERVICE__POSTGRES__PASSWORD", "pg-s3cr3t-one")
    first = load_settings()
    monkeypatch.setenv("ADLAKE__SERVICE__POSTGRES__PASSWORD", "pg-s3cr3t-two")
    assert first.fingerprint() == load_settings().fingerprint()
    assert "s3cr3t" not in str(first.public_dict())
