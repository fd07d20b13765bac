"""`hub-assets dev` end to end: embedded PostgreSQL, the UI, the daemon and the sensor."""

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from hub_assets_tests.conftest import FIXTURES_DIR, free_port
from hub_assets_tests.polling import wait_until

CLI = [sys.executable, "-m", "hub_assets.cli"]


def _live_processes_mentioning(text: str) -> list[int]:
    """Processes (zombies excepted) whose command line or environment mentions `text`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if (entry / "stat").read_text().split(") ", 1)[1].startswith("Z"):
                continue
            blob = (entry / "cmdline").read_bytes() + (entry / "environ").read_bytes()
        except OSError:
            continue
        if text.encode() in blob:
            found.append(int(entry.name))
    return found


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _status(env: dict[str, str]) -> list[dict]:
    done = subprocess.run([*CLI, "status", "--json"], env=env, capture_output=True, text=True, timeout=60)
    return json.loads(done.stdout) if done.returncode == 0 else []


def test_dev_indexes_a_push_through_the_sensor_and_stops_cleanly(tmp_path: Path) -> None:
    home = tmp_path / "hub"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "DAGSTER_", "AWS_"))}
    env["HUB_HOME"] = str(home)
    port = free_port()
    dev = subprocess.Popen(
        [*CLI, "dev", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        first_line = dev.stdout.readline() if dev.stdout else ""
        assert f"http://127.0.0.1:{port}" in first_line
        wait_until(lambda: _answers(f"http://127.0.0.1:{port}/server_info"), 90, 0.5, what="the Dagster UI")
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
            return any(b["bundle_key"] == key and b["status"] == "indexed" for b in _status(env))

        wait_until(indexed, 120, 1.0, what="the sensor-triggered run to index the push")
    finally:
        os.killpg(dev.pid, signal.SIGTERM)
        dev.wait(60)
    assert dev.returncode == 0
    wait_until(lambda: not _live_processes_mentioning(str(home)), 30, 0.5, what="every process of dev to exit")
    assert (home / "postgres").is_dir(), "the embedded database's data stays for the next start"
