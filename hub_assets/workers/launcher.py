"""Where the daemon launches index runs, chosen by configuration (`HUB_RUN_LAUNCHER`):

- `local` (the default): a run worker forked beside the daemon from a process that has imported
  the code location once (local.py; what `hub-assets dev` needs: no broker);
- `code-server`: Dagster's DefaultRunLauncher, a new run worker process started by the daemon's
  code server for each run (it imports everything again, and picks up a reloaded code location);
- `celery`: dagster-celery's CeleryRunLauncher. Each run is one Celery task that a warm
  `hub-assets worker` executes whole, in its own process, so the run's steps share one decoded
  bundle and no process starts per run.

dagster.yaml names `ChosenRunLauncher` once; every process that rebuilds the instance gets the
launcher the environment chooses. On top of CeleryRunLauncher, the health check that run
monitoring calls also notices a worker that died as a whole (SIGKILL, a lost machine): Celery
still reports such a task STARTED, so the worker holding it is asked to answer, and a run whose
worker stayed silent for `HUB_WORKER_LOST_AFTER_S` is reported failed (then retried by
run_retries as a new run, which a live worker takes).

This module and local.py are the ones of hub_assets/workers that lean on Dagster and dagster-celery internals
(the launcher base class and its health-check types, ConfigurableClass, the packed arguments of a
run task, dagster-celery's launcher, tasks and tags): hub_assets_tests/workers/test_dagster_internals.py
pins every one, so an upgrade fails there.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from celery import Celery
from dagster import DagsterRun, DefaultRunLauncher
from dagster._core.launcher import (
    CheckRunHealthResult,
    LaunchRunContext,
    ResumeRunContext,
    RunLauncher,
    WorkerStatus,
)
from dagster._grpc.types import ExecuteRunArgs
from dagster._serdes import ConfigurableClass, ConfigurableClassData, unpack_value
from dagster_celery.launcher import CeleryRunLauncher
from dagster_celery.tags import DAGSTER_CELERY_TASK_ID_TAG
from dagster_celery.tasks import create_execute_job_task, create_resume_job_task

from ..settings import WorkerPool, worker_pool
from .local import LocalRunLauncher

# Seconds the health check waits for the worker holding a run to answer a ping.
PING_TIMEOUT_S = 2.0


def celery_settings() -> dict[str, Any]:
    """The Celery configuration the daemon and every worker share (on top of dagster-celery's)."""
    return {
        # A task is acknowledged when it finishes, and a worker holds no task beyond those it runs:
        # a busy worker never sits on a run another one could take.
        "task_acks_late": True,
        "worker_prefetch_multiplier": 1,
        # A run goes on through a broker restart; Celery 6 would cancel it by default.
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "broker_connection_retry_on_startup": True,
        # A launch waits out a broker restart (about a minute) instead of failing the run.
        "task_publish_retry_policy": {"max_retries": 60, "interval_start": 0, "interval_step": 0.5, "interval_max": 1},
        # The worker's name and pid with a task's state, for the health check and the UI.
        "result_extended": True,
    }


def celery_launcher(pool: WorkerPool) -> CeleryRunLauncher:
    """dagster-celery's launcher on the pool's broker, backend and queue; its `.celery` app is
    also what `hub-assets worker` serves."""
    launcher = CeleryRunLauncher(
        default_queue=pool.queue,
        broker=pool.broker_url,
        backend=pool.result_backend_url,
        config_source=celery_settings(),
    )
    register_run_tasks(launcher.celery)
    return launcher


def register_run_tasks(app: Celery) -> None:
    """The tasks a launched run arrives as (execute a run; resume one)."""
    create_execute_job_task(app)
    create_resume_job_task(app)


def run_id_of_task(kwargs: Mapping[str, Any]) -> str:
    """The id of the run a run task executes, from the task's keyword arguments."""
    return unpack_value(kwargs["execute_job_args_packed"], as_type=ExecuteRunArgs).run_id


def task_id_of_run(run: DagsterRun) -> str | None:
    return run.tags.get(DAGSTER_CELERY_TASK_ID_TAG)


def chosen_launcher(pool: WorkerPool) -> RunLauncher:
    if pool.launcher == "celery":
        return celery_launcher(pool)
    return LocalRunLauncher() if pool.launcher == "local" else DefaultRunLauncher()


class ChosenRunLauncher(RunLauncher, ConfigurableClass):
    """The run launcher `HUB_RUN_LAUNCHER` chooses (settings.worker_pool); no configuration of its own."""

    def __init__(self, inst_data: ConfigurableClassData | None = None) -> None:
        super().__init__()
        self._inst_data = inst_data
        self.pool = worker_pool()
        self._chosen: RunLauncher = chosen_launcher(self.pool)
        self._silent_since: dict[str, float] = {}

    @property
    def chosen(self) -> RunLauncher:
        return self._chosen

    @property
    def inst_data(self) -> ConfigurableClassData | None:
        return self._inst_data

    @classmethod
    def config_type(cls) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]) -> ChosenRunLauncher:
        return cls(inst_data=inst_data)

    def register_instance(self, instance: Any) -> None:
        super().register_instance(instance)
        self._chosen.register_instance(instance)

    def launch_run(self, context: LaunchRunContext) -> None:
        self._chosen.launch_run(context)

    def terminate(self, run_id: str) -> bool:
        return self._chosen.terminate(run_id)

    def dispose(self) -> None:
        self._chosen.dispose()

    def join(self, timeout: int = 30) -> None:
        self._chosen.join(timeout)

    @property
    def supports_check_run_worker_health(self) -> bool:
        return self._chosen.supports_check_run_worker_health

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        health = self._chosen.check_run_worker_health(run)
        if not isinstance(self._chosen, CeleryRunLauncher) or health.status != WorkerStatus.RUNNING:
            return health
        return self._worker_answers(self._chosen, run)

    def _worker_answers(self, launcher: CeleryRunLauncher, run: DagsterRun) -> CheckRunHealthResult:
        """RUNNING while the worker holding the run's task answers, FAILED once it has been silent
        for `worker_lost_after_s` (one missed ping may be a broker restart in progress). An
        unreachable broker raises: run monitoring logs it and leaves the run as it is."""
        started = launcher.celery.AsyncResult(task_id_of_run(run)).info
        worker = started.get("hostname") if isinstance(started, dict) else None
        if worker is None:
            return CheckRunHealthResult(WorkerStatus.RUNNING, "task started; its worker not known yet")
        if launcher.celery.control.ping(destination=[worker], timeout=PING_TIMEOUT_S):
            self._silent_since.pop(worker, None)
            return CheckRunHealthResult(WorkerStatus.RUNNING, run_worker_id=worker)
        now = time.monotonic()
        silent_for = now - self._silent_since.setdefault(worker, now)
        if silent_for < self.pool.worker_lost_after_s:
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"worker {worker} silent for {silent_for:.0f} s")
        return CheckRunHealthResult(
            WorkerStatus.FAILED, f"Celery worker {worker} holding the run has not answered for {silent_for:.0f} s"
        )

    def get_run_worker_debug_info(self, run: DagsterRun, include_container_logs: bool | None = True) -> str | None:
        return self._chosen.get_run_worker_debug_info(run, include_container_logs)

    @property
    def supports_resume_run(self) -> bool:
        return self._chosen.supports_resume_run

    def resume_run(self, context: ResumeRunContext) -> None:
        self._chosen.resume_run(context)
