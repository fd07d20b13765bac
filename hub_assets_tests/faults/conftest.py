"""One pushed bundle on a fresh catalog, at a store root that is the same for every test of a kind,
so that a state can be compared with the state one uninterrupted run leaves (storage_uri holds the
root)."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

from hub_assets.catalog import Catalog
from hub_assets.embedded_postgres import with_database
from hub_assets.settings import DATABASE_URL, OBJECT_STORE_URL
from hub_assets.store import open_store
from hub_assets_tests.bundle.builders import History, build_history
from hub_assets_tests.conftest import create_database, drop_database
from hub_assets_tests.index.conftest import HubEnv, sha256_hex

from .state import State, state_of

REPO = "fault-repo"
BRANCH = "main"
# 305 objects (half zstd), 12 commits with delta snapshots.
HISTORY = build_history(12, 120, seed=7, branch=BRANCH)
# Small chunks, so that a bulk write is many INSERTs inside one transaction.
CHUNK_ROWS = 4


@dataclass
class Rig:
    """The test's catalog and store (HubEnv) with the bundle pushed. Every run of the test, the
    crash driver's too, goes to the test's `dagster_instance`, as `hub-assets index` runs share one."""

    hub: HubEnv
    partition_key: str
    database_url: str  # the catalog's, as HUB_DATABASE_URL
    store_url: str


def inline_ids(history: History) -> list[str]:
    return sorted(history.contents)[::3]


def push_style(hub: HubEnv, history: History) -> str:
    """Upload the bundle and register what a push registers before any index run (SPEC §6): here
    a third of the objects get inline rows (content_cache, storage_uri 'pending') and refs."""
    data = history.wire()
    key = hub.upload(REPO, data)
    ids = inline_ids(history)
    hub.catalog.add_inline_objects((oid, history.contents[oid]) for oid in ids)
    hub.catalog.add_object_refs(REPO, ids)
    hub.catalog.record_bundle(REPO, sha256_hex(data), len(data), BRANCH)
    return key


class Stores:
    """One store root per kind for the whole session, emptied before each use."""

    def __init__(self, file_root: Path) -> None:
        self._file_root = file_root
        self._bucket = f"faults-{uuid.uuid4().hex[:12]}"

    def fresh_url(self, kind: str) -> str:
        """The kind's root, empty. S3 needs the AWS_* variables of `s3_env` in place."""
        if kind == "file":
            shutil.rmtree(self._file_root, ignore_errors=True)
            return self._file_root.as_uri()
        s3 = boto3.resource("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
        bucket = s3.Bucket(self._bucket)
        if bucket.creation_date is None:
            bucket.create()
        bucket.objects.all().delete()
        return f"s3://{self._bucket}/hub"


@pytest.fixture(scope="session")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Stores:
    return Stores(tmp_path_factory.mktemp("faults") / "store")


@pytest.fixture(scope="session")
def reference_states() -> dict[str, State]:
    """The state one uninterrupted run leaves, per store kind, computed once."""
    return {}


RigFactory = Callable[[str], Rig]


@pytest.fixture
def open_rig(
    pg_admin_url: str,
    stores: Stores,
    reference_states: dict[str, State],
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> Iterator[RigFactory]:
    """Opens the rig of a store kind ('file' or 's3'); the first of a kind first computes the
    reference state on a database of its own."""
    with ExitStack() as stack:

        def enter_hub(kind: str) -> tuple[HubEnv, str, str]:
            if kind == "s3":
                request.getfixturevalue("s3_env")
            name = create_database(pg_admin_url)
            stack.callback(drop_database, pg_admin_url, name)
            url, store_url = with_database(pg_admin_url, name), stores.fresh_url(kind)
            monkeypatch.setenv(DATABASE_URL, url)
            monkeypatch.setenv(OBJECT_STORE_URL, store_url)
            store, catalog = open_store(store_url), Catalog.connect(url)
            stack.callback(store.close)
            stack.callback(catalog.engine.dispose)
            catalog.create_schema()
            hub = HubEnv(store=store, instance=request.getfixturevalue("dagster_instance"), catalog=catalog)
            return hub, url, store_url

        def open_one(kind: str) -> Rig:
            if kind not in reference_states:
                reference, _, _ = enter_hub(kind)
                reference.index_ok(push_style(reference, HISTORY))
                reference_states[kind] = state_of(reference)
            hub, url, store_url = enter_hub(kind)
            return Rig(hub, push_style(hub, HISTORY), url, store_url)

        yield open_one
