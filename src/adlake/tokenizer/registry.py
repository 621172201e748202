"""Which tokenizer is in production: the MLflow registered model's ``production`` alias, per modality."""

from __future__ import annotations

from adlake.provenance import RunContext

MODEL_NAMES = {"video": "adlake-rqvae-video", "audio": "adlake-rqvae-audio"}
PRODUCTION = "production"


def production_version(ctx: RunContext, modality: str) -> str | None:
    """The registered version the ``production`` alias points at, or None when there is none yet."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from adlake.tracking import configure

    configure(ctx)
    try:
        return MlflowClient().get_model_version_by_alias(MODEL_NAMES[modality], PRODUCTION).version
    except MlflowException:
        return None
