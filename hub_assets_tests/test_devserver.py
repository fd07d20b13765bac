"""How `hub-assets dev` stops what it started: each child's process group, with stand-ins for
`dagster dev` that misbehave the ways a real one can (fast: no Dagster here; test_dev.py runs the
real one)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hub_assets import devserver
from hub_assets_tests.polling import wait_until

# Each stand-in writes `ready` (argv[1]) once its handlers are in place and its children started,
# so the stop begins against the state it describes.
RESTARTS_ITS_CHILD_WHILE_STOPPING = """
import signal, subprocess, sys, time, pathlib
def stop(*_):
    # As dagster dev's monitor restarts a code server it finds exited: a new process in the
    # group, started after the stop began.
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
pathlib.Path(sys.argv[1]).write_text("ready")
time.sleep(60)
"""

DEAF_TO_SIGTERM = """
import signal, sys, time, pathlib
signal.signal(signal.SIGTERM, signal.SIG_IGN)
pathlib.Path(sys.argv[1]).write_text("ready")
time.sleep(60)
"""

LEAVES_A_CHILD_DEAF_TO_SIGTERM = f"""
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", {DEAF_TO_SIGTERM!r}, sys.argv[1]])
time.sleep(60)
"""

# The child notes how it was stopped: 'asked' when its parent closed its stdin, 'signalled' on SIGTERM.
STOPS_ITS_CHILD_ITSELF = """
import signal, subprocess, sys, time
child = '''
import pathlib, signal, sys
log = pathlib.Path(sys.argv[1]).with_name("child.log")
def signalled(*_):
    log.write_text("signalled")
    sys.exit(1)
signal.signal(signal.SIGTERM, signalled)
pathlib.Path(sys.argv[1]).write_text("ready")
sys.stdin.read()
log.write_text("asked")
'''
process = subprocess.Popen([sys.executable, "-c", child, sys.argv[1]], stdin=subprocess.PIPE)
def stop(*_):
    process.stdin.close()
    process.wait()
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
time.sleep(60)
"""


@pytest.fixture
def short_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devserver, "_STOP_TIMEOUT_S", 1)
    monkeypatch.setattr(devserver, "_STRAGGLER_GRACE_S", 0.5)


def start_stand_in(script: str, tmp_path: Path) -> subprocess.Popen:
    ready = tmp_path / "ready"
    process = devserver._start([sys.executable, "-c", script, str(ready)])
    wait_until(ready.exists, 30, what=f"the stand-in ({ready}) to be ready")
    return process


def group_is_gone(group: int) -> bool:
    return not devserver._group_alive(group)


@pytest.fixture
def groups() -> list[int]:
    """The process groups a test started: whatever a failing test left is killed."""
    started: list[int] = []
    yield started
    for group in started:
        if not group_is_gone(group):
            os.killpg(group, signal.SIGKILL)


@pytest.mark.usefixtures("short_grace")
@pytest.mark.parametrize(
    "script",
    [RESTARTS_ITS_CHILD_WHILE_STOPPING, LEAVES_A_CHILD_DEAF_TO_SIGTERM],
    ids=["a-process-started-while-stopping", "a-child-deaf-to-sigterm"],
)
def test_stopping_leaves_nothing_of_the_group_behind(script: str, tmp_path: Path, groups: list[int]) -> None:
    process = start_stand_in(script, tmp_path)
    groups.append(process.pid)
    devserver._stop_groups([process])
    assert process.returncode is not None
    assert group_is_gone(process.pid), "a process of the group outlived the stop"


@pytest.mark.usefixtures("short_grace")
def test_a_leader_deaf_to_sigterm_is_killed_with_its_group(tmp_path: Path, groups: list[int]) -> None:
    process = start_stand_in(DEAF_TO_SIGTERM, tmp_path)
    groups.append(process.pid)
    devserver._stop_groups([process])
    assert process.returncode == -signal.SIGKILL
    assert group_is_gone(process.pid)


def test_sigterm_goes_to_the_leader_which_stops_its_children_in_its_own_order(
    tmp_path: Path, groups: list[int]
) -> None:
    process = start_stand_in(STOPS_ITS_CHILD_ITSELF, tmp_path)
    groups.append(process.pid)
    devserver._stop_groups([process])
    assert process.returncode == 0
    assert (tmp_path / "child.log").read_text() == "asked", "the child was signalled, not stopped by its parent"
    assert group_is_gone(process.pid)


def test_the_processes_stop_side_by_side(tmp_path: Path, groups: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    """Two leaders deaf to SIGTERM cost one stop timeout, not two: both are signalled first, and
    they share one deadline."""
    monkeypatch.setattr(devserver, "_STOP_TIMEOUT_S", 2)
    processes = []
    for name in ("first", "second"):
        (tmp_path / name).mkdir()
        processes.append(start_stand_in(DEAF_TO_SIGTERM, tmp_path / name))
        groups.append(processes[-1].pid)
    started = time.monotonic()
    devserver._stop_groups(processes)
    elapsed = time.monotonic() - started
    assert [p.returncode for p in processes] == [-signal.SIGKILL, -signal.SIGKILL]
    assert elapsed < 3.5, f"stopped one after the other: {elapsed:.1f} s for two 2 s timeouts"


@pytest.mark.parametrize("proc", ["/proc", "no-proc"], ids=["linux", "without-proc"])
def test_a_group_is_alive_while_a_process_of_it_runs(
    proc: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(devserver, "_PROC", Path(proc) if proc == "/proc" else tmp_path / proc)
    process = start_stand_in(DEAF_TO_SIGTERM, tmp_path)
    try:
        assert devserver._group_alive(process.pid)
    finally:
        process.kill()
        process.wait()
    assert not devserver._group_alive(process.pid)
