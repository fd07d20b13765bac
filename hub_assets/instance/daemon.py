"""The hub's Dagster daemon: `dagster-daemon` with a sensor loop of SENSOR_LOOP_S (0.5 s) instead of 5 s.

Dagster 1.13's sensor daemon evaluates sensors once per loop and sleeps until the loop has taken
`MIN_INTERVAL_LOOP_TIME` = 5 s (dagster/_daemon/sensor.py), whatever a sensor's
`minimum_interval_seconds` says; no setting changes it (dagster.yaml's `sensors:` only chooses
threads). A push waited 2.76 s median, 4.55 s p90, until the upload sensor saw it
(benchmarks/RESULTS.md, 2026-12-02). With a 0.5 s loop the upload sensor, whose minimum interval
is 1 s, ticks every 1-1.5 s; the loop itself reads the sensors' states (one query) each time.

    python -m hub_assets.instance.daemon run -w workspace.yaml     # in place of `dagster-daemon run`
    python -m hub_assets.instance.daemon dev [dagster dev options]  # `dagster dev` with this daemon

`hub-assets dev` runs the second: `dagster dev` starts its daemon as `python -m dagster._daemon
run …` through `open_ipc_subprocess`; here that one command is rewritten to start this module.
Both internals (the loop constant, the dev command's spawn) are pinned in
hub_assets_tests/instance/test_daemon_internals.py, so an upgrade fails there.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

import dagster._daemon.sensor as sensor_daemon
from dagster._cli import ENV_PREFIX
from dagster._cli import dev as dagster_dev
from dagster._daemon.cli import cli as daemon_cli

from ..settings import worker_pool
from ..workers.local import start_forkserver

SENSOR_LOOP_S = 0.5
DAGSTER_DAEMON_MODULE = "dagster._daemon"
MODULE = "hub_assets.instance.daemon"  # this file, as `python -m` names it


def shorten_sensor_loop() -> None:
    """Read by the sensor daemon at the end of every loop, so it applies from the next one."""
    sensor_daemon.MIN_INTERVAL_LOOP_TIME = SENSOR_LOOP_S


def with_this_daemon(command: Sequence[str]) -> list[str]:
    """`command`, starting this module where it starts Dagster's daemon (`python -m dagster._daemon …`)."""
    command = list(command)
    if command[1:3] == ["-m", DAGSTER_DAEMON_MODULE]:
        command[2] = MODULE
    return command


def _spawning_this_daemon(spawn: Callable[..., Any]) -> Callable[..., Any]:
    def spawn_this_daemon(command: Sequence[str], **kwargs: Any) -> Any:
        return spawn(with_this_daemon(command), **kwargs)

    return spawn_this_daemon


def main(argv: Sequence[str]) -> None:
    """`dev …` runs `dagster dev`; anything else is `dagster-daemon`'s command line. Does not return."""
    shorten_sensor_loop()
    if argv[:1] == ["run"] and worker_pool().launcher == "local":
        # The run workers' warm parent imports the code location now, not at the first push.
        start_forkserver()
    if argv[:1] == ["dev"]:
        dagster_dev.open_ipc_subprocess = _spawning_this_daemon(dagster_dev.open_ipc_subprocess)
        dagster_dev.dev_command.main(args=list(argv[1:]), prog_name="dagster dev", auto_envvar_prefix=ENV_PREFIX)
    daemon_cli.main(args=list(argv), prog_name="dagster-daemon", obj={})


if __name__ == "__main__":
    main(sys.argv[1:])
