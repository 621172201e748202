"""A screenshot of a running stack's Airflow UI (`make screenshot`): headless Chromium (Debian's `chromium`),
logged in with the admin token, driven over the DevTools protocol.

    python -m bench.screenshot [--dag ads_features] [--out docs/airflow-grid.png] [--wait 12]

Reads the stack's address and login from the configuration (`ADLAKE_ENV=service` by default), like
`adlake status`.
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
from websockets.sync.client import connect


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DevTools:
    def __init__(self, ws_url: str):
        self.ws = connect(ws_url, max_size=64 * 1024 * 1024, legacy=True)
        self.ids = itertools.count(1)

    def call(self, method: str, **params) -> dict:
        msg_id = next(self.ids)
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            reply = json.loads(self.ws.recv(timeout=60))
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})


def screenshot(ui: str, token: str, path: str, out: Path, wait_s: float, size: tuple[int, int]) -> Path:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise SystemExit("headless Chromium is needed: apt-get install chromium")
    port = _free_port()
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.Popen([browser, "--headless=new", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
                                 f"--remote-debugging-port={port}", f"--window-size={size[0]},{size[1]}", "about:blank"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    pages = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=2).json()
                    page = next(p for p in pages if p.get("type") == "page")
                    break
                except (httpx.HTTPError, StopIteration):
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
            tools = DevTools(page["webSocketDebuggerUrl"])
            tools.call("Network.enable")
            tools.call("Network.setCookie", name="_token", value=token, url=ui, path="/")
            tools.call("Emulation.setDeviceMetricsOverride", width=size[0], height=size[1], deviceScaleFactor=1,
                       mobile=False)
            tools.call("Page.enable")
            tools.call("Page.navigate", url=f"{ui.rstrip('/')}{path}")
            time.sleep(wait_s)  # the UI renders from its own API calls after the load event
            data = tools.call("Page.captureScreenshot", format="png")["data"]
            tools.ws.close()
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(base64.b64decode(data))
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dag", default="ads_features", help="whose grid to show")
    p.add_argument("--path", help="any UI path instead, e.g. /assets")
    p.add_argument("--out", type=Path, default=Path("docs/airflow-grid.png"))
    p.add_argument("--wait", type=float, default=12.0, help="seconds for the UI to render")
    args = p.parse_args(argv)
    from adlake.config import get_settings
    from adlake.service import Stack

    stack = Stack(get_settings())
    path = args.path or f"/dags/{args.dag}"
    out = screenshot(stack.api_url, stack.token(), path, args.out, args.wait, (1600, 1000))
    print(f"{out} ({out.stat().st_size} bytes): {stack.api_url}{path}")


if __name__ == "__main__":
    main()
