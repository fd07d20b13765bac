"""Every Dagster and dagster-postgres internal that hub_assets/instance/ (storage.py, compute_logs.py)
leans on, as it is in dagster 1.13 / dagster-postgres 0.29. An upgrade that moves one of them fails
here, by name, and nowhere else; then re-read the module and the source it mirrors."""

from __future__ import annotations

import ast
import functools
import inspect
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster
import dagster_postgres
import dagster_webserver.cli
import pytest
from dagster._core.execution.compute_logs import execute_posix_tail, mirror_stream_to_file
from dagster._core.execution.plan import instance_concurrency_context
from dagster._core.instance.instance import DagsterInstance
from dagster._core.instance.methods.storage_methods import StorageMethods
from dagster._core.instance.ref import configurable_storage_data
from dagster._core.storage.base_storage import DagsterStorage
from dagster._core.storage.compute_log_manager import CapturedLogContext, ComputeIOType
from dagster._core.storage.event_log import sql_event_log
from dagster._core.storage.event_log.schema import ConcurrencySlotsTable
from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage
from dagster._core.storage.local_compute_log_manager import IO_TYPE_EXTENSION, LocalComputeLogManager
from dagster._serdes import ConfigurableClass
from dagster._utils.concurrency import ConcurrencyClaimStatus, ConcurrencySlotStatus
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage
from dagster_postgres.event_log import event_log as postgres_event_log
from dagster_postgres.utils import create_pg_engine, pg_config, set_pg_statement_timeout
from sqlalchemy.pool import NullPool

from hub_assets.instance.compute_logs import PipedComputeLogManager
from hub_assets.instance.storage import (
    RUN_PROBES,
    TABLES_CHECKED_AT_START,
    PooledEventLogStorage,
    PooledPostgresStorage,
    PooledRunStorage,
    PooledScheduleStorage,
)

from .conftest import storage_url

STORAGES = [PostgresRunStorage, PostgresEventLogStorage, PostgresScheduleStorage]


def test_versions_read_against() -> None:
    assert dagster_postgres.__version__ == "0.29.27"


@pytest.mark.parametrize("storage", STORAGES, ids=lambda s: s.__name__)
def test_storages_still_open_a_connection_per_call_on_an_engine_in_engine(storage: type, pg_url: str) -> None:
    """Why the module exists (NullPool), and where it puts its engine (`_engine`). Should
    dagster-postgres pool by itself one day, the module may go."""
    built = storage(storage_url(pg_url), should_autocreate_tables=False)
    assert isinstance(built._engine.pool, NullPool)


@pytest.mark.parametrize("storage", STORAGES, ids=lambda s: s.__name__)
def test_storage_constructors_take_what_the_pooled_ones_pass(storage: type) -> None:
    parameters = inspect.signature(storage.__init__).parameters
    assert list(parameters)[:3] == ["self", "postgres_url", "should_autocreate_tables"]
    assert "token_provider" in parameters


def test_the_tables_each_constructor_checks_are_the_ones_mirrored() -> None:
    """Skipping the constructors' own table checks is safe only while these are what they look for."""
    sources = {storage: inspect.getsource(storage.__init__) for storage in STORAGES}
    assert '"runs" not in table_names' in sources[PostgresRunStorage]
    assert '"instance_info" not in table_names' in sources[PostgresRunStorage]
    assert '"event_logs" not in table_names' in sources[PostgresEventLogStorage]
    assert '"schedules" not in table_names and "jobs" not in table_names' in sources[PostgresScheduleStorage]
    assert TABLES_CHECKED_AT_START == (("runs",), ("instance_info",), ("event_logs",), ("schedules", "jobs"))


@pytest.mark.parametrize(
    ("pooled", "probes"),
    [
        (
            PooledRunStorage,
            [
                "has_run_stats_index_cols",
                "has_backfill_id_column",
                "has_bulk_actions_selector_cols",
                "has_bulk_action_job_name_column",
                "has_backfill_tags_table",
            ],
        ),
        (PooledEventLogStorage, ["has_table", "has_asset_key_col"]),
        (PooledScheduleStorage, ["has_instigators_table", "has_secondary_index_table", "has_built_index"]),
    ],
    ids=lambda p: p.__name__ if isinstance(p, type) else "",
)
def test_schema_probes_cached_are_plain_methods_of_the_storages(pooled: type, probes: list[str]) -> None:
    base = pooled.__mro__[2]
    for name in probes:
        assert inspect.isfunction(getattr(base, name)), f"{base.__name__}.{name} is no longer a plain method"
        assert getattr(pooled, name).__wrapped__ is getattr(base, name)


def test_the_pool_limit_column_probe_is_a_cached_property_of_the_event_log_storage() -> None:
    """PooledEventLogStorage keeps its answer per process; upstream per storage."""
    upstream = SqlEventLogStorage.__dict__["has_default_pool_limit_col"]
    assert isinstance(upstream, functools.cached_property)
    assert PostgresEventLogStorage.has_default_pool_limit_col is upstream
    assert PooledEventLogStorage._pool_limit_col_probe.__wrapped__ is upstream.func
    assert isinstance(PooledEventLogStorage.__dict__["has_default_pool_limit_col"], property)


