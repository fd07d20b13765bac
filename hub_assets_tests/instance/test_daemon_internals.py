"""Every Dagster internal that hub_assets/instance/daemon.py leans on, as it is in dagster 1.13. An
upgrade that moves one of them fails here, by name, and nowhere else; then re-read the module and
the source it mirrors (and whether a setting now does what it patches)."""

from __future__ import annotations

import inspect
import subprocess
import sys

import dagster
import dagster._daemon.sensor as sensor_daemon
from dagster._cli import dev as dagster_dev
from dagster._daemon.cli import cli as daemon_cli

from hub_assets.instance import daemon
from hub_assets.instance.daemon import MODULE, SENSOR_LOOP_S, with_this_daemon

HELP_TIMEOUT_S = 60


def test_versions_read_against() -> None:
    assert dagster.__version__ == "1.13.27"


def test_the_sensor_loop_sleeps_to_a_module_constant_read_at_every_loop() -> None:
    """Why the module exists (5 s whatever the sensors ask), and that a patched value is seen:
    the loop reads the module's global each time it sleeps."""
    source = inspect.getsource(sensor_daemon.execute_sensor_iteration_loop)
    assert "sleep_time = max(0, MIN_INTERVAL_LOOP_TIME - loop_duration)" in source
    assert "MIN_INTERVAL_LOOP_TIME" not in inspect.signature(sensor_daemon.execute_sensor_iteration_loop).parameters


def test_dagster_dev_starts_its_daemon_as_a_module_through_open_ipc_subprocess() -> None:
    source = inspect.getsource(dagster_dev.dev_command_impl)
    assert "daemon_process = open_ipc_subprocess(" in source
    assert '"-m",\n                    "dagster._daemon",' in source
    assert callable(dagster_dev.open_ipc_subprocess)


def test_the_clis_it_runs_are_click_commands() -> None:
    assert "run" in daemon_cli.commands
    assert dagster_dev.dev_command.name == "dev"


def test_only_the_daemon_command_is_rewritten() -> None:
    spawned = [sys.executable, "-m", "dagster._daemon", "run", "--log-level", "info", "--shutdown-pipe", "7"]
    assert with_this_daemon(spawned) == [sys.executable, "-m", MODULE, *spawned[3:]]
    webserver = [sys.executable, "-m", "dagster_webserver", "--port", "3000"]
    assert with_this_daemon(webserver) == webserver


def test_the_module_is_the_one_its_command_names() -> None:
    assert daemon.__name__ == MODULE


def test_shortening_the_loop_sets_the_constant_the_loop_reads() -> None:
    try:
        daemon.shorten_sensor_loop()
        assert sensor_daemon.MIN_INTERVAL_LOOP_TIME == SENSOR_LOOP_S < 1
    finally:
        sensor_daemon.MIN_INTERVAL_LOOP_TIME = 5


def test_the_entry_runs_dagster_daemons_and_dagster_devs_command_lines() -> None:
    for command, expected in [("run", "dagster-daemon run"), ("dev", "dagster dev")]:
        done = subprocess.run(
            [sys.executable, "-m", MODULE, command, "--help"], capture_output=True, text=True, timeout=HELP_TIMEOUT_S
        )
        assert done.returncode == 0, done.stderr
        assert f"Usage: {expected}" in done.stdout
