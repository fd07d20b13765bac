"""The processes of a scaled-out hub, as children of a test: a Redis broker of the test's own
(restartable, its queue kept on disk across a restart) and `hub-assets worker`s, each with a home
of its own as on a machine of its own. A command `prefix` (e.g. `ip netns exec NS`) runs a worker
elsewhere on the network."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from hub_assets_tests.dev_server import CLI
from hub_assets_tests.polling import wait_until
from hub_assets_tests.ports import PortTaken, start_on_free_port

START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 60
_FINISHED_RUN = re.compile(r"\] (\S+) run (\S+) (succeeded|failed) in ([\d.]+) s$", re.MULTILINE)


def redis_server() -> str:
    """The redis-server binary; the test is skipped, saying why, on a machine without one."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("no redis-server on PATH (apt-get install redis-server): worker tests need a broker of their own")
    return binary


@dataclass
class RedisBroker:
    """A redis-server on `host`:`port` whose queue survives a restart (append-only file, fsync per write)."""

    host: str
    port: int
    directory: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @classmethod
    def start(cls, directory: Path, host: str = "127.0.0.1") -> RedisBroker:
        directory.mkdir(parents=True, exist_ok=True)
        return start_on_free_port(lambda port: cls._start_on(directory, host, port))

    @classmethod
    def _start_on(cls, directory: Path, host: str, port: int) -> RedisBroker:
        log = directory / "redis.log"
        log.unlink(missing_ok=True)
        command = [redis_server(), "--port", str(port), "--bind", host, "--dir", str(directory), "--logfile", str(log)]
        command += ["--appendonly", "yes", "--appendfsync", "always", "--save", "", "--protected-mode", "no"]
        broker = cls(host, port, directory, subprocess.Popen(command, start_new_session=True))

        def up() -> str | None:
            if broker.process.poll() is not None:
                return "port taken" if "Address already in use" in log.read_text(errors="replace") else "exited"
            return "up" if broker.answers() else None

        outcome = wait_until(up, START_TIMEOUT_S, 0.05, what=f"redis-server on {host}:{port}")
        if outcome == "port taken":
            raise PortTaken(port)
        assert outcome == "up", f"redis-server exited with {broker.process.returncode}: {log.read_text()[-2000:]}"
        return broker

    def answers(self) -> bool:
        try:
            return bool(redis.Redis(host=self.host, port=self.port, socket_timeout=1).ping())
        except redis.RedisError:
            return False

    def queued(self, queue: str) -> int:
        """Messages waiting in `queue` (kombu keeps one Redis list per queue and priority)."""
        client = redis.Redis(host=self.host, port=self.port)
        return sum(int(client.llen(key)) for key in client.scan_iter(f"{queue}*") if client.type(key) == b"list")

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        self.process.wait(STOP_TIMEOUT_S)

    def restart(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Stopped (SIGTERM: a clean restart; SIGKILL: a crash) and started again on the same port and files."""
        self.stop(sig)
        restarted = self._start_on(self.directory, self.host, self.port)
        self.process = restarted.process


@dataclass
class Worker:
    """A `hub-assets worker` in a session of its own; its node name is what it tags runs with."""

    process: subprocess.Popen[bytes]
    log: Path

    @property
    def name(self) -> str:
        return f"hub-{self.process.pid}@{socket.gethostname()}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def finished_runs(self) -> list[tuple[str, str, str, float]]:
        """(partition, run id, succeeded|failed, seconds) of each line the worker logged for a run."""
        return [(p, r, outcome, float(s)) for p, r, outcome, s in _FINISHED_RUN.findall(self.output())]

    def kill(self) -> None:
        """SIGKILL to the worker and its pool processes at once, as when its machine dies."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(STOP_TIMEOUT_S)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()


def start_worker(env: dict[str, str], log: Path, concurrency: int = 1, prefix: tuple[str, ...] = ()) -> Worker:
    """`hub-assets worker` in `env`, returned once it consumes from the broker."""
    with log.open("wb") as out:
        command = [*prefix, *CLI, "worker", "--concurrency", str(concurrency)]
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    worker = Worker(process, log)

    def ready() -> bool:
        assert process.poll() is None, f"hub-assets worker exited with {process.returncode}:\n{worker.output()[-3000:]}"
        return " ready." in worker.output()

    try:
        wait_until(ready, START_TIMEOUT_S, 0.1, what=f"hub-assets worker to be ready (log: {log})")
    except AssertionError:
        worker.stop()
        raise
    return worker


@dataclass
class Forward:
    """socat relaying `address`:`port` to a loopback service, so that a process in another network
    namespace reaches it over the network (the service itself stays on loopback)."""

    address: str
    port: int
    process: subprocess.Popen[bytes]

    @classmethod
    def start(cls, address: str, target_port: int) -> Forward:
        socat = shutil.which("socat")
        if socat is None:
            pytest.skip("no socat on PATH (apt-get install socat): needed to reach loopback services from a namespace")

        def start_on(port: int) -> Forward:
            listen = f"TCP-LISTEN:{port},bind={address},fork,reuseaddr"
            process = subprocess.Popen([socat, listen, f"TCP:127.0.0.1:{target_port}"], stderr=subprocess.PIPE)

            def listening() -> str | None:
                if process.poll() is not None:
                    return "port taken"
                with socket.socket() as probe:
                    return "up" if probe.connect_ex((address, port)) == 0 else None

            if wait_until(listening, START_TIMEOUT_S, 0.05, what=f"socat on {address}:{port}") != "up":
                raise PortTaken(port)
            return cls(address, port, process)

        return start_on_free_port(start_on)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(STOP_TIMEOUT_S)


def remote_addresses(pid: int) -> set[str]:
    """IPv4 addresses the established TCP connections of `pid`'s network namespace lead to."""
    addresses = set()
    with open(f"/proc/{pid}/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            if fields[3] == "01":  # ESTABLISHED
                raw = fields[2].split(":")[0]
                addresses.add(socket.inet_ntoa(bytes.fromhex(raw)[::-1]))
    return addresses
