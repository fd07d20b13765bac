"""The run launcher dagster.yaml names: chosen by HUB_RUN_LAUNCHER, and a health check that notices
a Celery worker gone as a whole (its task still says STARTED). Against a Redis of the test's own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from hub_assets.devserver import check_host
from hub_assets.settings import worker_pool
from hub_assets.workers.launcher import ChosenRunLauncher, task_id_of_run
from hub_assets_tests.instance_home import InstanceHome

from .processes import RedisBroker


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisBroker]:
    broker = RedisBroker.start(tmp_path_factory.mktemp("broker"))
    yield broker
    broker.stop()


def celery_env(monkeypatch: pytest.MonkeyPatch, broker_url: str, lost_after_s: int) -> None:
    monkeypatch.setenv("HUB_RUN_LAUNCHER", "celery")
    monkeypatch.setenv("HUB_BROKER_URL", broker_url)
    monkeypatch.setenv("HUB_WORKER_LOST_AFTER_S", str(lost_after_s))


def test_the_code_server_launches_runs_when_told_to(
    instance_home: InstanceHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable, value in instance_home.env().items():
        monkeypatch.setenv(variable, value)
    monkeypatch.setenv("HUB_RUN_LAUNCHER", "code-server")
    with instance_home.open() as instance:
        launcher = instance.run_launcher
        assert isinstance(launcher, ChosenRunLauncher)
        assert isinstance(launcher.chosen, dg.DefaultRunLauncher)
        assert not launcher.supports_check_run_worker_health  # the code server watches its run workers


def test_celery_is_configured_for_long_runs_and_a_persistent_result_backend(
    instance_home: InstanceHome, broker: RedisBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable, value in instance_home.env().items():
        monkeypatch.setenv(variable, value)
    celery_env(monkeypatch, broker.url, 15)
    monkeypatch.setenv("HUB_WORKER_QUEUE", "hub-test")
    with instance_home.open() as instance:
        launcher = instance.run_launcher
        assert isinstance(launcher, ChosenRunLauncher)
        app = launcher.chosen.celery  # type: ignore[attr-defined]
        assert (app.conf.broker_url, app.conf.result_backend) == (broker.url, broker.url)
        assert (app.conf.task_acks_late, app.conf.worker_prefetch_multiplier) == (True, 1)
        assert launcher.chosen.default_queue == "hub-test"  # type: ignore[attr-defined]
        assert {"execute_job", "resume_job"} <= set(app.tasks)
        assert launcher.supports_check_run_worker_health and launcher.supports_resume_run


def started_run(launcher: ChosenRunLauncher, worker: str | None) -> dg.DagsterRun:
    """A run whose task the result backend holds as STARTED by `worker`, as Celery records it."""
    task_id = str(uuid.uuid4())
    app = launcher.chosen.celery  # type: ignore[attr-defined]
    app.backend.store_result(task_id, {"pid": 1, "hostname": worker} if worker else None, "STARTED")
    return dg.DagsterRun(job_name="index_bundle", run_id=str(uuid.uuid4()), tags={"dagster-celery/task_id": task_id})


def test_a_run_whose_worker_stays_silent_fails_after_the_grace(
    broker: RedisBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    celery_env(monkeypatch, broker.url, 0)
    launcher = ChosenRunLauncher()
    run = started_run(launcher, "hub-1@gone")
    assert task_id_of_run(run) == run.tags["dagster-celery/task_id"]
    health = launcher.check_run_worker_health(run)
    assert health.status.value == "FAILED"
    assert "hub-1@gone" in (health.msg or "")


def test_one_missed_ping_is_not_a_dead_worker(broker: RedisBroker, monkeypatch: pytest.MonkeyPatch) -> None:
    celery_env(monkeypatch, broker.url, 3600)
    launcher = ChosenRunLauncher()
    health = launcher.check_run_worker_health(started_run(launcher, "hub-2@gone"))
    assert health.status.value == "RUNNING" and "silent" in (health.msg or "")


def test_a_task_finished_or_failed_is_reported_as_celery_says(
    broker: RedisBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    celery_env(monkeypatch, broker.url, 3600)
    launcher = ChosenRunLauncher()
    app = launcher.chosen.celery  # type: ignore[attr-defined]
    run = started_run(launcher, "hub-3@gone")
    app.backend.mark_as_failure(task_id_of_run(run), RuntimeError("Worker exited prematurely: signal 9 (SIGKILL)"))
    assert launcher.check_run_worker_health(run).status.value == "FAILED"


def test_an_unreachable_broker_leaves_the_run_as_it_is(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Run monitoring logs a health check that raises and changes nothing; FAILED would fail the run."""
    broker = RedisBroker.start(tmp_path)
    celery_env(monkeypatch, broker.url, 0)
    launcher = ChosenRunLauncher()
    run = started_run(launcher, "hub-4@gone")
    broker.stop()
    with pytest.raises(Exception, match=r"(?i)connect"):
        launcher.check_run_worker_health(run)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_the_ui_may_listen_on_loopback(host: str) -> None:
    check_host(host, expose_unauthenticated_ui=False)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "no-such-host.invalid"])
def test_the_ui_beyond_loopback_needs_the_explicit_flag(host: str) -> None:
    with pytest.raises(ValueError, match="--expose-unauthenticated-ui"):
        check_host(host, expose_unauthenticated_ui=False)
    check_host(host, expose_unauthenticated_ui=True)


def test_settings_default_to_the_launcher_beside_the_daemon(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("HUB_RUN_LAUNCHER", "HUB_BROKER_URL", "HUB_WORKER_QUEUE"):
        monkeypatch.delenv(variable, raising=False)
    pool = worker_pool()
    assert (pool.launcher, pool.broker_url, pool.queue) == ("local", None, "hub-index")
