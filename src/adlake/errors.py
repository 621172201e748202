"""Errors that carry a stable, machine-readable class: what ``ops.quarantine`` records for a bad input."""

from __future__ import annotations


class ClassifiedError(Exception):
    def __init__(self, error_class: str, message: str):
        super().__init__(message)
        self.error_class = error_class
