"""A PostgreSQL server of one's own, on a free loopback port, for what must not touch the shared one:
restarting the server under a running client, or counting every statement a run sends
(pg_stat_statements needs to be preloaded at server start). Tests and benchmarks use it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import psycopg

# initdb and pg_ctl refuse to run as root: as root, the server runs as this user instead.
_SERVER_USER = "postgres"
_START_TIMEOUT_S = 60


def find_bin_dir() -> Path | None:
    """The newest PostgreSQL server binaries on this machine (Debian layout first, then PATH)."""
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parent.parent.name))
    if debian:
        return debian[-1].parent
    found = shutil.which("pg_ctl")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class PrivatePostgres:
    bin_dir: Path
    data_dir: Path
    port: int

    @property
    def admin_url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def statements_counted(self) -> bool:
        return (self.bin_dir.parent / "lib" / "pg_stat_statements.so").exists()

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", _SERVER_USER, "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *command], check=True, capture_output=True)

    def init(self) -> None:
        self._run(
            str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-U", "postgres", "--auth=trust", "-E", "UTF8"
        )
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.data_dir}'",
            "max_connections": "200",
        }
        if self.statements_counted:
            settings |= {"shared_preload_libraries": "'pg_stat_statements'", "pg_stat_statements.track": "all"}
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{name} = {value}\n" for name, value in settings.items())

    def start(self) -> None:
        log = self.data_dir / "server.log"
        self._run(
            str(self.bin_dir / "pg_ctl"),
            "-D",
            str(self.data_dir),
            "-l",
            str(log),
            "-w",
            "-t",
            str(_START_TIMEOUT_S),
            "start",
        )
        if self.statements_counted:
            with psycopg.connect(self.conninfo("postgres"), autocommit=True) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")

    def stop(self) -> None:
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop")

    def restart(self) -> None:
        """A fast restart: every session is terminated, the server comes back on the same port."""
        self.stop()
        self.start()

    def conninfo(self, database: str) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={database}"


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A fresh server in a temp directory, stopped and removed afterwards. Raises LookupError when
    this machine has no PostgreSQL server binaries."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise LookupError("no PostgreSQL server binaries (pg_ctl) on this machine")
    shm = Path("/dev/shm")
    with tempfile.TemporaryDirectory(prefix="hub-pg-", dir=shm if os.access(shm, os.W_OK) else None) as root:
        data_dir = Path(root) / "data"
        data_dir.mkdir()
        if os.geteuid() == 0:
            shutil.chown(root, _SERVER_USER)
            shutil.chown(data_dir, _SERVER_USER)
        server = PrivatePostgres(bin_dir, data_dir, _free_port())
        server.init()
        server.start()
        try:
            yield server
        finally:
            with suppress(subprocess.CalledProcessError):  # already stopped
                server.stop()