def test_every_probe_learn_schema_asks_is_one_the_storages_remember() -> None:
    storages = {"run_storage": PooledRunStorage, "event_log_storage": PooledEventLogStorage}
    for storage, probe, arguments in RUN_PROBES:
        pooled = storages[storage]
        remembered = pooled._pool_limit_col_probe if arguments is None else getattr(pooled, probe)
        assert hasattr(remembered, "__wrapped__"), f"{storage}.{probe} is asked but not remembered"


def test_probes_the_cache_covers_go_through_has_table() -> None:
    """supports_asset_checks and the dynamic-partition calls ask has_table, which the cache covers."""
    assert "self.has_table(" in inspect.getsource(SqlEventLogStorage.supports_asset_checks.fget)
    assert 'self.has_table("dynamic_partitions")' in inspect.getsource(SqlEventLogStorage._check_partitions_table)


def test_webserver_and_instance_call_optimize_for_webserver_as_overridden() -> None:
    expected = ["self", "statement_timeout", "pool_recycle", "max_overflow"]
    for storage in STORAGES:
        assert list(inspect.signature(storage.optimize_for_webserver).parameters) == expected
    assert "optimize_for_webserver(" in inspect.getsource(StorageMethods.optimize_for_webserver)
    assert "instance.optimize_for_webserver(" in inspect.getsource(dagster_webserver.cli)


def test_instance_dispose_reaches_the_storages_that_dispose_the_engine() -> None:
    source = inspect.getsource(StorageMethods.dispose)
    assert "self._run_storage.dispose()" in source and "self._event_storage.dispose()" in source


def test_custom_storage_is_carried_in_the_instance_ref() -> None:
    module, klass = PooledPostgresStorage.__module__, PooledPostgresStorage.__name__
    storage_data = configurable_storage_data({"custom": {"module": module, "class": klass, "config": {}}}, {})[0]
    assert (storage_data.module_name, storage_data.class_name) == (module, klass)


def test_storage_base_classes_and_helpers_used() -> None:
    assert issubclass(PooledPostgresStorage, DagsterStorage) and issubclass(PooledPostgresStorage, ConfigurableClass)
    assert {"postgres_url", "postgres_db", "should_autocreate_tables"} <= set(pg_config())
    assert list(inspect.signature(create_pg_engine).parameters)[:2] == ["postgres_url", "token_provider"]
    assert list(inspect.signature(set_pg_statement_timeout).parameters) == ["conn", "millis"]


def test_the_slot_claim_overridden_still_locks_on_an_autocommit_connection() -> None:
    """Why PooledEventLogStorage claims a pool slot itself, and the table and statuses it uses."""
    upstream = inspect.getsource(SqlEventLogStorage._claim_concurrency_slot)
    assert "with self.index_connection() as conn:" in upstream
    assert ".with_for_update(skip_locked=True)" in upstream
    assert inspect.getsource(SqlEventLogStorage.claim_concurrency_slot).count("self._claim_concurrency_slot(") == 1
    assert list(inspect.signature(SqlEventLogStorage._claim_concurrency_slot).parameters) == [
        "self",
        "concurrency_key",
        "run_id",
        "step_key",
    ]
    assert {"id", "concurrency_key", "run_id", "step_key", "deleted"} <= set(ConcurrencySlotsTable.c.keys())
    assert {status.name for status in ConcurrencySlotStatus} == {"BLOCKED", "CLAIMED"}
    assert "def index_transaction(self)" in inspect.getsource(PostgresEventLogStorage)


def test_partition_lookups_remembered_go_through_the_overridden_methods() -> None:
    """PooledEventLogStorage remembers a partition found present and forgets it when deleted or
    wiped: the instance must ask the event-log storage, through these methods and no others."""
    for name, parameters in {
        "has_dynamic_partition": ["self", "partitions_def_name", "partition_key"],
        "delete_dynamic_partition": ["self", "partitions_def_name", "partition_key"],
        "wipe": ["self"],
    }.items():
        assert list(inspect.signature(getattr(SqlEventLogStorage, name)).parameters) == parameters
        assert name not in vars(PostgresEventLogStorage), f"dagster-postgres overrides {name} now"
    instance_source = inspect.getsource(DagsterInstance)
    assert "self._event_storage.has_dynamic_partition(" in instance_source
    assert "self._event_storage.delete_dynamic_partition(" in instance_source


# dagster-postgres's store_event reads the new row's id from an explicit RETURNING (run_id for the
# NOTIFY); SqlEventLogStorage's reads it from the one SQLAlchemy adds to a PostgreSQL INSERT.
POSTGRES_INSERT = "\n".join(
    [
        "with self._connect() as conn:",
        "    result = conn.execute(insert_event_statement.returning("
        "SqlEventLogStorageTable.c.run_id, SqlEventLogStorageTable.c.id))",
        "    res = result.fetchone()",
        "    result.close()",
        "    event_id = int(res[1])",
    ]
)
SQL_INSERT = """run_id = event.run_id
event_id = None
with self.run_connection(run_id) as conn, db_result(conn, insert_event_statement) as result:
    event_id = result.inserted_primary_key[0]"""


