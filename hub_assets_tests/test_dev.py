"""`hub-assets dev` end to end: embedded PostgreSQL, the UI, the daemon and the sensor."""

import json
import os
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import msgpack
import pytest

from hub_assets_tests import ports as port_module
from hub_assets_tests.conftest import FIXTURES_DIR
from hub_assets_tests.dev_server import CLI, cli_status, start_dev
from hub_assets_tests.polling import wait_until
from hub_assets_tests.ports import free_port, listened_by_descendant

# Slow for now: with its first start refused on a taken port, about 50 s of a default run that
# must stay under 10 minutes.
pytestmark = pytest.mark.slow


def _live_processes_mentioning(text: str) -> list[str]:
    """Processes (zombies excepted) whose command line or environment mentions `text`: pid and
    command line of each, so a failure says which process outlived dev."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if (entry / "stat").read_text().split(") ", 1)[1].startswith("Z"):
                continue
            command = (entry / "cmdline").read_bytes()
            blob = command + (entry / "environ").read_bytes()
        except OSError:
            continue
        if text.encode() in blob:
            words = command.replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{entry.name}: {words[:200]}")
    return found


class _Stranger(BaseHTTPRequestHandler):
    """Another process's server: it answers every GET, /server_info included."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def stranger_on_the_next_free_port(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """A server of someone else's listening on the port `free_port` hands out next, as when
    another process binds a port between the test choosing it and its server binding it."""
    stranger = HTTPServer(("127.0.0.1", 0), _Stranger)
    ports = iter([stranger.server_port])
    monkeypatch.setattr(port_module, "free_port", lambda: next(ports, None) or free_port())
    thread = threading.Thread(target=stranger.serve_forever, daemon=True)
    thread.start()
    try:
        yield stranger.server_port
    finally:
        stranger.shutdown()
        stranger.server_close()


def _refs(url: str) -> tuple[int, dict] | None:
    """(status, msgpack body) of a GET, None while nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, msgpack.unpackb(response.read())
    except urllib.error.HTTPError as error:
        return error.code, msgpack.unpackb(error.read())
    except OSError:
        return None


def test_dev_indexes_a_push_through_the_sensor_and_stops_cleanly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "hub"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "DAGSTER_", "AWS_"))}
    env["HUB_HOME"] = str(home)
    with stranger_on_the_next_free_port(monkeypatch) as taken:
        dev = start_dev(env, tmp_path / "dev.log")
    try:
        assert dev.port != taken and listened_by_descendant(dev.port, dev.process.pid), "started on a port of its own"
        assert f"hub-assets dev: Dagster UI at {dev.url}" in dev.output().splitlines()[0]
        api = f"http://127.0.0.1:{dev.api_port}"
        assert f"hub-assets dev: hub API at {api}" in dev.output()
        refs = wait_until(lambda: _refs(f"{api}/nobody/nothing/refs"), 60, 0.5, what="the hub API of dev")
        assert refs == (404, {"ok": False, "message": "repo nobody/nothing not found", "detail": refs[1]["detail"]})
        pushed = subprocess.run(
            [*CLI, "push", str(FIXTURES_DIR / "muse-merge.bundle"), "--repo", "dev-test", "--branch", "main", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert pushed.returncode == 0, pushed.stderr
        key = json.loads(pushed.stdout)["bundle_key"]

        def indexed() -> bool:
            return any(b["bundle_key"] == key and b["status"] == "indexed" for b in cli_status(env))

        wait_until(indexed, 120, 1.0, what="the sensor-triggered run to index the push")
    finally:
        returncode = dev.stop()
    assert returncode == 0
    try:
        wait_until(lambda: not _live_processes_mentioning(str(home)), 30, 0.5, what="every process of dev to exit")
    except AssertionError as error:
        still = _live_processes_mentioning(str(home))
        raise AssertionError(f"{error}; still running: {still}; dev's log ends:\n{dev.output()[-3000:]}") from None
    assert (home / "postgres").is_dir(), "the embedded database's data stays for the next start"
