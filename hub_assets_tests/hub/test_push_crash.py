"""A push SIGKILLed at each step (hub/push.py): during validation or before its commit point it leaves
nothing visible, and the next push of the same bytes succeeds; after its commit point it leaves an
accepted push that the sweep completes. Leftovers in quarantine are removed by age."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pytest

from hub_assets.hub import Hub, push, sweep
from hub_assets.sample import SampleInfo, SampleSpec, write_sample
from hub_assets.settings import DATABASE_URL, OBJECT_STORE_URL
from hub_assets.store import partition_key, upload_key
from hub_assets.store.layout import QUARANTINE, UPLOADS
from hub_assets_tests.faults.state import partial_writes
from hub_assets_tests.index.conftest import UploadEnv, catalog_digest, instance_dir
from hub_assets_tests.index.test_sensor import requested, tick

from .conftest import Indexer

REPO_ROOT = Path(__file__).resolve().parents[2]
DRIVER = "hub_assets_tests.hub.push_driver"
REPO = "crash-repo"
# ~23 MB: more than one 16 MiB S3 part, so the killed upload is a multipart upload under way.
LARGE = SampleSpec(commits=500, seed=11)
SMALL = SampleSpec(commits=3, files=40, seed=11)
KILL_READ = 18  # MiB read, past the first part
HOUR = timedelta(hours=1)


@functools.cache
def large_bundle(directory: Path) -> SampleInfo:
    return write_sample(directory / "large.bundle", LARGE)


@pytest.fixture(scope="session")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> SampleInfo:
    info = large_bundle(tmp_path_factory.mktemp("crash-bundle"))
    assert info.size_bytes > 17 * 1024 * 1024
    return info


@pytest.fixture
def sensor_env(hub: Hub, store_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[UploadEnv]:
    """The upload sensor over the hub's store and catalog, on a Dagster instance of its own."""
    monkeypatch.setenv(OBJECT_STORE_URL, store_url)
    monkeypatch.setenv(DATABASE_URL, hub.catalog.engine.url.render_as_string(hide_password=False))
    with instance_dir() as home, dg.instance_for_test(temp_dir=home) as instance:
        yield UploadEnv(hub.store, instance)


def killed_push(hub: Hub, bundle: SampleInfo, kill: str) -> None:
    """`bundle` pushed by a child process on the hub's catalog and store, killed at `kill`."""
    command = [sys.executable, "-m", DRIVER, "--kill", kill, str(bundle.path), REPO, "main"]
    env = {
        **os.environ,
        DATABASE_URL: hub.catalog.engine.url.render_as_string(hide_password=False),
        OBJECT_STORE_URL: hub.store.url,
    }
    done = subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == -signal.SIGKILL, f"rc {done.returncode}, not killed:\n{done.stderr[-3000:]}"


def digest(hub: Hub) -> str:
    return catalog_digest(hub.catalog, hub.store)


def uploads(hub: Hub) -> list[str]:
    return [item.key for item in hub.store.list(UPLOADS)]


def quarantined(hub: Hub) -> list[str]:
    return [item.key for item in hub.store.list(QUARANTINE)]


@pytest.mark.parametrize("store_url", ["file", "s3"], indirect=True)
def test_killed_while_validating_leaves_nothing_and_the_same_push_then_succeeds(
    hub: Hub, sensor_env: UploadEnv, bundle: SampleInfo
) -> None:
    before = digest(hub)

    killed_push(hub, bundle, f"read:{KILL_READ}")

    assert digest(hub) == before  # catalog, branches, bundles, uploads, quarantine keys, objects
    assert partial_writes(hub.store, QUARANTINE) == 1  # a temp file, or a multipart upload under way
    assert requested(tick(sensor_env, None)) == []
    # Dropped at once: a file store sees that the dead writer's lock is gone; moto dates every
    # multipart upload 2010, so it is past any grace period.
    assert sweep(hub, HOUR).partial_writes == 1
    assert partial_writes(hub.store, QUARANTINE) == 0 and digest(hub) == before

    with bundle.path.open("rb") as stream:
        result = push(hub, REPO, "main", stream)
    assert result.head_commit_id == bundle.head_commit_id
    assert uploads(hub) == [upload_key(partition_key(REPO, bundle.bundle_key))]
    assert quarantined(hub) == [] and partial_writes(hub.store, QUARANTINE) == 0
    assert requested(tick(sensor_env, None)) == [result.partition_key]


