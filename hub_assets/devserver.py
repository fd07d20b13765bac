"""`hub-assets dev`: the Dagster UI, daemon and sensor on the hub's instance, and the hub API
(`hub-assets serve`) beside them, in one command."""

import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from .environment import REPO_ROOT, HubEnvironment
from .proc_stat import live_stat_fields

_STOP_TIMEOUT_S = 30
_STRAGGLER_GRACE_S = 5
_POLL_S = 0.5
_GROUP_POLL_S = 0.1
_PROC = Path("/proc")


def check_host(host: str, expose_unauthenticated_ui: bool) -> None:
    """Refuse to serve the UI beyond this machine unless told to: Dagster's UI has no login, and
    whoever reaches it can launch, terminate and wipe runs and assets."""
    if expose_unauthenticated_ui or _is_loopback(host):
        return
    raise ValueError(
        f"--host {host} is not a loopback address and the Dagster UI has no login; bind 127.0.0.1 behind an"
        " authenticating proxy (README, Production), or pass --expose-unauthenticated-ui"
    )


def _is_loopback(host: str) -> bool:
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except socket.gaierror:
        return False
    return all(ipaddress.ip_address(address.split("%")[0]).is_loopback for address in addresses)


def run_dev(environment: HubEnvironment, host: str, port: int, api_port: int) -> int:
    """Run `dagster dev` and the hub API until Ctrl-C or SIGTERM (or until either exits), then
    stop everything they started."""
    # `dagster dev`, with the hub's daemon in place of Dagster's (a 0.5 s sensor loop: instance/daemon.py)
    dagster = [
        sys.executable,
        "-m",
        "hub_assets.instance.daemon",
        "dev",
        "--host",
        host,
        "--port",
        str(port),
        "--workspace",
        str(REPO_ROOT / "workspace.yaml"),
    ]
    # The API child inherits the variables `prepare` exported: the same catalog and store, and
    # no second embedded PostgreSQL.
    api = [sys.executable, "-m", "hub_assets.cli", "serve", "--host", host, "--port", str(api_port)]
    processes = [_start(dagster), _start(api)]
    print(f"hub-assets dev: Dagster UI at http://{host}:{port} (upload_sensor on; Ctrl-C stops)", flush=True)
    print(f"hub-assets dev: hub API at http://{host}:{api_port} (muse remotes: http://{host}:{api_port}/OWNER/SLUG)")

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        while True:
            for process in processes:
                if (code := process.poll()) is not None:
                    return code
            time.sleep(_POLL_S)
    except KeyboardInterrupt:
        return 0
    finally:
        _stop_groups(processes)
        environment.stop_embedded_postgres()


def _start(command: list[str]) -> subprocess.Popen:
    # Its own session, with SIGINT restored: `dagster dev` maps SIGTERM onto its SIGINT handler,
    # so when SIGINT is ignored (a background job) it could not be stopped at all.
    return subprocess.Popen(
        command, cwd=REPO_ROOT, start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)
    )


def _stop_groups(processes: list[subprocess.Popen]) -> None:
    """Stop each process and everything it started, the processes side by side.

    SIGTERM goes to each leader alone, so `dagster dev` stops its webserver, daemon and code server
    in its own order. Sent to the whole group it was not enough: the code server exited at once,
    and `dagster dev`, still waiting for its webserver and daemon, restarted it (its monitor
    restarts a code server it finds exited, every 5 s). The new one outlived dev until its 45 s
    heartbeat timeout (CI, 2026-12-03). What is left in a group once its leader is gone (a code
    server still shutting down, a run worker) is swept: given time, then SIGTERM, then SIGKILL."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + _STOP_TIMEOUT_S
    for process in processes:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal_group(process.pid, signal.SIGKILL)
            process.wait()
        _sweep_group(process.pid)


def _sweep_group(group: int) -> None:
    for signum in (None, signal.SIGTERM, signal.SIGKILL):
        if signum is not None and not _signal_group(group, signum):
            return
        if _group_gone_within(group, _STRAGGLER_GRACE_S):
            return


def _signal_group(group: int, signum: int) -> bool:
    """Send `signum` to `group`; False when no process of it is left (it may end at any moment)."""
    try:
        os.killpg(group, signum)
    except ProcessLookupError:
        return False
    return True


def _group_gone_within(group: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while _group_alive(group):
        if time.monotonic() >= deadline:
            return False
        time.sleep(_GROUP_POLL_S)
    return True


def _group_alive(group: int) -> bool:
    """Whether a process of `group` still runs. Zombies do not count: an orphan's new parent is
    init, which here reaps it up to a second later, and `killpg(group, 0)` counts it until then.
    Without /proc (macOS), that is what is left to ask."""
    if not _PROC.is_dir():
        return _signal_group(group, 0)
    for entry in _PROC.iterdir():
        fields = live_stat_fields(int(entry.name)) if entry.name.isdigit() else None
        if fields and int(fields[2]) == group:
            return True
    return False
