"""Every Dagster, dagster-celery and Celery internal that hub_assets/workers/launcher.py and local.py lean on, and
the Dagster behaviours its fault handling relies on, as they are in dagster 1.13 / dagster-celery
0.29 / celery 5. An upgrade that moves one fails here, by name; then re-read the module and the
source it mirrors."""

from __future__ import annotations

import inspect
import multiprocessing.process
import multiprocessing.util

import celery
import dagster as dg
import dagster_celery
from celery.app import trace
from dagster import _utils as dagster_utils
from dagster._cli import api as dagster_cli_api
from dagster._core.execution import api as execution_api
from dagster._core.launcher import CheckRunHealthResult, RunLauncher, WorkerStatus
from dagster._daemon.monitoring import run_monitoring
from dagster._grpc import impl as grpc_impl
from dagster._grpc.types import ExecuteRunArgs
from dagster._serdes import ConfigurableClass, pack_value
from dagster._utils import interrupts
from dagster_celery.launcher import CeleryRunLauncher
from dagster_celery.tags import DAGSTER_CELERY_TASK_ID_TAG
from dagster_celery.tasks import create_execute_job_task

from hub_assets.workers.launcher import ChosenRunLauncher, run_id_of_task


def test_versions_read_against() -> None:
    assert dagster_celery.__version__ == "0.29.27"
    assert celery.__version__.split(".")[0] == "5"


def test_the_launcher_base_class_is_what_chosen_run_launcher_delegates() -> None:
    assert RunLauncher.__abstractmethods__ == frozenset({"launch_run", "terminate"})
    overridden = ["launch_run", "terminate", "dispose", "join", "check_run_worker_health", "resume_run"]
    overridden += ["get_run_worker_debug_info", "register_instance"]
    for name in overridden:
        assert list(inspect.signature(getattr(ChosenRunLauncher, name)).parameters) == list(
            inspect.signature(getattr(RunLauncher, name)).parameters
        ), name
    assert {"supports_check_run_worker_health", "supports_resume_run"} <= set(vars(RunLauncher))
    assert issubclass(ChosenRunLauncher, ConfigurableClass)
    assert CheckRunHealthResult._fields[:2] == ("status", "msg")
    assert {status.name for status in WorkerStatus} >= {"RUNNING", "FAILED", "SUCCESS", "UNKNOWN"}


def test_celery_run_launcher_takes_what_celery_launcher_passes_and_keeps_its_app_in_celery() -> None:
    parameters = inspect.signature(CeleryRunLauncher.__init__).parameters
    assert {"default_queue", "broker", "backend", "config_source"} <= set(parameters)
    source = inspect.getsource(CeleryRunLauncher)
    assert "self.celery = make_app(" in source
    # Its health check says RUNNING for a STARTED task, whatever became of the worker: why
    # ChosenRunLauncher pings the worker holding it.
    assert 'if task_status == "STARTED":\n            return CheckRunHealthResult(WorkerStatus.RUNNING)' in source
    assert "run.tags[DAGSTER_CELERY_TASK_ID_TAG]" in source
    assert DAGSTER_CELERY_TASK_ID_TAG == "dagster-celery/task_id"


@dg.job
def a_job() -> None:
    pass


def test_the_run_task_carries_the_packed_run_arguments_the_worker_reads() -> None:
    source = inspect.getsource(create_execute_job_task)
    assert "def _execute_job(_self: Any, execute_job_args_packed: JsonSerializableValue)" in source
    assert "track_started=True" in source
    origin = dg.reconstructable(a_job).get_python_origin()
    packed = pack_value(ExecuteRunArgs(job_origin=origin, run_id="r-1", instance_ref=None))
    assert run_id_of_task({"execute_job_args_packed": packed}) == "r-1"


def test_celery_records_the_worker_with_a_started_task() -> None:
    """ChosenRunLauncher finds the worker to ping in a STARTED task's result."""
    assert "{'pid': pid, 'hostname': hostname}, STARTED" in inspect.getsource(trace)


def test_a_redelivered_run_task_does_not_run_a_finished_run_again() -> None:
    """With late acknowledgement, a dead worker's task comes back from the broker after the
    visibility timeout; Dagster ignores a run worker for a run that has finished (or, with run
    monitoring on, one that already started)."""
    source = inspect.getsource(execution_api.execute_run_iterator)
    assert "Ignoring a run worker that started after the run had already finished." in source
    assert "Ignoring a duplicate run that was started from somewhere other than" in source


def test_a_health_check_that_raises_is_logged_and_changes_nothing() -> None:
    """An unreachable broker makes the health check raise; it must not fail the run."""
    source = inspect.getsource(run_monitoring.execute_run_monitoring_iteration)
    assert "monitor_started_run(instance, workspace, run_record, logger)" in source
    assert 'log_message=f"Hit error while monitoring run' in source
    started = inspect.getsource(run_monitoring.monitor_started_run)
    assert "not in [WorkerStatus.RUNNING, WorkerStatus.SUCCESS]" in started


def test_a_forked_run_worker_does_what_dagster_api_execute_run_does() -> None:
    """local.execute_run mirrors `dagster api execute_run`: interrupt handlers, captured interrupts,
    the instance from the args' ref, then the command's body with the same arguments."""
    command = inspect.getsource(dagster_cli_api.execute_run_command.callback)
    assert "with capture_interrupts():" in command
    assert "args = deserialize_value(normalized_input_json, ExecuteRunArgs)" in command
    assert (
        "return_code = _execute_run_command_body(\n                args.run_id,\n                instance," in command
    )
    body = inspect.signature(dagster_cli_api._execute_run_command_body).parameters
    assert list(body) == ["run_id", "instance", "write_stream_fn", "set_exit_code_on_failure"]
    assert 'report_engine_event(\n        f"Started process for run (pid: {pid})."' in inspect.getsource(
        dagster_cli_api._execute_run_command_body
    )
    # SIGTERM is handled as SIGINT, which capture_interrupts turns into Dagster's interrupt.
    assert "signal.signal(signal.SIGTERM, signal.getsignal(signal.SIGINT))" in inspect.getsource(
        interrupts.setup_interrupt_handlers
    )
    assert set(ExecuteRunArgs._fields) >= {"job_origin", "run_id", "instance_ref", "set_exit_code_on_failure"}


def test_the_default_launcher_terminates_a_run_as_local_run_launcher_does() -> None:
    """Dagster's own path (code server) reports CANCELING, then interrupts the run worker with
    SIGINT: what LocalRunLauncher.terminate does directly."""
    assert "self._instance.report_run_canceling(run)" in inspect.getsource(dg.DefaultRunLauncher.terminate)
    assert "start_termination_thread(termination_event, done_event)" in inspect.getsource(grpc_impl._run_in_subprocess)
    assert "send_interrupt()" in inspect.getsource(dagster_utils._termination_handler)
    assert "os.kill(os.getpid(), signal.SIGINT)" in inspect.getsource(dagster_utils.send_interrupt)


def test_multiprocessing_joins_at_exit_the_children_it_lists() -> None:
    """LocalRunLauncher takes each worker off multiprocessing's list of children, which the exit
    hook joins: a stopping daemon must not wait for the runs it launched."""
    assert isinstance(multiprocessing.process._children, set)
    assert "_children.add(self)" in inspect.getsource(multiprocessing.process.BaseProcess.start)
    exit_hook = inspect.getsource(multiprocessing.util._exit_function)
    assert "for p in active_children():" in exit_hook and "p.join()" in exit_hook
