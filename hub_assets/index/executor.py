"""An executor that runs a run's independent steps on threads of the run's one process.

Dagster's in-process executor runs steps one at a time, so a bundle's object puts (store I/O)
and its snapshot writes (PostgreSQL parsing manifests on the other core) could not overlap,
though neither depends on the other. Its multiprocess executor overlaps them at ~1.5 s per
step and decodes the bundle in each. This one is the in-process executor's loop with the step
bodies moved onto a thread pool: steps are claimed, retried, pooled and recorded by Dagster's
own ActiveExecution, and every event is handled on the orchestrating thread, in order per step.

It uses Dagster internals (`execute_plan`, `ActiveExecution`) as they are in 1.13; an upgrade
must run hub_assets_tests/index/test_executor.py.
"""

import os
import queue
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field

import dagster as dg
from dagster._core.errors import DagsterExecutionInterruptedError
from dagster._core.events import DagsterEvent, EngineEventData
from dagster._core.execution.api import ExecuteRunWithPlanIterable
from dagster._core.execution.compute_logs import create_compute_log_file_key
from dagster._core.execution.context.system import (
    PlanExecutionContext,
    PlanOrchestrationContext,
    StepExecutionContext,
)
from dagster._core.execution.context_creation_job import PlanExecutionContextManager
from dagster._core.execution.plan.active import ActiveExecution
from dagster._core.execution.plan.execute_plan import _trigger_hook, dagster_event_sequence_for_step
from dagster._core.execution.plan.instance_concurrency_context import InstanceConcurrencyContext
from dagster._core.execution.plan.plan import ExecutionPlan
from dagster._core.execution.retries import RetryMode, get_retries_config
from dagster._core.executor.base import Executor
from dagster._core.executor.init import InitExecutorContext
from dagster._utils.interrupts import check_captured_interrupt

# How long the orchestrating thread waits for a step event before it looks again for steps
# that became runnable without one (a pool slot freed by another run, a retry's delay over).
_POLL_S = 0.2
_CHECK_DUE_PAUSE_S = 0.02


@dataclass
class _Running:
    context: StepExecutionContext
    events: list[DagsterEvent] = field(default_factory=list)


_DONE = object()


