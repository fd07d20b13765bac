"""Shared fixtures: a PostgreSQL server with a fresh database per test, file/S3 object stores, and
the Dagster instance production runs on."""

from __future__ import annotations

import gc
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import dagster as dg
import pytest
from moto.server import ThreadedMotoServer

from hub_assets import cyclic_gc
from hub_assets.embedded_postgres import (
    create_scratch_database,
    drop_database,
    ensure_server,
    server_answers,
    with_database,
)
from hub_assets.index.run import apply_pool_limits
from hub_assets_tests.instance_home import InstanceHome, instance_dir
from hub_assets_tests.ports import free_port as free_port  # where tests written before ports.py look

MACHINE_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
EMBEDDED_PG_DIR = Path("~/.cache/hub_assets_test_pg")
FIXTURES_DIR = Path(__file__).parent / "fixtures"


def create_database(admin_url: str) -> str:
    return create_scratch_database(admin_url, "hubtest")


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    override = os.environ.get("HUB_TEST_PG_URL")
    if override:
        # An explicitly configured server that is down is a setup error, not a reason to test elsewhere.
        if not server_answers(override):
            pytest.fail(f"HUB_TEST_PG_URL={override} does not answer")
        return override
    if server_answers(MACHINE_PG_URL):
        return MACHINE_PG_URL
    # A fixed directory rather than a tmp dir: the server outlives the session, so the next one reuses it.
    data_dir = Path(os.environ.get("HUB_TEST_PG_DIR", EMBEDDED_PG_DIR)).expanduser()
    return with_database(ensure_server(data_dir), "postgres")


@pytest.fixture
def pg_url(pg_admin_url: str) -> Iterator[str]:
    name = create_database(pg_admin_url)
    try:
        yield with_database(pg_admin_url, name)
    finally:
        drop_database(pg_admin_url, name)


@pytest.fixture(scope="session")
def instance_home(pg_admin_url: str) -> Iterator[InstanceHome]:
    """A Dagster home with the project's dagster.yaml, its storage on a PostgreSQL database of its
    own. Making Dagster's schema takes about 1.5 s, emptying it 0.1 s: the tests share it, emptied
    for each (`dagster_instance`)."""
    name = create_database(pg_admin_url)
    try:
        with instance_dir() as directory:
            yield InstanceHome.create(Path(directory), with_database(pg_admin_url, name))
    finally:
        drop_database(pg_admin_url, name)


@pytest.fixture(scope="session")
def session_instance(instance_home: InstanceHome) -> Iterator[dg.DagsterInstance]:
    """The instance of `instance_home`, opened once (which makes the schema)."""
    with pytest.MonkeyPatch.context() as patch:
        for variable, value in instance_home.env().items():
            patch.setenv(variable, value)
        instance = instance_home.open()
    try:
        yield instance
    finally:
        instance.dispose()


@pytest.fixture
def dagster_instance(
    instance_home: InstanceHome, session_instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> dg.DagsterInstance:
    """The instance production runs on (hub_assets_tests/instance_home.py), empty: no runs, events,
    partitions or slots of an earlier test, and the pool limits `hub-assets` applies at start-up.
    Its variables stay exported for the test, so a `hub-assets` child opens this same instance."""
    for variable, value in instance_home.env().items():
        monkeypatch.setenv(variable, value)
    session_instance.wipe()
    apply_pool_limits(session_instance)
    return session_instance


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    # Port 0: the server binds a free port itself, so no other process can take it in between.
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    # A developer's profile or session token would otherwise override the fake credentials.
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    yield s3_endpoint


@pytest.fixture
def s3_store_url(s3_env: str) -> Iterator[str]:
    bucket = f"hubtest-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    yield f"s3://{bucket}/hub"


@pytest.fixture
def file_store_url(tmp_path: Path) -> Iterator[str]:
    yield (tmp_path / "store").resolve().as_uri()


@pytest.fixture(params=["file", "s3"], ids=["file", "s3"])
def store_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue(f"{request.param}_store_url")


@pytest.fixture
def fixture_bytes() -> Callable[[str], bytes]:
    def read(name: str) -> bytes:
        return (FIXTURES_DIR / name).read_bytes()

    return read


@pytest.fixture
def collector_off(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The cyclic collector off (no automatic collection moves objects between generations while
    a test looks for them) with nothing frozen, as a process starts; restored afterwards."""
    was = gc.isenabled()
    gc.disable()
    gc.unfreeze()
    monkeypatch.setattr(cyclic_gc, "_frozen", False)
    try:
        yield
    finally:
        gc.unfreeze()
        (gc.enable if was else gc.disable)()
