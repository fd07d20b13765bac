"""The instance storage of dagster.yaml: one bounded pool per process, carried to every process that
rebuilds the instance, disposed with it, surviving a PostgreSQL restart, schema probes sent once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster._core.instance.ref import InstanceRef
from dagster._serdes import deserialize_value, serialize_value
from sqlalchemy import event
from sqlalchemy.pool import QueuePool

from hub_assets.instance import storage as instance_storage
from hub_assets.instance.storage import (
    PartitionSightings,
    PooledEventLogStorage,
    PooledPostgresStorage,
    PooledRunStorage,
    PooledScheduleStorage,
    PoolSettings,
)
from hub_assets_tests.pg_activity import open_sessions, settled_activity
from hub_assets_tests.polling import wait_until
from hub_assets_tests.private_postgres import PrivatePostgres, private_postgres

from .conftest import admin_conninfo, database_name, open_project_instance, storage_url

PARTITIONS = "bundles"
SESSION_END_TIMEOUT_S = 10


def _storage_calls(instance: dg.DagsterInstance, rounds: int = 10) -> None:
    """What a run asks of each storage, `rounds` times."""
    instance.add_dynamic_partitions(PARTITIONS, ["r/a", "r/b"])
    for _ in range(rounds):
        assert instance.has_dynamic_partition(PARTITIONS, "r/a")
        assert instance.get_runs(limit=5) == []
        assert instance.event_log_storage.supports_asset_checks
        instance.run_storage.get_cursor_values({"probe"})
        instance.schedule_storage.all_instigator_state()


def _engines(instance: dg.DagsterInstance) -> list[sa.Engine]:
    storages = [instance.run_storage, instance.event_log_storage, instance.schedule_storage]
    return [storage._engine for storage in storages]  # type: ignore[attr-defined]


def test_every_process_rebuilding_the_instance_gets_the_pooled_storage(project_instance: dg.DagsterInstance) -> None:
    """A run worker, the daemon and the webserver rebuild the instance from its serialized ref."""
    sent = serialize_value(project_instance.get_ref())
    with dg.DagsterInstance.from_ref(deserialize_value(sent, InstanceRef)) as rebuilt:
        assert isinstance(rebuilt.run_storage, PooledRunStorage)
        assert isinstance(rebuilt.event_log_storage, PooledEventLogStorage)
        assert isinstance(rebuilt.schedule_storage, PooledScheduleStorage)
        engines = _engines(rebuilt)
        assert all(engine is engines[0] for engine in engines), "one engine per process, not one per storage"
        assert isinstance(engines[0].pool, QueuePool)
        assert rebuilt.run_storage._shared.pool == PoolSettings(size=4, max_overflow=6)  # dagster.yaml's


def test_a_process_worth_of_storage_calls_opens_one_session(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dagster-postgres alone opens a session per call: 50+ here."""
    admin, database = admin_conninfo(pg_url), database_name(pg_url)
    open_project_instance(tmp_path / "first", pg_url, monkeypatch).dispose()  # creates the tables
    before = settled_activity(admin, database)
    with open_project_instance(tmp_path / "second", pg_url, monkeypatch) as instance:
        _storage_calls(instance)
    assert (settled_activity(admin, database) - before).sessions == 1


