"""Run logs captured by a thread of the run's process (hub_assets/instance/compute_logs.py): what
Python and child processes write reaches the run's log files and, as before, the stream's former
target; a child still running, a mirror gone or a stream without a descriptor never holds a run."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg

from hub_assets.instance.compute_logs import PipedComputeLogManager, tee_stream
from hub_assets_tests.polling import wait_until

# Leaving a capture waits for no child: far under the 60 s the lingering child below sleeps.
CAPTURE_END_BOUND_S = 5
LINGERING_CHILD = "print('still here', flush=True); import time; time.sleep(60)"


def test_python_and_child_output_reach_the_log_and_the_former_target(tmp_path: Path) -> None:
    log, mirror = tmp_path / "logs" / "run.out", tmp_path / "terminal"
    with mirror.open("w") as stream:
        with tee_stream(stream, str(log)):
            stream.write("from python\n")
            stream.flush()
            subprocess.run([sys.executable, "-c", "print('from a child')"], stdout=stream, check=True)
        stream.write("after the capture\n")
    assert log.read_text() == "from python\nfrom a child\n"
    assert mirror.read_text() == "from python\nfrom a child\nafter the capture\n"


def test_a_child_still_running_does_not_hold_the_capture_open(tmp_path: Path) -> None:
    log, mirror = tmp_path / "run.out", tmp_path / "terminal"
    with mirror.open("w") as stream:
        capture = tee_stream(stream, str(log))
        capture.__enter__()
        child = subprocess.Popen([sys.executable, "-c", LINGERING_CHILD], stdout=stream)
        try:
            wait_until(lambda: "still here" in log.read_text(), 10, what="the child's line in the log")
            leaving = time.monotonic()
            capture.__exit__(None, None, None)
            left_after_s = time.monotonic() - leaving
        finally:
            child.kill()
            child.wait()
    assert left_after_s < CAPTURE_END_BOUND_S
    assert mirror.read_text() == "still here\n"


def test_a_mirror_whose_reader_is_gone_still_leaves_the_log_whole(tmp_path: Path) -> None:
    """More than a pipe holds: had the copier stopped at the broken mirror, the writer would block."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    log = tmp_path / "run.err"
    payload = "x" * 1023 + "\n"
    with os.fdopen(write_end, "w") as stream, tee_stream(stream, str(log)):
        for _ in range(256):
            stream.write(payload)
        stream.flush()
    assert log.read_text() == payload * 256


def test_a_stream_without_a_descriptor_is_left_alone(tmp_path: Path) -> None:
    stream = io.StringIO()
    with tee_stream(stream, str(tmp_path / "run.out")):
        stream.write("kept\n")
    assert stream.getvalue() == "kept\n"
    assert not (tmp_path / "run.out").exists()


def test_a_run_log_lands_where_the_ui_reads_it(project_instance: dg.DagsterInstance) -> None:
    manager = project_instance.compute_log_manager
    assert isinstance(manager, PipedComputeLogManager)
    log_key = ["a-run", "compute_logs", "abcdefgh"]
    with manager.capture_logs(log_key):
        print("to stdout", flush=True)
        sys.stderr.write("to stderr\n")
        sys.stderr.flush()
    data = manager.get_log_data(log_key)
    assert (data.stdout, data.stderr) == (b"to stdout\n", b"to stderr\n")
    assert manager.is_capture_complete(log_key)
