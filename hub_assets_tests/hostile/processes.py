"""Child processes of the hostile tests: `hub-assets` commands in a clean environment, measured."""

from __future__ import annotations

import os
import resource
import subprocess
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
    peak_rss_bytes: int  # ru_maxrss of this child alone


def run_measured(args: list[str], env: dict[str, str], workdir: Path, timeout_s: float = 300) -> Finished:
    """Run `args` to completion; its peak resident memory comes from os.wait4 on that child, so
    no other child of the test process counts."""
    workdir.mkdir(parents=True, exist_ok=True)
    out, err = workdir / "stdout", workdir / "stderr"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(args, env=env, stdout=stdout, stderr=stderr, cwd=workdir)

    def reaped() -> tuple[int, resource.struct_rusage] | None:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        return (status, usage) if pid else None

    try:
        status, usage = wait_until(reaped, timeout_s, 0.1, what=f"{' '.join(args[2:4])} to finish")
    except AssertionError:
        process.kill()
        process.wait()
        raise
    process.returncode = os.waitstatus_to_exitcode(status)
    return Finished(process.returncode, out.read_text(), err.read_text(), usage.ru_maxrss * 1024)
