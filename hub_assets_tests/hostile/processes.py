"""Child processes of the hostile tests: `hub-assets` commands in a clean environment, measured."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from hub_assets.settings import DATABASE_URL, OBJECT_STORE_URL
from hub_assets_tests.dev_server import CLI as CLI  # where the hostile tests look
from hub_assets_tests.polling import wait_until


def hub_child_env(home: Path, database_url: str, store_url: str, **extra: str) -> dict[str, str]:
    """This process's environment without any HUB_*, DAGSTER_* or AWS_* setting, plus a hub on
    `database_url` (so no embedded PostgreSQL) and `store_url`, with its state under `home`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "DAGSTER_", "AWS_"))}
    env.update({"HUB_HOME": str(home), DATABASE_URL: database_url, OBJECT_STORE_URL: store_url, **extra})
    return env


@dataclass(frozen=True)
class Finished:
    returncode: int
    stdout: str
    stderr: str
    peak_rss_bytes: int  # ru_maxrss of the command's process alone


# Runs the command as a child of its own and reports that child's peak RSS: measured from the test
# process, a child's ru_maxrss would count the test process's pages it held until its exec.
_LAUNCHER = """
import os, resource, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as report:
    report.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_measured(args: list[str], env: dict[str, str], workdir: Path, timeout_s: float = 300) -> Finished:
    """Run `args` to completion, with the peak resident memory of its process alone."""
    workdir.mkdir(parents=True, exist_ok=True)
    out, err, peak = workdir / "stdout", workdir / "stderr", workdir / "peak_rss_kib"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-c", _LAUNCHER, str(peak), *args],
            env=env,
            stdout=stdout,
            stderr=stderr,
            cwd=workdir,
            start_new_session=True,
        )
    try:
        wait_until(lambda: process.poll() is not None, timeout_s, 0.1, what=f"{' '.join(args[2:4])} to finish")
    except AssertionError:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise
    return Finished(process.returncode, out.read_text(), err.read_text(), int(peak.read_text()) * 1024)