def _body_without(method: Callable[..., Any], leave_out: str) -> tuple[str, list[str]]:
    """The method's code, normalized (no docstring, comments or layout), without the statements
    holding `leave_out`; and those statements."""
    function = ast.parse(textwrap.dedent(inspect.getsource(method))).body[0]
    assert isinstance(function, ast.FunctionDef)
    left_out: list[str] = []

    class LeaveOut(ast.NodeTransformer):
        def visit_Expr(self, node: ast.Expr) -> ast.Expr | None:
            if leave_out in ast.unparse(node):
                left_out.append(ast.unparse(node))
                return None
            return node

    statements = [LeaveOut().visit(statement) for statement in function.body]
    if ast.get_docstring(function) is not None:
        statements = statements[1:]
    return ast.unparse(statements), left_out


def test_the_event_stored_is_dagster_postgres_s_but_for_the_notify() -> None:
    """PooledEventLogStorage.store_event is SqlEventLogStorage's, which dagster-postgres's is but
    for the NOTIFY that nothing in dagster or dagster-postgres listens for (event watchers poll the
    table) and how the INSERT's id is read. Any other change to either fails here."""
    assert PooledEventLogStorage.store_event is SqlEventLogStorage.store_event
    postgres, notify = _body_without(PostgresEventLogStorage.store_event, "NOTIFY")
    assert len(notify) == 1 and notify[0].startswith("conn.execute(db.text(f'NOTIFY {CHANNEL_NAME}"), notify
    ours, _ = _body_without(SqlEventLogStorage.store_event, "NOTIFY")
    assert postgres.count(POSTGRES_INSERT) == 1
    assert postgres.replace(POSTGRES_INSERT, SQL_INSERT) == ours
    # The names both bodies use are the same objects.
    for name in ("ASSET_EVENTS", "ASSET_CHECK_EVENTS", "EventLogEntry", "DagsterInvariantViolationError"):
        assert vars(sql_event_log)[name] is vars(postgres_event_log)[name], name
    assert _body_without(PostgresEventLogStorage.run_connection, "NOTIFY")[0] == "return self._connect()"
    for module in (dagster_postgres, dagster):
        root = Path(module.__file__).parent
        listens = [p for p in root.rglob("*.py") if "LISTEN " in p.read_text(errors="replace")]
        assert listens == [], listens


def test_run_logs_are_captured_where_and_as_upstream_captures_them() -> None:
    """PipedComputeLogManager writes upstream's files (the UI reads them by upstream's methods) in
    place of upstream's capture, which still starts processes: a tail and a watcher per stream."""
    assert issubclass(PipedComputeLogManager, LocalComputeLogManager)
    upstream = inspect.getsource(LocalComputeLogManager.capture_logs)
    for step in (
        "self.get_captured_local_path(log_key, IO_TYPE_EXTENSION[ComputeIOType.STDOUT])",
        "self.get_captured_local_path(log_key, IO_TYPE_EXTENSION[ComputeIOType.STDERR])",
        "mirror_stream_to_file(sys.stdout, outpath), mirror_stream_to_file(sys.stderr, errpath)",
        "yield CapturedLogContext(log_key)",
        "touch_file(self.complete_artifact_path(log_key))",
    ):
        assert step in upstream, step
    assert IO_TYPE_EXTENSION == {ComputeIOType.STDOUT: "out", ComputeIOType.STDERR: "err"}
    assert next(iter(inspect.signature(CapturedLogContext).parameters)) == "log_key"
    assert "cls(" not in inspect.getsource(LocalComputeLogManager.from_config_value), "upstream builds subclasses now"
    assert "tail_to_stream(filepath, stream)" in inspect.getsource(mirror_stream_to_file)
    assert inspect.getsource(execute_posix_tail).count("subprocess.Popen(") == 2


def test_a_claim_status_with_a_sleep_interval_sets_when_a_blocked_step_asks_again() -> None:
    """PooledEventLogStorage.claim_concurrency_slot shortens the wait of a step refused a slot by
    returning the status with a sleep interval, which Dagster's run-side context then uses."""
    assert instance_concurrency_context._calculate_timeout_interval(0.05, 7) == 0.05
    assert instance_concurrency_context._calculate_timeout_interval(None, 0) == 1
    source = inspect.getsource(instance_concurrency_context.InstanceConcurrencyContext.claim)
    assert "claim_status.sleep_interval, self._pending_claim_counts[step_key]" in source
    assert "self._instance.event_log_storage.claim_concurrency_slot(" in source
    exit_source = inspect.getsource(instance_concurrency_context.InstanceConcurrencyContext.__exit__)
    assert "free_concurrency_slot_for_step(self._run_id, step_key)" in exit_source
    assert instance_concurrency_context.MAX_CONCURRENCY_CLAIM_BLOCKED_INTERVAL == 15
    assert "def with_sleep_interval(self, interval: float)" in inspect.getsource(ConcurrencyClaimStatus)
