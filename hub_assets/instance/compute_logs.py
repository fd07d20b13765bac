"""A run's stdout and stderr captured to files by a thread of the run's own process.

Dagster's LocalComputeLogManager redirects each stream into its file and, to still show it where
it went before, starts per stream a `tail -F` of the file and a Python interpreter that kills the
tail should the run's process die: four processes per run, two of them interpreters starting on a
2-core machine while the run does: ~11 ms to start them and ~27 ms to stop them before RUN_SUCCESS,
plus the CPU they take from the run. Without them Dagster's overhead of a 3-commit index run went
0.410 -> 0.363 s, of a 1x run 0.511 -> 0.402 s (A/B, benchmarks/RESULTS.md, 2026-12-02).

Here each stream's descriptor points, for the capture, at a pipe that one thread copies to the
stream's file and to where the descriptor pointed before: the same files the UI reads, the same
mirroring, what child processes write included, and nothing to clean up if the process dies.

It leans on LocalComputeLogManager's file layout (`get_captured_local_path`,
`complete_artifact_path`, the `out`/`err` extensions), pinned in
hub_assets_tests/instance/test_dagster_internals.py.
"""

from __future__ import annotations

import io
import os
import select
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, TextIO

from dagster._core.storage.compute_log_manager import CapturedLogContext, ComputeIOType
from dagster._core.storage.local_compute_log_manager import IO_TYPE_EXTENSION, LocalComputeLogManager
from dagster._serdes import ConfigurableClassData

_CHUNK = 65536
# After copying, the copier waits this long (or for the capture's end) before it reads again: a run
# writes a line or two per event, and waking for each took the GIL from the run's threads ~100
# times a run. Still livelier than upstream's `tail -F`, which looks once a second.
_PACE_S = 0.1


class PipedComputeLogManager(LocalComputeLogManager):
    """LocalComputeLogManager (same config, same files) without its tail and watcher processes.

    dagster.yaml:
        compute_logs:
          module: hub_assets.instance.compute_logs
          class: PipedComputeLogManager
          config: {base_dir: …}
    """

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None, config_value: Any) -> PipedComputeLogManager:
        return cls(inst_data=inst_data, **config_value)

    @contextmanager
    def capture_logs(self, log_key: Sequence[str]) -> Iterator[CapturedLogContext]:
        with ExitStack() as streams:
            for stream, io_type in ((sys.stdout, ComputeIOType.STDOUT), (sys.stderr, ComputeIOType.STDERR)):
                path = self.get_captured_local_path(log_key, IO_TYPE_EXTENSION[io_type])
                streams.enter_context(tee_stream(stream, path))
            yield CapturedLogContext(log_key)
        # The marker the UI reads as "this capture is over", as upstream leaves it.
        complete = Path(self.complete_artifact_path(log_key))
        complete.parent.mkdir(parents=True, exist_ok=True)
        complete.touch()


@contextmanager
def tee_stream(stream: TextIO, path: str) -> Iterator[None]:
    """While inside, whatever is written to `stream`'s file descriptor (by Python or by a child
    process) is appended to `path` and still reaches where the descriptor pointed before. A stream
    without a descriptor (a test runner's capture) is left alone, as upstream leaves it."""
    try:
        fd = stream.fileno()
    except (AttributeError, io.UnsupportedOperation, ValueError):
        yield
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    stream.flush()
    mirror = os.dup(fd)
    read_end, write_end = os.pipe()
    wake_read, wake_write = os.pipe()
    os.dup2(write_end, fd)
    os.close(write_end)
    copier = threading.Thread(
        target=_copy, args=(read_end, wake_read, [log, mirror]), name=f"tee-{Path(path).name}", daemon=True
    )
    copier.start()
    try:
        yield
    finally:
        stream.flush()
        os.dup2(mirror, fd)
        # Not EOF on the pipe: a child still running holds its write end. The copier takes what is
        # in the pipe now and stops; what such a child writes later is lost, as when upstream
        # stops its tail.
        os.write(wake_write, b"\0")
        copier.join()
        for descriptor in (read_end, wake_read, wake_write, mirror, log):
            os.close(descriptor)


def _copy(read_end: int, wake_read: int, sinks: list[int]) -> None:
    """Copy the pipe to each sink until told to stop, then what is left in it. A sink that fails
    (disk full, the mirror's reader gone) is dropped and the pipe still drained: a writer must never
    block on a full pipe that no one reads."""
    os.set_blocking(read_end, False)
    stopping = False
    while not stopping:
        readable, _, _ = select.select([read_end, wake_read], [], [])
        stopping = wake_read in readable
        if not _drain(read_end, sinks):
            return
        if not stopping:
            stopping = bool(select.select([wake_read], [], [], _PACE_S)[0])
    _drain(read_end, sinks)


def _drain(read_end: int, sinks: list[int]) -> bool:
    """Copy what the pipe holds now; False once every writer has closed it."""
    while True:
        try:
            data = os.read(read_end, _CHUNK)
        except BlockingIOError:
            return True
        if not data:
            return False
        for sink in list(sinks):
            try:
                _write_all(sink, data)
            except OSError:
                sinks.remove(sink)


def _write_all(descriptor: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(descriptor, view) :]
