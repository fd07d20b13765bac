"""HUB_RUN_LAUNCHER=local, the default: each run in a process forked from a warm forkserver, known to
run monitoring by its pid and that pid's start time. Real runs on the test instance (the project's
dagster.yaml on PostgreSQL), launched through the instance's own launcher. (No postponed
annotations: Dagster reads the op's context annotation as an object.)"""

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.launcher import LaunchRunContext, WorkerStatus

from hub_assets.instance.storage import RUN_PROBES
from hub_assets.workers import local
from hub_assets.workers.launcher import ChosenRunLauncher
from hub_assets.workers.local import (
    RUN_WORKER_PID_TAG,
    RUN_WORKER_STARTED_TAG,
    LocalRunLauncher,
    process_start_time,
    start_forkserver,
)
from hub_assets_tests.instance_home import InstanceHome
from hub_assets_tests.polling import wait_until

GATE_TIMEOUT_S = 120


@dg.op(config_schema={"gate": str})
def wait_for_gate(context: dg.OpExecutionContext) -> None:
    """Holds the run until the test creates the gate file (or the run is interrupted)."""
    gate, deadline = Path(context.op_config["gate"]), time.monotonic() + GATE_TIMEOUT_S
    while not gate.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{gate} never appeared")
        time.sleep(0.02)


@dg.job(executor_def=dg.in_process_executor)
def gated_job() -> None:
    wait_for_gate()


@pytest.fixture
def instance(instance_home: InstanceHome, monkeypatch: pytest.MonkeyPatch) -> Iterator[dg.DagsterInstance]:
    for variable, value in instance_home.env().items():
        monkeypatch.setenv(variable, value)
    monkeypatch.delenv("HUB_RUN_LAUNCHER", raising=False)
    with instance_home.open() as instance:
        yield instance


def launch_gated(instance: dg.DagsterInstance, gate: Path) -> dg.DagsterRun:
    run = instance.create_run_for_job(
        gated_job,
        run_config={"ops": {"wait_for_gate": {"config": {"gate": str(gate)}}}},
        job_code_origin=dg.reconstructable(gated_job).get_python_origin(),
    )
    instance.run_launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
    return run


def launch_until_started(instance: dg.DagsterInstance, gate: Path) -> dg.DagsterRun:
    run_id = launch_gated(instance, gate).run_id
    return wait_until(lambda: started(instance, run_id), 60, 0.02, what="the run to start")


