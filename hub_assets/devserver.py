"""`hub-assets dev`: the Dagster UI, daemon and sensor on the hub's instance, and the hub API
(`hub-assets serve`) beside them, in one command."""

import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
from types import FrameType

from .environment import REPO_ROOT, HubEnvironment

_STOP_TIMEOUT_S = 30
_POLL_S = 0.5


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
        for process in processes:
            _stop_group(process)
        environment.stop_embedded_postgres()


def _start(command: list[str]) -> subprocess.Popen:
    # Its own session, with SIGINT restored: `dagster dev` maps SIGTERM onto its SIGINT handler,
    # so when SIGINT is ignored (a background job) it could not be stopped at all.
    return subprocess.Popen(
        command, cwd=REPO_ROOT, start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)
    )


def _stop_group(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
