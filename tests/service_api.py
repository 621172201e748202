"""A small client of the service stack's Airflow REST API v2 for tests and scripts (token from /auth/token)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx


class AirflowApi:
    def __init__(self, url: str, username: str, password: str):
        self.url, self.username, self.password = url.rstrip("/"), username, password
        self._token: str | None = None

    def _headers(self) -> dict[str, str]:
        if self._token is None:
            r = httpx.post(f"{self.url}/auth/token", json={"username": self.username, "password": self.password},
                           timeout=30)
            r.raise_for_status()
            self._token = r.json()["access_token"]
        return {"Authorization": f"Bearer {self._token}"}

    def request(self, method: str, path: str, **kw: Any) -> Any:
        for attempt in range(2):
            r = httpx.request(method, f"{self.url}/api/v2{path}", headers=self._headers(), timeout=30, **kw)
            if r.status_code == 401 and attempt == 0:
                self._token = None  # expired: get another
                continue
            r.raise_for_status()
            return r.json()
        raise AssertionError("unreachable")

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        return self.request("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf or {}})[
            "dag_run_id"]

    def runs(self, dag_id: str = "~") -> list[dict[str, Any]]:
        return self.request("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 100})["dag_runs"]

    def task_instances(self, dag_id: str = "~", run_id: str = "~") -> list[dict[str, Any]]:
        out, offset = [], 0
        while True:
            page = self.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances",
                                params={"limit": 100, "offset": offset})
            out += page["task_instances"]
            offset += len(page["task_instances"])
            if not page["task_instances"] or offset >= page["total_entries"]:
                return out

    def tries(self, dag_id: str, run_id: str, task_id: str) -> list[dict[str, Any]]:
        return self.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/tries")[
            "task_instances"]


def wait_for(what: str, check: Callable[[], Any], timeout_s: float, every_s: float = 5.0,
             progress: Callable[[], str] | None = None) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout_s`` naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}"
                                 + (f"; now: {progress()}" if progress else ""))
        time.sleep(every_s)
