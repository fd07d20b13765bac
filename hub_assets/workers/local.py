"""`HUB_RUN_LAUNCHER=local` (the default): each run in a process forked on the daemon's machine from
one that has already imported the code location.

Dagster's DefaultRunLauncher asks the code server to start each run, and the code server spawns a
new interpreter that imports Dagster, its PostgreSQL storages and the code location before the run
can begin: 1.74 s of the 3.49 s from upload to indexed under `hub-assets dev` (benchmarks/RESULTS.md,
2026-12-02). Here the daemon keeps one multiprocessing forkserver that has imported all of that
once (`WARM_MODULES`); a run is a child forked from it, which does what `dagster api execute_run`
does: rebuild the instance from its ref, then execute the run.

The forkserver imports the code once, when the daemon starts: a changed code location takes
effect when `hub-assets dev` restarts (HUB_RUN_LAUNCHER=code-server reloads it with the UI's
"Reload"). A run's worker is known by its pid and the kernel's start time of that pid (run tags),
so run monitoring tells a live worker from a dead one (SIGKILL, OOM) even across a daemon restart,
and never mistakes a later process given the same pid for it. Linux only (/proc), like the rest
of the hub's deployment.

This module leans on Dagster internals (the launcher base class, ExecuteRunArgs, the body of
`dagster api execute_run`, its interrupt handling) and on one of multiprocessing's (the set of
children it joins at exit); hub_assets_tests/workers/test_dagster_internals.py pins each one.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import os
import signal
import sys
import time

import dagster as dg
from dagster._cli.api import _execute_run_command_body
from dagster._core.launcher import CheckRunHealthResult, LaunchRunContext, RunLauncher, WorkerStatus
from dagster._grpc.types import ExecuteRunArgs
from dagster._utils.interrupts import capture_interrupts, setup_interrupt_handlers

from ..proc_stat import live_stat_fields

# How long a launch keeps trying while a dead forkserver is replaced, and the pause between tries.
FORKSERVER_RESTART_S = 10.0
FORKSERVER_RETRY_PAUSE_S = 0.05

RUN_WORKER_PID_TAG = "hub/run_worker_pid"
RUN_WORKER_STARTED_TAG = "hub/run_worker_started"  # the kernel's start time of that pid, in clock ticks

# Imported once by the forkserver: everything a run needs before its first step, so a forked run
# starts without imports of its own (this module, the code location, the instance's storages and
# their driver, which SQLAlchemy imports only when an engine is made, log capture). The forkserver
# skips a module that fails to import, silently: a run then imports it itself, slower but correct.
WARM_MODULES = [
    __name__,
    "hub_assets.definitions",
    "hub_assets.instance.storage",
    "psycopg2.extras",
    "hub_assets.instance.compute_logs",
    "hub_assets.workers.launcher",
    # Last: with everything imported, asks the instance's schema once for every run (warm_schema.py).
    "hub_assets.workers.warm_schema",
]


def start_forkserver() -> multiprocessing.context.ForkServerContext:
    """The process's forkserver, started (once per process) with WARM_MODULES imported. The daemon
    calls this as it starts, so that its first run does not wait for the imports."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(WARM_MODULES)
    multiprocessing.forkserver.ensure_running()
    return context


def execute_run(serialized_args: str, environment: dict[str, str]) -> None:
    """A forked run worker: `dagster api execute_run` without the interpreter start and imports.
    SIGINT or SIGTERM cancels the run at Dagster's next interrupt point, as for the command."""
    # The launcher's variables as they are now, not as the forkserver inherited them: dagster.yaml's
    # `{env: …}` settings are read when the instance is rebuilt from its ref, here.
    os.environ.clear()
    os.environ.update(environment)
    setup_interrupt_handlers()
    args = dg.deserialize_value(serialized_args, ExecuteRunArgs)
    with capture_interrupts(), dg.DagsterInstance.from_ref(args.instance_ref) as instance:
        # Recorded by the worker itself before the run can be STARTED: run monitoring asks about a
        # STARTED run's worker, and one it cannot find would be reported failed.
        pid = os.getpid()
        started = process_start_time(pid) or ""
        instance.add_run_tags(args.run_id, {RUN_WORKER_PID_TAG: str(pid), RUN_WORKER_STARTED_TAG: started})
        code = _execute_run_command_body(
            args.run_id, instance, write_stream_fn=lambda event: None, set_exit_code_on_failure=True
        )
    sys.exit(code)


def process_start_time(pid: int) -> str | None:
    """The kernel's start time of a live process (field 22 of /proc/PID/stat), None once it has
    exited (a zombie counts as exited)."""
    fields = live_stat_fields(pid)
    return None if fields is None else fields[19]


def _fork(serialized_args: str, run_id: str) -> multiprocessing.process.BaseProcess:
    """A run worker forked from the forkserver. One that died since it was last used (killed, out
    of memory) refuses the first attempt; once the kernel has ended it, the next attempt starts a
    new one (with its imports: as slow as a run's start used to be)."""
    deadline = time.monotonic() + FORKSERVER_RESTART_S
    while True:
        worker = start_forkserver().Process(
            target=execute_run, args=(serialized_args, dict(os.environ)), name=f"hub-run-{run_id}"
        )
        try:
            worker.start()
            return worker
        except (EOFError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(FORKSERVER_RETRY_PAUSE_S)


class LocalRunLauncher(RunLauncher):
    def launch_run(self, context: LaunchRunContext) -> None:
        run = context.dagster_run
        args = ExecuteRunArgs(
            job_origin=run.job_code_origin,
            run_id=run.run_id,
            instance_ref=self._instance.get_ref(),
            set_exit_code_on_failure=True,
        )
        worker = _fork(dg.serialize_value(args), run.run_id)
        # Not a child this process waits for (it is the forkserver's): multiprocessing joins its
        # children at exit, which would hold a stopping daemon until every run it launched ended.
        # A run outlives its launcher; run monitoring follows it by its tags. (No engine event here:
        # the worker's own "Started process for run (pid: …)" says the same, one write fewer.)
        multiprocessing.process._children.discard(worker)  # type: ignore[attr-defined]

    def _live_worker(self, run: dg.DagsterRun) -> int | None:
        pid = run.tags.get(RUN_WORKER_PID_TAG)
        if pid is None or process_start_time(int(pid)) != run.tags.get(RUN_WORKER_STARTED_TAG):
            return None
        return int(pid)

    def terminate(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            return False
        self._instance.report_run_canceling(run)
        pid = self._live_worker(run)
        if pid is None:
            return False
        try:
            os.kill(pid, signal.SIGINT)
        except ProcessLookupError:  # it ended since it was looked up
            return False
        return True

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        if RUN_WORKER_PID_TAG not in run.tags:
            # The worker tags its run before the run starts: this one was launched otherwise
            # (before HUB_RUN_LAUNCHER changed), and its worker cannot be checked from here.
            return CheckRunHealthResult(WorkerStatus.UNKNOWN, "no run worker recorded for this run")
        pid = run.tags[RUN_WORKER_PID_TAG]
        if self._live_worker(run) is not None:
            return CheckRunHealthResult(WorkerStatus.RUNNING, run_worker_id=pid)
        return CheckRunHealthResult(WorkerStatus.FAILED, f"run worker (pid {pid}) is no longer running")
