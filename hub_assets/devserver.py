"""`hub-assets dev`: the Dagster UI, daemon and sensor on the hub's instance, in one command."""

import ipaddress
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from types import FrameType

from .environment import REPO_ROOT, HubEnvironment

_STOP_TIMEOUT_S = 30


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


def run_dev(environment: HubEnvironment, host: str, port: int) -> int:
    """Run `dagster dev` until Ctrl-C or SIGTERM, then stop everything it started."""
    command = [
        str(Path(sys.executable).parent / "dagster"),
        "dev",
        "--host",
        host,
        "--port",
        str(port),
        "--workspace",
        str(REPO_ROOT / "workspace.yaml"),
    ]
    # Its own session, with SIGINT restored: `dagster dev` maps SIGTERM onto its SIGINT handler,
    # so when SIGINT is ignored (a background job) it could not be stopped at all.
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)
    )
    print(f"hub-assets dev: Dagster UI at http://{host}:{port} (upload_sensor on; Ctrl-C stops)", flush=True)

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        return process.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        _stop_group(process)
        environment.stop_embedded_postgres()


def _stop_group(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
