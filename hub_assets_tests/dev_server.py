"""`hub-assets dev` (UI, daemon, sensor) as a child of a test: on a port of its own, its output
in a file (a pipe nobody drains would block it once Dagster's logs fill the pipe)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub_assets_tests.polling import wait_until
from hub_assets_tests.ports import PortTaken, free_port, listened_by_descendant, start_on_free_port

CLI = [sys.executable, "-m", "hub_assets.cli"]
UI_START_TIMEOUT_S = 120
STOP_TIMEOUT_S = 60


@dataclass
class DevServer:
    process: subprocess.Popen[bytes]
    port: int
    api_port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> int:
        """SIGTERM to its process group, as Ctrl-C would; its exit code."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
        return self.process.wait(STOP_TIMEOUT_S)


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def cli_status(env: dict[str, str]) -> list[dict[str, Any]]:
    """`hub-assets status --json` in `env`; [] while the catalog cannot answer."""
    done = subprocess.run([*CLI, "status", "--json"], env=env, capture_output=True, text=True, timeout=60)
    return json.loads(done.stdout) if done.returncode == 0 else []


def start_dev(env: dict[str, str], log: Path, timeout_s: float = UI_START_TIMEOUT_S) -> DevServer:
    """`hub-assets dev` in `env`, returned once its own UI answers; on another port when another
    process took the chosen one first."""

    def start(port: int) -> DevServer:
        api_port = free_port()
        with log.open("wb") as out:
            command = [*CLI, "dev", "--port", str(port), "--api-port", str(api_port)]
            process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        dev = DevServer(process, port, api_port, log)

        def started_or_not() -> str | None:
            if process.poll() is not None:
                return "exited"
            # The webserver logs this and stops, while the rest of `dagster dev` runs on.
            if "address already in use" in dev.output():
                return "port taken"
            if answers(f"{dev.url}/server_info") and listened_by_descendant(port, process.pid):
                return "up"
            return None

        try:
            outcome = wait_until(started_or_not, timeout_s, 0.5, what=f"the Dagster UI of hub-assets dev (log: {log})")
        except AssertionError:
            dev.stop()
            raise
        if outcome == "up":
            return dev
        dev.stop()
        if outcome == "port taken":
            raise PortTaken(port)
        raise AssertionError(f"hub-assets dev exited with {process.returncode}:\n{dev.output()[-3000:]}")

    return start_on_free_port(start)
