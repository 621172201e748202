"""adlake's errors: one base class, and the few kinds that orchestration treats differently.

- :class:`ClassifiedError` carries a stable, machine-readable class: what ``ops.quarantine`` records for a
  bad input.
- :class:`NothingToDo` means a run found no work (no manifest landed, nothing new to embed, no production
  tokenizer yet): under Airflow the task is *skipped* with the reason, so it emits no Asset event.
- :class:`GateFailed` is a quality gate's verdict (tokenizer or index): the task fails at once, without
  retry, and production stays where it was.
- :class:`ServiceUnavailable` is an outage of a service adlake depends on (the MLflow tracking server):
  an error to retry, never "nothing there yet".

Anything else is a transient or unexpected error that Airflow retries.
"""

from __future__ import annotations


class AdlakeError(Exception):
    """The base of every error adlake raises on purpose."""


class ClassifiedError(AdlakeError):
    def __init__(self, error_class: str, message: str):
        super().__init__(message)
        self.error_class = error_class


class NothingToDo(AdlakeError):
    """The run has no work; the message says why. Orchestration skips the task."""


class GateFailed(AdlakeError):
    """A quality gate refused a model or an index; production is unchanged. Never retried."""


class ServiceUnavailable(AdlakeError):
    """A service adlake needs did not answer (or answered with a server error). Retried."""
