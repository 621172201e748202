"""The service stack on this machine (``adlake up|down|status``): Postgres, Airflow, an MLflow server."""

from adlake.service.stack import AIRFLOW_COMPONENTS, Stack, StackError

__all__ = ["AIRFLOW_COMPONENTS", "Stack", "StackError"]