def run_of(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRun:
    run = instance.get_run_by_id(run_id)
    assert run is not None
    return run


def started(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRun | None:
    run = run_of(instance, run_id)
    return run if run.status == dg.DagsterRunStatus.STARTED and RUN_WORKER_PID_TAG in run.tags else None


def ended(instance: dg.DagsterInstance, run_id: str, status: dg.DagsterRunStatus) -> dg.DagsterRun | None:
    run = run_of(instance, run_id)
    return run if run.status == status else None


def test_the_default_launcher_forks_runs_from_a_warm_process(instance: dg.DagsterInstance) -> None:
    launcher = instance.run_launcher
    assert isinstance(launcher, ChosenRunLauncher)
    assert isinstance(launcher.chosen, LocalRunLauncher)
    assert launcher.supports_check_run_worker_health and not launcher.supports_resume_run


def test_a_run_executes_in_a_forked_worker_that_run_monitoring_sees_alive(
    instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    run = launch_until_started(instance, gate)
    pid = int(run.tags[RUN_WORKER_PID_TAG])
    assert pid != os.getpid()
    # Forked from the forkserver (its command line), not a new interpreter of its own.
    assert b"multiprocessing.forkserver" in Path(f"/proc/{pid}/cmdline").read_bytes()
    assert f"Started process for run (pid: {pid})." in [e.message for e in instance.all_logs(run.run_id)]
    health = instance.run_launcher.check_run_worker_health(run)
    assert (health.status, health.run_worker_id) == (WorkerStatus.RUNNING, str(pid))

    gate.touch()
    wait_until(lambda: ended(instance, run.run_id, dg.DagsterRunStatus.SUCCESS), 60, 0.02, what="the run's success")
    wait_until(lambda: process_start_time(pid) is None, 30, 0.02, what="the worker's exit")


def test_the_worker_reads_the_launchers_environment_at_launch_not_the_forkservers(
    instance: dg.DagsterInstance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dagster.yaml's `{env: …}` are read in the worker: a forkserver started under other variables
    (an earlier test's, a daemon's at start) must not hand those to a run."""
    start_forkserver()  # under the variables as they are before the change below
    monkeypatch.setenv("HUB_DAGSTER_LOGS", str(tmp_path / "logs-now"))
    gate = tmp_path / "gate"
    gate.touch()
    run = launch_gated(instance, gate)
    wait_until(lambda: ended(instance, run.run_id, dg.DagsterRunStatus.SUCCESS), 60, 0.02, what="the run's success")
    assert list((tmp_path / "logs-now").rglob("*.out")), "the run's stdout was not captured under HUB_DAGSTER_LOGS"


def test_a_killed_worker_is_reported_failed_and_a_reused_pid_is_not_taken_for_it(
    instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    run = launch_until_started(instance, tmp_path / "gate")
    pid = int(run.tags[RUN_WORKER_PID_TAG])
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: process_start_time(pid) is None, 30, 0.02, what="the worker's death")
    health = instance.run_launcher.check_run_worker_health(run)
    assert health.status == WorkerStatus.FAILED and f"pid {pid}" in (health.msg or "")
    assert not instance.run_launcher.terminate(run.run_id)

    # This process is alive, but it is not the process that started at the recorded time.
    impostor = dg.DagsterRun(
        job_name="index_bundle",
        run_id=str(uuid.uuid4()),
        tags={RUN_WORKER_PID_TAG: str(os.getpid()), RUN_WORKER_STARTED_TAG: "1"},
    )
    assert instance.run_launcher.check_run_worker_health(impostor).status == WorkerStatus.FAILED
    unrecorded = dg.DagsterRun(job_name="index_bundle", run_id=str(uuid.uuid4()))
    assert instance.run_launcher.check_run_worker_health(unrecorded).status == WorkerStatus.UNKNOWN


def test_terminate_cancels_a_running_run_and_leaves_a_finished_one(
    instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    run = launch_until_started(instance, tmp_path / "gate")
    assert instance.run_launcher.terminate(run.run_id)
    wait_until(lambda: ended(instance, run.run_id, dg.DagsterRunStatus.CANCELED), 60, 0.02, what="the cancellation")
    assert not instance.run_launcher.terminate(run.run_id)


def test_process_start_time_is_none_for_a_pid_that_does_not_exist() -> None:
    assert process_start_time(os.getpid()) is not None
    assert process_start_time(2**22 + 1) is None  # above Linux's largest pid


# Run in a fresh interpreter: what the forkserver holds after importing warm_schema.
AFTER_WARM_SCHEMA = """
import os, threading
import hub_assets.workers.warm_schema
from hub_assets.instance import storage

def sockets():
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:[")
        except OSError:
            continue
    return count

print(sum(map(len, storage._schema_facts.values())), threading.active_count(), sockets())
"""


def test_the_forkserver_learns_the_schema_then_holds_no_connection_and_no_thread(
    instance: dg.DagsterInstance, instance_home: InstanceHome
) -> None:
    env = {**os.environ, **instance_home.env()}
    result = subprocess.run([sys.executable, "-c", AFTER_WARM_SCHEMA], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    facts, threads, sockets = map(int, result.stdout.split())
    assert facts >= len(RUN_PROBES)
    # Nothing a forked run could inherit half-used: no thread, no socket (TCP or Unix) of any kind.
    assert (threads, sockets) == (1, 0)


def test_without_an_instance_the_forkserver_says_so_and_runs_ask_for_themselves() -> None:
    env = {name: value for name, value in os.environ.items() if name != "DAGSTER_HOME"}
    result = subprocess.run([sys.executable, "-c", AFTER_WARM_SCHEMA], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "1", "0"]
    assert "run workers will ask the instance's schema themselves" in result.stderr


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_a_killed_forkserver_is_started_again_and_its_runs_go_on(instance: dg.DagsterInstance, tmp_path: Path) -> None:
    first = launch_until_started(instance, tmp_path / "first")
    worker = int(first.tags[RUN_WORKER_PID_TAG])
    os.kill(parent_of(worker), signal.SIGKILL)
    # At once: the launch meets the dead forkserver's closed socket, then starts a new one.
    second = launch_until_started(instance, tmp_path / "second")
    assert parent_of(int(second.tags[RUN_WORKER_PID_TAG])) != parent_of(worker)
    assert instance.run_launcher.check_run_worker_health(first).status == WorkerStatus.RUNNING
    for gate in ("first", "second"):
        (tmp_path / gate).touch()
    for run in (first, second):
        wait_until(lambda run=run: ended(instance, run.run_id, dg.DagsterRunStatus.SUCCESS), 60, 0.02, what="success")


LAUNCH_AND_EXIT = """
import sys
import dagster as dg
from hub_assets_tests.workers.test_local_launcher import launch_gated
from pathlib import Path

with dg.DagsterInstance.get() as instance:
    print(launch_gated(instance, Path(sys.argv[1])).run_id, flush=True)
"""


def test_a_launcher_exits_at_once_and_its_runs_go_on_without_it(
    instance: dg.DagsterInstance, instance_home: InstanceHome, tmp_path: Path
) -> None:
    """A daemon stopping (or restarting) waits for none of the runs it launched."""
    env = {**os.environ, **instance_home.env()}
    gate, out = tmp_path / "gate", tmp_path / "launcher.out"
    # Its own forkserver starts, imports the code location, then the process exits: it would hang
    # until the gate's timeout if it waited for its run. (Its output to a file: the run inherits
    # the descriptors and keeps a pipe open.)
    with out.open("w") as output:
        launcher = subprocess.Popen([sys.executable, "-c", LAUNCH_AND_EXIT, str(gate)], env=env, stdout=output)
        assert launcher.wait(timeout=60) == 0
    run_id = out.read_text().split()[-1]
    run = wait_until(lambda: started(instance, run_id), 60, 0.02, what="the orphaned run to start")
    assert instance.run_launcher.check_run_worker_health(run).status == WorkerStatus.RUNNING
    gate.touch()
    wait_until(lambda: ended(instance, run_id, dg.DagsterRunStatus.SUCCESS), 60, 0.02, what="the run's success")


def test_terminate_of_a_worker_that_ends_meanwhile_says_so(
    instance: dg.DagsterInstance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = launch_until_started(instance, tmp_path / "gate")

    def gone(pid: int, signum: int) -> None:
        raise ProcessLookupError(pid)

    with monkeypatch.context() as patched:
        patched.setattr(local.os, "kill", gone)  # the worker ends between the look-up and the signal
        assert not instance.run_launcher.terminate(run.run_id)
    (tmp_path / "gate").touch()
    wait_until(lambda: ended(instance, run.run_id, dg.DagsterRunStatus.SUCCESS), 60, 0.02, what="the run's success")


def test_a_zombie_has_no_start_time() -> None:
    child = subprocess.Popen(["true"])
    try:
        stat = Path(f"/proc/{child.pid}/stat")
        wait_until(lambda: stat.read_text().rsplit(")", 1)[1].split()[0] == "Z", 30, 0.01, what="a zombie")
        assert process_start_time(child.pid) is None
    finally:
        child.wait()


class _RefusingForkserver:
    """A forkserver context whose first `refusals` workers fail to start, as against a dead
    forkserver's closed socket (the real race is exercised above; this one is deterministic)."""

    def __init__(self, refusals: int) -> None:
        self.refusals = refusals
        self.attempts = 0

    def Process(self, **kwargs: object) -> "_RefusingForkserver":
        return self

    def start(self) -> None:
        self.attempts += 1
        if self.attempts <= self.refusals:
            raise ConnectionRefusedError("forkserver gone")


def test_a_launch_tries_again_while_the_forkserver_is_replaced_then_gives_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local, "FORKSERVER_RETRY_PAUSE_S", 0)
    recovering = _RefusingForkserver(refusals=2)
    monkeypatch.setattr(local, "start_forkserver", lambda: recovering)
    assert local._fork("args", "run-1") is recovering and recovering.attempts == 3

    gone = _RefusingForkserver(refusals=10**6)
    monkeypatch.setattr(local, "start_forkserver", lambda: gone)
    monkeypatch.setattr(local, "FORKSERVER_RESTART_S", 0)
    with pytest.raises(ConnectionRefusedError):
        local._fork("args", "run-2")
