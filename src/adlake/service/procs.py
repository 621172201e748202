"""Long-running processes of the service stack: started detached with a pid file, stopped by process group.

Every process the stack starts carries ``ADLAKE_SERVICE_HOME=<home>`` in its environment, and so does
everything it forks (task processes, Spark JVMs, Ray workers): :func:`leftovers` finds them by it, so that
``down`` can prove that nothing is left behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

MARKER = "ADLAKE_SERVICE_HOME"


def http_get(url: str, timeout: float) -> httpx.Response | None:
    """``httpx.get``, or None when the server does not answer (a health probe)."""
    try:
        return httpx.get(url, timeout=timeout)
    except httpx.HTTPError:
        return None


def _start_time(pid: int) -> str | None:
    """The kernel's start time of a process (field 22 of /proc/<pid>/stat): tells a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] == "Z" else fields[19]


@dataclass(frozen=True)
class Proc:
    """One managed process: its pid file and log under the stack's state folder."""

    name: str
    pid_file: Path
    log_file: Path

    def pid(self) -> int | None:
        """The pid when the process recorded in the pid file still runs, else None."""
        try:
            pid_s, started = self.pid_file.read_text().split()
            pid = int(pid_s)
        except (OSError, ValueError):
            return None
        return pid if _start_time(pid) == started else None

    def start(self, argv: list[str], env: dict[str, str], cwd: Path | None = None) -> int:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            log.write(f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%S')} start: {' '.join(argv)}\n".encode())
            log.flush()
            proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        started = _start_time(proc.pid)
        self.pid_file.write_text(f"{proc.pid} {started}\n")
        return proc.pid

    def logged_since_start(self, text: str) -> bool:
        """Whether the log holds ``text`` after the line of the latest start."""
        try:
            log = self.log_file.read_bytes()
        except FileNotFoundError:
            return False
        return text.encode() in log[log.rfind(b"\n--- "):]

    def stop(self, timeout_s: float) -> bool:
        """SIGTERM to the process group, SIGKILL after ``timeout_s``; True when something was running."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and _group_alive(pid):
            time.sleep(0.2)
        if _group_alive(pid):
            _signal_group(pid, signal.SIGKILL)
            time.sleep(0.5)
        _reap(pid)
        self.pid_file.unlink(missing_ok=True)
        return True

    def kill(self) -> None:
        """SIGKILL the whole group at once (tests: a crashed scheduler)."""
        pid = self.pid()
        if pid is not None:
            _signal_group(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and _group_alive(pid):
                time.sleep(0.1)
            _reap(pid)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)  # started with start_new_session: the pid is the group id
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, sig)


def _group_alive(pgid: int) -> bool:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == pgid and _start_time(int(entry.name)) is not None:
                    return True
            except (ProcessLookupError, PermissionError):
                continue
    return False


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)  # our own child (tests start and stop in one process)
    except ChildProcessError:
        pass


def leftovers(home: Path, marker: str = MARKER) -> list[dict[str, object]]:
    """Live processes carrying this stack's marker, whoever their parent is."""
    wanted = f"{marker}={home}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if wanted in (entry / "environ").read_bytes().split(b"\0") and _start_time(int(entry.name)):
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
                found.append({"pid": int(entry.name), "cmd": cmd[:200]})
        except OSError:
            continue
    return found


def kill_leftovers(home: Path, timeout_s: float = 10.0, marker: str = MARKER) -> list[dict[str, object]]:
    """SIGTERM, then SIGKILL, every process still carrying the marker; what was found."""
    found = leftovers(home, marker)
    for p in found:
        try:
            os.kill(int(p["pid"]), signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and leftovers(home, marker):
        time.sleep(0.2)
    for p in leftovers(home, marker):
        try:
            os.kill(int(p["pid"]), signal.SIGKILL)
        except ProcessLookupError:
            pass
    return found
