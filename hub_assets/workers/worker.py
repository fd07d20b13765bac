"""`hub-assets worker`: a Celery worker that executes index runs whole, on the hub's instance.

Runs arrive as dagster-celery's run task (launcher.py). Each pool process of the worker is forked
from one that has already imported the code location, so a run starts without a process start
or an import. Every run gets the worker's name and the pid that executed it as tags (`hub/worker`,
`hub/worker_pid`), and the worker logs one line per run it finishes.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
from celery import signals

from ..index.job import PARTITION_TAG
from ..settings import WorkerPool
from .launcher import celery_launcher, run_id_of_task

WORKER_TAG = "hub/worker"
WORKER_PID_TAG = "hub/worker_pid"

log = logging.getLogger("hub_assets.worker")


@dataclass
class RunReporter:
    """Tags each run with the worker executing it, and logs how each one ended."""

    started: dict[str, tuple[str, float]] = field(default_factory=dict)  # task id -> run id, start

    def connect(self) -> None:
        signals.task_prerun.connect(self.on_prerun, weak=False)
        signals.task_postrun.connect(self.on_postrun, weak=False)

    def on_prerun(self, task_id: str, task: Any, kwargs: dict[str, Any], **_: Any) -> None:
        run_id = run_id_of_task(kwargs)
        self.started[task_id] = (run_id, time.monotonic())
        with dg.DagsterInstance.get() as instance:
            instance.add_run_tags(run_id, {WORKER_TAG: task.request.hostname, WORKER_PID_TAG: str(os.getpid())})

    def on_postrun(self, task_id: str, **_: Any) -> None:
        run_id, start = self.started.pop(task_id)
        with dg.DagsterInstance.get() as instance:
            run = instance.get_run_by_id(run_id)
        partition = run.tags.get(PARTITION_TAG, "-") if run else "-"
        outcome = "succeeded" if run is not None and run.status == dg.DagsterRunStatus.SUCCESS else "failed"
        log.info("%s run %s %s in %.2f s", partition, run_id, outcome, time.monotonic() - start)


def run_worker(pool: WorkerPool, concurrency: int, queue: str) -> int:
    """Serve `queue` with `concurrency` pool processes until SIGTERM (Celery's warm shutdown: runs
    in progress finish first) or SIGQUIT."""
    import hub_assets.definitions  # noqa: F401  (imported once here, inherited by every pool process)

    app = celery_launcher(pool).celery
    # A run's end state reaches the result backend even across a broker restart (the daemon's
    # health checks, by contrast, fail fast and are asked again at the next poll).
    app.conf.update(result_backend_always_retry=True, result_backend_max_retries=60)
    RunReporter().connect()
    app.worker_main(
        [
            "worker",
            f"--concurrency={concurrency}",
            f"--queues={queue}",
            # Unique per worker process, so that the health check's ping reaches this one.
            f"--hostname=hub-{os.getpid()}@%h",
            "--loglevel=INFO",
            # Prefork, never solo: the pool's parent answers pings while runs execute.
            "--pool=prefork",
            "--without-gossip",
            "--without-mingle",
        ]
    )
    return 0
