"""The upload sensor (SPEC §7): each new bundle becomes one partition and one run, once."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from hub_assets.catalog import Catalog
from hub_assets.hub import Hub
from hub_assets.hub.repos import create_repo
from hub_assets.index.sensor import BRANCH_TAG, REPO_NAME_TAG, REPO_TAG
from hub_assets.index.upload_cursor import LOOKBACK, UploadCursor, UploadPlan, plan_uploads
from hub_assets.settings import DATABASE_URL
from hub_assets.store import StoredKey
from hub_assets_tests.bundle.builders import build_history

from .conftest import UploadEnv


def tick(hub: UploadEnv, cursor: str | None, log_handler: logging.Handler | None = None) -> dg.SensorResult:
    """One evaluation of the sensor as the daemon makes it, from a fresh context (as after a restart),
    with the resources it requires from the code location (the store, and the catalog for names).
    The tick's log (a logger of its own, not in the logging tree) also goes to `log_handler`."""
    sensor = hub.defs.resolve_sensor_def("upload_sensor")
    resources = {key: hub.defs.resources[key] for key in sensor.required_resource_keys}
    with dg.build_sensor_context(instance=hub.instance, resources=resources, cursor=cursor) as context:
        if log_handler:
            context.log.addHandler(log_handler)
        result = sensor(context)
    assert isinstance(result, dg.SensorResult)
    return result


def requested(result: dg.SensorResult) -> list[str]:
    return [request.partition_key or "" for request in result.run_requests or []]


def upload_bundles(hub: UploadEnv, repos: list[str]) -> list[str]:
    return [hub.upload(repo, build_history(1, 2, seed=seed).wire()) for seed, repo in enumerate(repos)]


def test_new_uploads_become_partitions_and_runs_once(upload_env: UploadEnv) -> None:
    keys = upload_bundles(upload_env, ["repo-a", "repo-b", "repo-a"])

    first = tick(upload_env, None)

    assert sorted(requested(first)) == sorted(keys)
    for request in first.run_requests or []:
        assert request.run_key == request.partition_key
        assert request.tags[REPO_TAG] == (request.partition_key or "").split("/")[0]
    (add,) = first.dynamic_partitions_requests or []
    assert isinstance(add, dg.AddDynamicPartitionsRequest)
    assert (add.partitions_def_name, list(add.partition_keys)) == ("bundles", requested(first))
    assert first.cursor

    again = tick(upload_env, first.cursor)
    assert requested(again) == [] and not again.dynamic_partitions_requests
    assert again.cursor
    assert requested(tick(upload_env, again.cursor)) == [], "a restart from the saved cursor requests nothing"
    assert requested(tick(upload_env, first.cursor)) == []

    (fourth,) = upload_bundles(upload_env, ["repo-c"])
    assert requested(tick(upload_env, again.cursor)) == [fourth]


@pytest.mark.parametrize("garbage", ["uploads/not-a-key", "uploads/repo/xyz", "uploads/a/b/" + "0" * 64])
def test_garbage_upload_key_skipped_with_warning(
    upload_env: UploadEnv, caplog: pytest.LogCaptureFixture, garbage: str
) -> None:
    upload_env.store.put(garbage, b"not a bundle")
    (good,) = upload_bundles(upload_env, ["repo-a"])

    result = tick(upload_env, None, log_handler=caplog.handler)

    assert requested(result) == [good]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(garbage in message for message in warnings), warnings
    assert requested(tick(upload_env, result.cursor)) == []


def test_runs_of_a_named_repo_are_tagged_with_its_name_and_branch(upload_env: UploadEnv) -> None:
    hub = Hub(Catalog.connect(os.environ[DATABASE_URL]), upload_env.store)
    hub.catalog.create_schema()
    repo = create_repo(hub, "alice", "demo", "midi")
    named = upload_env.upload(repo.repo_id, build_history(1, 2, seed=1).wire())
    hub.catalog.record_bundle(repo.repo_id, named.split("/")[1], 1, branch="main")
    unnamed = upload_env.upload("repo-b", build_history(1, 2, seed=2).wire())

    tags = {request.partition_key: request.tags for request in tick(upload_env, None).run_requests or []}

    assert tags[named] == {REPO_TAG: repo.repo_id, REPO_NAME_TAG: "alice/demo", BRANCH_TAG: "main"}
    assert tags[unnamed] == {REPO_TAG: "repo-b"}
    hub.catalog.engine.dispose()


# --- the cursor, without a store ----------------------------------------------------------------

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
BUNDLE_KEYS = {name: name * 64 for name in "abcdef"}


def upload(repo: str, bundle: str, at: datetime) -> StoredKey:
    return StoredKey(f"uploads/{repo}/{BUNDLE_KEYS[bundle]}", 100, at)


def partition(item: StoredKey) -> str:
    return item.key.removeprefix("uploads/")


def plan(listing: list[StoredKey], cursor: UploadCursor) -> UploadPlan:
    # The listing order of a store is by key, never by time.
    return plan_uploads(sorted(listing, key=lambda i: i.key), cursor)


def test_two_uploads_in_one_second_both_picked() -> None:
    late = upload("repo-m", "b", T0)
    first = plan([late], UploadCursor())
    assert first.partition_keys == [partition(late)]

    early_key = upload("repo-a", "c", T0)  # same second, sorts before the cursor's key
    after = upload("repo-z", "d", T0 + timedelta(milliseconds=300))
    second = plan([early_key, late, after], first.cursor)

    assert second.partition_keys == [partition(early_key), partition(after)]
    assert plan([early_key, late, after], second.cursor).partition_keys == []


def test_upload_behind_the_look_back_window_not_requested_again() -> None:
    old = upload("repo-a", "a", T0)
    first = plan([old], UploadCursor())
    assert first.partition_keys == [partition(old)]

    new = upload("repo-b", "b", T0 + LOOKBACK + timedelta(minutes=1))
    second = plan([old, new], first.cursor)
    assert second.partition_keys == [partition(new)]
    assert old.key not in second.cursor.recent, "the cursor forgets keys behind its window"

    restarted = UploadCursor.parse(second.cursor.dump())
    assert plan([old, new], restarted).partition_keys == []


def test_invalid_keys_rejected_not_requested() -> None:
    good = upload("repo-a", "a", T0)
    bad = [StoredKey(key, 1, T0) for key in ("uploads/not-a-key", "uploads/repo/xyz", "uploads/a..b/" + "e" * 64)]
    result = plan([good, *bad], UploadCursor())
    assert result.partition_keys == [partition(good)]
    assert sorted(result.rejected_keys) == sorted(item.key for item in bad)
    assert plan([good, *bad], result.cursor).rejected_keys == [], "a rejected key is warned about once"
