"""The stack's Postgres: a cluster initialised under ``<home>/service/postgres``, listening on loopback only.

Debian's server binaries (``postgresql``) refuse to run as root, so as root they run as the ``postgres``
user, which then must be able to reach the data folder (every parent folder searchable by others).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from adlake.config import Settings
from adlake.errors import ServiceUnavailable


class PostgresError(ServiceUnavailable):
    pass


def bin_dir(settings: Settings) -> Path:
    configured = settings.service.postgres.bin_dir
    if configured:
        return Path(configured)
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if not found:
        raise PostgresError("no Postgres server found under /usr/lib/postgresql (make up installs Debian's "
                            "`postgresql`; or set service.postgres.bin_dir)")
    return found[-1].parent


class Postgres:
    def __init__(self, settings: Settings, root: Path, password: str, env: dict[str, str]):
        self.settings, self.conf = settings, settings.service.postgres
        self.root, self.data, self.socket_dir = root, root / "data", root / "socket"
        self.log = root.parent / "logs" / "postgres.log"
        self.password, self.env = password, env
        self.as_root = os.geteuid() == 0

    # -- running the server's tools -----------------------------------------------------------------
    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        argv = [str(bin_dir(self.settings) / tool), *args]
        if self.as_root:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        res = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=120, cwd="/")
        if check and res.returncode:
            raise PostgresError(f"{tool} {' '.join(args)} exited {res.returncode}: {res.stderr.strip()[-1500:]}")
        return res

    def _own(self, *paths: Path) -> None:
        if self.as_root:
            for p in paths:
                shutil.chown(p, "postgres", "postgres")

    def _check_reachable(self) -> None:
        if not self.as_root:
            return
        for parent in [self.root, *self.root.parents]:
            if parent.exists() and not parent.stat().st_mode & 0o001:
                raise PostgresError(f"Postgres runs as the `postgres` user, which cannot enter {parent} (mode "
                                    f"{oct(parent.stat().st_mode & 0o777)}): put ADLAKE_HOME under a folder others "
                                    "may search, e.g. `chmod o+x` it")

    # -- lifecycle ------------------------------------------------------------------------------------
    def initialised(self) -> bool:
        return (self.data / "PG_VERSION").exists()

    def init(self) -> None:
        """initdb once: the configured user as superuser, scram passwords over TCP, the socket kept private."""
        if self.initialised():
            return
        self._check_reachable()
        for p in (self.root, self.socket_dir, self.log.parent):
            p.mkdir(parents=True, exist_ok=True)
        self.log.touch()
        pwfile = self.root / ".pwfile"
        pwfile.write_text(self.password + "\n")
        pwfile.chmod(0o600)
        self._own(self.root, self.socket_dir, self.log, pwfile)
        try:
            self._run("initdb", "-D", str(self.data), "-U", self.conf.user, f"--pwfile={pwfile}", "-E", "UTF8",
                      "--auth-host=scram-sha-256", "--auth-local=peer" if self.as_root else "--auth-local=trust")
        finally:
            pwfile.unlink(missing_ok=True)

    def running(self) -> bool:
        res = self._run("pg_ctl", "-D", str(self.data), "status", check=False)
        return res.returncode == 0

    def start(self, timeout_s: float) -> None:
        if self.running():
            return
        opts = (f"-p {self.conf.port} -c listen_addresses={self.settings.service.host} "
                f"-c unix_socket_directories={self.socket_dir}")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", opts, "-w", "-t",
                  str(int(timeout_s)), "start")

    def stop(self, timeout_s: float) -> bool:
        if not self.initialised() or not self.running():
            return False
        res = self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", str(int(timeout_s)), "stop",
                        check=False)
        if res.returncode:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)
        return True

    # -- databases ------------------------------------------------------------------------------------
    def url(self, database: str, driver: str = "postgresql+psycopg2") -> str:
        from urllib.parse import quote

        return (f"{driver}://{quote(self.conf.user, safe='')}:{quote(self.password, safe='')}@"
                f"{self.settings.service.host}:{self.conf.port}/{database}")

    def connect(self, database: str = "postgres"):
        import psycopg2

        return psycopg2.connect(host=self.settings.service.host, port=self.conf.port, user=self.conf.user,
                                password=self.password, dbname=database, connect_timeout=5)

    def healthy(self) -> bool:
        try:
            with self.connect() as conn, conn.cursor() as cur:
                cur.execute("SELECT 1")
                return cur.fetchone() == (1,)
        except Exception:  # noqa: BLE001 - any failure to answer is "not healthy"
            return False

    def ensure_database(self, name: str) -> bool:
        """Create the database unless it exists; True when it was created."""
        conn = self.connect()
        try:
            conn.autocommit = True  # CREATE DATABASE cannot run in a transaction
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cur.fetchone():
                    return False
                cur.execute(f'CREATE DATABASE "{name}"')
                return True
        finally:
            conn.close()
