"""Child processes of the hostile tests: `hub-assets` commands in a clean environment, measured."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from hub_assets.settings import DATABASE_URL, OBJECT_STORE_URL

CLI = [sys.executable, "-m", "hub_assets.cli"]


def hub_child_env(home: Path, database_url: str, store_url: str, **extra: str) -> dict[str, str]:
    """This process's environment without any HUB_*, DAGSTER_* or AWS_* setting, plus a hub on
    `database_url` (so no embedded PostgreSQL) and `store_url`, with its state under `home`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "DAGSTER_", "AWS_"))}
    env.update({"HUB_HOME": str(home), DATABASE_URL: database_url, OBJECT_STORE_URL: store_url, **extra})
    return env


# A child's ru_maxrss starts at its parent's high-water mark (Linux keeps the mark across fork and
# exec), so a test process grown past a bound fails the measure by itself: 566 MiB late in the
# default run on 3.13, for a `hub-assets index` whose own peak is 141-146 MiB. The command is started
# by this small launcher instead, which reports the command's ru_maxrss from os.wait4.
_LAUNCHER = """
import os, subprocess, sys
command = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(command.pid, 0)
with open(sys.argv[1], "w") as report:
    report.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


@dataclass(frozen=True)
class Finished:
    returncode: int
    stdout: str
    stderr: str
    peak_rss_bytes: int  # ru_maxrss of this child alone


def run_measured(args: list[str], env: dict[str, str], workdir: Path, timeout_s: float = 300) -> Finished:
    """Run `args` to completion and measure its peak resident memory, its own and not this process's."""
    workdir.mkdir(parents=True, exist_ok=True)
    out, err, peak = workdir / "stdout", workdir / "stderr", workdir / "peak_rss_kib"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        launcher = subprocess.Popen(
            [sys.executable, "-c", _LAUNCHER, str(peak), *args],
            env=env,
            stdout=stdout,
            stderr=stderr,
            cwd=workdir,
            start_new_session=True,
        )
    try:
        returncode = launcher.wait(timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(launcher.pid, signal.SIGKILL)
        launcher.wait()
        raise AssertionError(f"{' '.join(args[2:4])} did not finish within {timeout_s}s") from None
    return Finished(returncode, out.read_text(), err.read_text(), int(peak.read_text()) * 1024)