class ThreadedExecutor(Executor):
    def __init__(self, retries: RetryMode, max_concurrent: int) -> None:
        self._retries = retries
        self.max_concurrent = max_concurrent

    @property
    def retries(self) -> RetryMode:
        return self._retries

    def execute(self, plan_context: PlanOrchestrationContext, execution_plan: ExecutionPlan) -> Iterator[DagsterEvent]:
        steps = execution_plan.step_keys_to_execute
        yield DagsterEvent.engine_event(
            plan_context,
            f"Executing steps on up to {self.max_concurrent} threads in process (pid: {os.getpid()})",
            event_specific_data=EngineEventData.in_process(os.getpid(), steps),
        )
        yield from ExecuteRunWithPlanIterable(
            execution_plan=plan_context.execution_plan,
            iterator=self._iterate,
            execution_context_manager=PlanExecutionContextManager(
                job=plan_context.job,
                retry_mode=plan_context.retry_mode,
                execution_plan=plan_context.execution_plan,
                run_config=plan_context.run_config,
                dagster_run=plan_context.dagster_run,
                instance=plan_context.instance,
                raise_on_error=plan_context.raise_on_error,
                output_capture=plan_context.output_capture,
            ),
        )

    def _iterate(self, job_context: PlanExecutionContext, execution_plan: ExecutionPlan) -> Iterator[DagsterEvent]:
        with InstanceConcurrencyContext(job_context.instance, job_context.dagster_run) as concurrency:
            yield from self._run_steps(job_context, execution_plan, concurrency)

    def _run_steps(
        self, job_context: PlanExecutionContext, plan: ExecutionPlan, concurrency: InstanceConcurrencyContext
    ) -> Iterator[DagsterEvent]:
        logs = job_context.instance.compute_log_manager
        step_keys = [step.key for step in plan.get_steps_to_execute_in_topo_order()]
        events: queue.Queue[tuple[str, object]] = queue.Queue()
        running: dict[str, _Running] = {}
        # Steps whose thread reported their outcome but has not ended yet. No step is handed out
        # meanwhile: a retry of one of them must not start before its first attempt is closed.
        finishing: set[str] = set()
        with (
            plan.start(
                retry_mode=job_context.retry_mode,
                max_concurrent=self.max_concurrent,
                instance_concurrency_context=concurrency,
            ) as active,
            ExitStack() as capture,
            ThreadPoolExecutor(max_workers=self.max_concurrent, thread_name_prefix="step") as pool,
        ):
            log_key = logs.build_log_key_for_run(job_context.run_id, create_compute_log_file_key())
            log_context = capture.enter_context(logs.capture_logs(log_key))
            yield DagsterEvent.capture_logs(job_context, step_keys, log_key, log_context)
            try:
                while not active.is_complete:
                    yield from active.concurrency_event_iterator(job_context)
                    if not running and check_captured_interrupt():
                        # Termination asked (a signal reaches only this thread, and a step thread
                        # cannot be interrupted): the steps under way have ended, start no more.
                        raise DagsterExecutionInterruptedError("Execution was interrupted")
                    starting = not finishing and not check_captured_interrupt()
                    ready = active.get_steps_to_execute(limit=self.max_concurrent - len(running)) if starting else []
                    for step in ready:
                        step_context = job_context.for_step(step, active.get_known_state())
                        running[step.key] = _Running(step_context)
                        pool.submit(_run_step, step.key, step_context, events)
                    if not running:
                        # Nothing can start yet: a retry waits out its delay, or a step waits for
                        # its next pool-slot check. A check due now reads as <= 0: pause briefly
                        # rather than spin this thread.
                        interval = active.sleep_interval()
                        time.sleep(interval if interval > 0 else _CHECK_DUE_PAUSE_S)
                        continue
                    try:
                        step_key, item = events.get(timeout=_POLL_S)
                    except queue.Empty:
                        continue
                    if isinstance(item, BaseException):
                        running.pop(step_key)
                        raise item
                    if item is _DONE:
                        finishing.discard(step_key)
                        done = running.pop(step_key)
                        active.verify_complete(job_context, step_key)
                        for event in active.plan_events_iterator(job_context):
                            done.events.append(event)
                            yield event
                        yield from _trigger_hook(done.context, done.events)
                        continue
                    assert isinstance(item, DagsterEvent)
                    running[step_key].events.append(item)
                    yield item
                    active.handle_event(item)
                    if item.is_step_success or item.is_step_failure or item.is_step_up_for_retry:
                        finishing.add(step_key)
            except BaseException:
                # Leaving the loop while other steps run would leave their pool slots claimed for
                # ever: Dagster frees a slot when it handles the step's end event.
                _settle(active, running, events)
                raise


def _settle(active: ActiveExecution, running: dict[str, _Running], events: "queue.Queue[tuple[str, object]]") -> None:
    """After an error on the orchestrating thread: start nothing, wait for the steps under way,
    and hand their events to Dagster so it frees their slots. Their own errors are secondary to
    the one being raised."""
    while running:
        step_key, item = events.get()
        if item is _DONE or isinstance(item, BaseException):
            running.pop(step_key, None)
        elif isinstance(item, DagsterEvent):
            with suppress(Exception):
                active.handle_event(item)


def _run_step(step_key: str, context: StepExecutionContext, events: "queue.Queue[tuple[str, object]]") -> None:
    """A step's body on a pool thread; its events go to the orchestrating thread in order."""
    try:
        for event in dagster_event_sequence_for_step(context):
            events.put((step_key, event))
    except BaseException:  # re-raised on the orchestrating thread, as the in-process executor would
        events.put((step_key, sys.exc_info()[1]))
        return
    events.put((step_key, _DONE))


@dg.executor(
    name="threaded",
    config_schema={
        "retries": get_retries_config(),
        "max_concurrent": dg.Field(int, default_value=4, description="Steps running at once in the run."),
    },
)
def threaded_executor(init_context: InitExecutorContext) -> ThreadedExecutor:
    config = init_context.executor_config
    return ThreadedExecutor(RetryMode.from_config(config["retries"]), config["max_concurrent"])