def test_an_instance_built_again_in_a_process_opens_no_session_until_used(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The code server builds an instance for every tick of a sensor with resources and uses none:
    looking the tables up again each time cost a session per tick (one a second, issue 13)."""
    admin, database = admin_conninfo(pg_url), database_name(pg_url)
    open_project_instance(tmp_path / "first", pg_url, monkeypatch).dispose()  # creates the tables
    before = settled_activity(admin, database)
    for tick in range(5):
        open_project_instance(tmp_path / f"tick{tick}", pg_url, monkeypatch).dispose()
    assert (settled_activity(admin, database) - before).sessions == 0


def test_the_pool_is_bounded_by_its_settings(pg_url: str) -> None:
    storage = PooledPostgresStorage(storage_url(pg_url), pool=PoolSettings(size=1, max_overflow=1, timeout_s=1))
    engine = storage.engine.engine
    try:
        with engine.connect(), engine.connect(), pytest.raises(sa.exc.TimeoutError):
            engine.connect()
    finally:
        storage.run_storage.dispose()


@pytest.fixture
def statements(project_instance: dg.DagsterInstance) -> Iterator[list[str]]:
    sent: list[str] = []

    def record(conn: object, cursor: object, statement: str, *args: object) -> None:
        sent.append(statement)

    engine = _engines(project_instance)[0]
    event.listen(engine, "before_cursor_execute", record)
    yield sent
    event.remove(engine, "before_cursor_execute", record)


def _probes(statements: list[str]) -> list[str]:
    return [s for s in statements if "pg_catalog.pg_class" in s or "pg_catalog.pg_attribute" in s]


def _schema_questions(instance: dg.DagsterInstance, partition: str = "r/a") -> None:
    assert instance.has_dynamic_partition(PARTITIONS, partition)  # asks has_table("dynamic_partitions")
    assert instance.event_log_storage.supports_asset_checks  # has_table("asset_check_executions")
    assert instance.run_storage.has_run_stats_index_cols()  # column reflection of `runs`
    assert instance.run_storage.has_backfill_id_column()
    assert instance.schedule_storage.has_instigators_table()


def test_a_schema_probe_that_found_its_table_is_not_sent_again(
    project_instance: dg.DagsterInstance, statements: list[str]
) -> None:
    rounds = [f"r/{n}" for n in range(5)]
    project_instance.add_dynamic_partitions(PARTITIONS, rounds)
    _schema_questions(project_instance, rounds[0])
    assert _probes(statements), "the first answers come from the database"
    statements.clear()
    for partition in rounds[1:]:
        _schema_questions(project_instance, partition)
    assert statements, "the questions still reach the database (dynamic_partitions)"
    assert _probes(statements) == []


def _partition_lookups(statements: list[str]) -> int:
    return sum("FROM dynamic_partitions" in s for s in statements)


def test_a_partition_found_present_is_not_looked_up_again_for_a_while(
    project_instance: dg.DagsterInstance, statements: list[str]
) -> None:
    """A run asks for its own partition 4 times per step."""
    project_instance.add_dynamic_partitions(PARTITIONS, ["r/a"])
    statements.clear()
    for _ in range(5):
        assert project_instance.has_dynamic_partition(PARTITIONS, "r/a")
    assert _partition_lookups(statements) == 1


def test_a_partition_found_present_is_looked_up_again_once_the_while_is_over(
    project_instance: dg.DagsterInstance, statements: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("hub_assets.instance.storage.PARTITION_SEEN_S", 0.0)
    project_instance.add_dynamic_partitions(PARTITIONS, ["r/a"])
    statements.clear()
    for _ in range(3):
        assert project_instance.has_dynamic_partition(PARTITIONS, "r/a")
    assert _partition_lookups(statements) == 3


def test_a_partition_absent_is_looked_up_every_time_and_seen_once_added_elsewhere(
    project_instance: dg.DagsterInstance, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert not project_instance.has_dynamic_partition(PARTITIONS, "r/new")
    with open_project_instance(tmp_path / "other", pg_url, monkeypatch) as other:
        other.add_dynamic_partitions(PARTITIONS, ["r/new"])
    assert project_instance.has_dynamic_partition(PARTITIONS, "r/new")


def test_a_partition_deleted_through_the_instance_is_absent_at_once(project_instance: dg.DagsterInstance) -> None:
    project_instance.add_dynamic_partitions(PARTITIONS, ["r/a", "r/b"])
    assert project_instance.has_dynamic_partition(PARTITIONS, "r/a")
    assert project_instance.has_dynamic_partition(PARTITIONS, "r/b")
    project_instance.delete_dynamic_partition(PARTITIONS, "r/a")
    assert not project_instance.has_dynamic_partition(PARTITIONS, "r/a")
    project_instance.wipe()
    assert not project_instance.has_dynamic_partition(PARTITIONS, "r/b")


def test_sightings_past_the_bound_drop_only_the_expired() -> None:
    """A daemon asks about every bundle pushed: past the bound, what the window no longer covers goes."""
    sightings = PartitionSightings(most=3)
    for moment in range(10):
        sightings.record((PARTITIONS, f"r/{moment}"), now=moment, generation=0, forget_before=moment - 0.5)
    assert len(sightings) <= 3
    assert sightings.seen_since((PARTITIONS, "r/9"), 8.5)
    assert not sightings.seen_since((PARTITIONS, "r/0"), -1)


def test_sightings_within_the_window_are_kept_past_the_bound() -> None:
    sightings = PartitionSightings(most=3)
    for n in range(5):
        sightings.record((PARTITIONS, f"r/{n}"), now=10.0, generation=0, forget_before=5.0)
    assert all(sightings.seen_since((PARTITIONS, f"r/{n}"), 5.0) for n in range(5))
    assert not sightings.seen_since((PARTITIONS, "r/0"), 10.0), "a sighting covers the moments before it"


def test_a_look_up_overtaken_by_a_deletion_records_nothing() -> None:
    """A thread that read the row before another deleted it must not keep it for the window."""
    sightings = PartitionSightings(most=3)
    generation = sightings.generation()
    sightings.forget((PARTITIONS, "r/b"))  # any deletion: the look-up cannot tell which row went
    sightings.record((PARTITIONS, "r/a"), now=1.0, generation=generation, forget_before=0.0)
    assert not sightings.seen_since((PARTITIONS, "r/a"), 0.0)
    sightings.record((PARTITIONS, "r/a"), now=1.0, generation=sightings.generation(), forget_before=0.0)
    assert sightings.seen_since((PARTITIONS, "r/a"), 0.0)
    sightings.forget()
    assert not sightings.seen_since((PARTITIONS, "r/a"), 0.0)


def test_partition_look_ups_from_many_threads_query_once_and_see_a_deletion(
    project_instance: dg.DagsterInstance, statements: list[str]
) -> None:
    """The threaded executor's steps share the instance."""
    project_instance.add_dynamic_partitions(PARTITIONS, ["r/a"])
    assert project_instance.has_dynamic_partition(PARTITIONS, "r/a")
    statements.clear()
    with ThreadPoolExecutor(max_workers=8) as threads:
        assert all(threads.map(lambda _: project_instance.has_dynamic_partition(PARTITIONS, "r/a"), range(64)))
        assert _partition_lookups(statements) == 0
        project_instance.delete_dynamic_partition(PARTITIONS, "r/a")
        assert not any(threads.map(lambda _: project_instance.has_dynamic_partition(PARTITIONS, "r/a"), range(8)))


def test_an_event_is_stored_in_one_statement_without_a_notify(
    project_instance: dg.DagsterInstance, statements: list[str]
) -> None:
    """SqlEventLogStorage's store_event, on PostgreSQL: the INSERT returns the id the asset's own
    rows are written with."""
    project_instance.report_runless_asset_event(dg.AssetMaterialization("blobs"))
    assert not [s for s in statements if "NOTIFY" in s]
    inserts = [s for s in statements if s.startswith("INSERT INTO event_logs")]
    assert len(inserts) == 1 and "RETURNING event_logs.id" in inserts[0]
    latest = project_instance.get_latest_materialization_event(dg.AssetKey("blobs"))
    assert latest is not None
    [record] = project_instance.fetch_materializations(dg.AssetKey("blobs"), limit=5).records
    assert record.event_log_entry == latest


def test_a_schema_probe_that_found_nothing_asks_again(
    project_instance: dg.DagsterInstance, statements: list[str]
) -> None:
    """A table a migration may add later is looked for again."""
    for _ in range(3):
        assert not project_instance.event_log_storage.has_table("not_migrated_yet")
    assert len(_probes(statements)) == 3


def test_disposing_the_instance_ends_its_sessions(project_instance: dg.DagsterInstance, pg_url: str) -> None:
    admin, database = admin_conninfo(pg_url), database_name(pg_url)
    _storage_calls(project_instance, rounds=1)
    assert open_sessions(admin, database) >= 1
    project_instance.dispose()
    wait_until(lambda: open_sessions(admin, database) == 0, SESSION_END_TIMEOUT_S, what="the pooled sessions to end")


def test_webserver_settings_replace_the_pool_and_close_the_one_replaced(
    project_instance: dg.DagsterInstance, pg_url: str
) -> None:
    """dagster-webserver calls optimize_for_webserver on each storage (its --db-* flags)."""
    admin, database = admin_conninfo(pg_url), database_name(pg_url)
    _storage_calls(project_instance, rounds=1)
    before = _engines(project_instance)[0]
    project_instance.optimize_for_webserver(statement_timeout=15000, pool_recycle=3600, max_overflow=20)
    wait_until(
        lambda: open_sessions(admin, database) == 0, SESSION_END_TIMEOUT_S, what="the old pool's sessions to end"
    )
    engines = _engines(project_instance)
    assert engines[0] is not before and all(engine is engines[0] for engine in engines)
    assert isinstance(engines[0].pool, QueuePool)
    with project_instance.run_storage.connect() as conn:
        assert conn.execute(sa.text("SHOW statement_timeout")).scalar_one() == "15s"
    _storage_calls(project_instance, rounds=1)
    assert open_sessions(admin, database) == 1


@pytest.fixture(scope="module")
def own_server() -> Iterator[PrivatePostgres]:
    try:
        with private_postgres() as server:
            yield server
    except LookupError as missing:
        pytest.skip(str(missing))


def test_a_postgres_restart_is_survived_without_a_failed_call(
    own_server: PrivatePostgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pooled connections the restart ended are replaced before a statement is sent on them."""
    pg_url = f"postgresql+psycopg://postgres@127.0.0.1:{own_server.port}/postgres"
    with open_project_instance(tmp_path, pg_url, monkeypatch) as instance:
        _storage_calls(instance, rounds=1)
        own_server.restart()
        _storage_calls(instance, rounds=1)


CLAIMERS = 8
ROUNDS = 20


def test_one_pool_slot_goes_to_exactly_one_of_several_claiming_at_once(dagster_instance: dg.DagsterInstance) -> None:
    """Claims on connections of their own, released together, as steps of runs on different
    workers are: under a limit of 1, exactly one takes the slot each time."""
    storage = dagster_instance.event_log_storage
    barrier = threading.Barrier(CLAIMERS)

    def claim(key: str, n: int) -> str:
        barrier.wait(timeout=30)
        return storage._claim_concurrency_slot(key, f"run-{n}", "object_blobs").value

    with ThreadPoolExecutor(max_workers=CLAIMERS) as claimers:
        for round_ in range(ROUNDS):
            key = f"race-{round_}"
            storage.set_concurrency_slots(key, 1)
            outcomes = list(claimers.map(lambda n, key=key: claim(key, n), range(CLAIMERS)))
            assert sorted(outcomes) == ["BLOCKED"] * (CLAIMERS - 1) + ["CLAIMED"], (round_, outcomes)


class _Clock:
    """time.monotonic for the storage module, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


def test_a_step_refused_a_slot_asks_again_after_a_quarter_of_its_wait(
    dagster_instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = _Clock()
    monkeypatch.setattr(instance_storage, "time", clock)
    storage = dagster_instance.event_log_storage
    storage.set_concurrency_slots("recheck", 1)
    assert storage.claim_concurrency_slot("recheck", "run-a", "object_blobs").is_claimed

    def refused_then_asked_again_after(waited_s: float) -> float | None:
        clock.now += waited_s
        status = storage.claim_concurrency_slot("recheck", "run-b", "object_blobs")
        assert not status.is_claimed
        return status.sleep_interval

    assert refused_then_asked_again_after(0) == instance_storage.CLAIM_RECHECK_MIN_S
    assert refused_then_asked_again_after(2) == pytest.approx(0.5)
    assert refused_then_asked_again_after(1000) == instance_storage.CLAIM_RECHECK_MAX_S
    storage.free_concurrency_slot_for_step("run-a", "object_blobs")
    assert storage.claim_concurrency_slot("recheck", "run-b", "object_blobs").is_claimed
    # Claimed, its wait is forgotten: refused again later, it starts from the shortest interval.
    storage.free_concurrency_slot_for_step("run-b", "object_blobs")
    assert storage.claim_concurrency_slot("recheck", "run-c", "object_blobs").is_claimed
    assert refused_then_asked_again_after(0) == instance_storage.CLAIM_RECHECK_MIN_S
    # A run that ends with its claim still pending gives it up, and its wait with it.
    storage.free_concurrency_slot_for_step("run-b", "object_blobs")
    assert refused_then_asked_again_after(100) == instance_storage.CLAIM_RECHECK_MIN_S


def test_a_storage_that_found_no_pool_limit_column_does_not_ask_again(
    dagster_instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As upstream's cached_property: a no is kept by the storage that found it (a blocked step
    reads the pool limits at every recheck), a yes by the whole process."""
    asked: list[bool] = []

    def probe(storage: object) -> bool:
        asked.append(answer)
        return answer

    monkeypatch.setattr(instance_storage.PooledEventLogStorage, "_pool_limit_col_probe", probe)
    answer = False
    with dg.DagsterInstance.from_ref(dagster_instance.get_ref()) as instance:
        assert not instance.event_log_storage.has_default_pool_limit_col
        assert not instance.event_log_storage.has_default_pool_limit_col
    assert asked == [False]
    answer = True
    with dg.DagsterInstance.from_ref(dagster_instance.get_ref()) as instance:
        assert instance.event_log_storage.has_default_pool_limit_col  # another storage asks again
    assert asked == [False, True]