def test_killed_before_the_commit_point_leaves_a_quarantine_key_the_sweep_removes_by_age(
    file_hub: Hub, bundle: SampleInfo
) -> None:
    hub = file_hub
    before = digest(hub)

    killed_push(hub, bundle, "landed")

    (leftover,) = quarantined(hub)
    assert leftover.startswith(f"{QUARANTINE}{REPO}/")
    assert uploads(hub) == [] and hub.catalog.branch_head(REPO, "main") is None and hub.catalog.bundle_rows() == []
    assert sweep(hub, HOUR).discarded == []  # young: it may be a live push's
    assert sweep(hub, timedelta(0)).discarded == [leftover]
    assert digest(hub) == before


@pytest.fixture(scope="session")
def small_bundle(tmp_path_factory: pytest.TempPathFactory) -> SampleInfo:
    """Under the inline limit: its quarantine write runs alongside the commit point."""
    info = write_sample(tmp_path_factory.mktemp("crash-small") / "small.bundle", SMALL)
    assert info.size_bytes < 4 * 1024 * 1024
    return info


@pytest.mark.parametrize("size", ["large", "small"])
def test_killed_after_the_commit_point_is_completed_by_the_sweep(
    file_hub: Hub, file_index: Indexer, size: str, request: pytest.FixtureRequest
) -> None:
    hub = file_hub
    bundle: SampleInfo = request.getfixturevalue("bundle" if size == "large" else "small_bundle")
    pushed = partition_key(REPO, bundle.bundle_key)

    killed_push(hub, bundle, "accepted")

    # Accepted: the branch moved and the bundle is recorded, but the sensor has nothing to see yet.
    assert hub.catalog.branch_head(REPO, "main") == bundle.head_commit_id
    (row,) = hub.catalog.bundle_rows(REPO)
    (pending,) = quarantined(hub)
    assert (row.status, row.stats) == ("pushed", {"pending_upload": pending})
    assert uploads(hub) == []

    report = sweep(hub, HOUR)

    assert report.published == [pushed] and report.discarded == []
    assert uploads(hub) == [upload_key(pushed)] and quarantined(hub) == []
    assert hub.store.get(upload_key(pushed)) == bundle.path.read_bytes()
    (row,) = hub.catalog.bundle_rows(REPO)
    assert (row.status, row.stats) == ("pushed", {})  # as a push that was never killed
    assert sweep(hub, timedelta(0)).published == []
    file_index(pushed)
    assert hub.catalog.bundle_rows(REPO)[0].status == "indexed"


def test_the_sweep_never_takes_a_live_pushs_quarantine(file_hub: Hub, bundle: SampleInfo) -> None:
    """A push whose bytes are still streaming: its partial write keeps being written, so it is
    never older than the grace period, and the sweep leaves it be."""
    hub = file_hub
    with hub.store.writer(f"{QUARANTINE}{REPO}/live") as live:
        live.write(b"first bytes of a push under way")
        assert sweep(hub, timedelta(seconds=60)).partial_writes == 0
        live.write(b"more")
        live.commit()
    assert hub.store.get(f"{QUARANTINE}{REPO}/live").endswith(b"more")
    os.utime(hub.store.root / QUARANTINE / REPO / "live", (0, 0))  # long ago, and no push names it
    assert sweep(hub, timedelta(seconds=60)).discarded == [f"{QUARANTINE}{REPO}/live"]
