"""Dagster's instance storage on PostgreSQL: dagster-postgres's run, event-log and schedule
storages over one bounded connection pool per process, with their schema probes answered once.

dagster-postgres 0.29 gives each storage a NullPool engine, so every storage call opens a new
PostgreSQL connection: one index run of a 3-commit bundle opened 21 connections in a CLI
process that had `optimize_for_webserver`'s pool, ~250 in a run worker the daemon launched,
where there is no pool at all. Half the statements of a run were schema probes (`has_table` per
dynamic-partition lookup and per check event, column reflection on every run event).

`dagster.yaml` names this class under `storage: custom:`; `instance.get_ref()` carries it to
every process that rebuilds the instance (daemon, webserver, code server, run workers, the CLI),
so each gets the same storage, built here:
- one QueuePool engine shared by the three storages (`pool:` in dagster.yaml bounds it), opened
  lazily and closed when the instance is disposed;
- a pooled connection that the server has closed (a PostgreSQL restart, an idle-session
  timeout) is replaced at checkout, before any statement is sent on it: the server's goodbye
  makes its socket readable, which a zero-timeout poll sees for ~1 µs instead of a ping's round
  trip (~40 µs here, on each of ~300 checkouts a run);
- a schema probe that found what it looked for keeps that answer for the life of the process
  (migrations add tables and columns; a probe that found nothing asks again next time), for
  every instance the process builds on that database; `learn_schema` asks a run's probes at once,
  so that processes forked afterwards (run workers) never ask them;
- tables are looked up once per process and database, on the pooled engine, instead of by each
  storage on a connection of its own; only a database missing one of them lets the storages
  create what they create. Once per process, not per instance: the code server builds an
  instance for every evaluation of a sensor with resources, and it is otherwise never used
  there, so a sensor ticking every second cost a session a second for that look-up alone.

- a pool slot is claimed in one transaction (upstream's row lock ends before its UPDATE, so two
  processes could take one slot: pools did not hold across Celery workers).
- a step refused a pool slot asks again after a quarter of the time it has waited (Dagster:
  after 1 s or more), so that runs side by side pass slots on as soon as they are freed;
- an event is stored without the NOTIFY nothing listens for, and a dynamic partition found
  present is not looked up again for a few seconds (issue 13: a run's fixed cost).

It leans on dagster-postgres internals (each storage's `_engine`, the probe methods, the tables
each storage's constructor checks, the slot claim and its table, what store_event writes, the
partition look-ups):
hub_assets_tests/instance/test_dagster_internals.py pins every one, so an upgrade fails there.
"""

from __future__ import annotations

import select
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import wraps
from typing import Any, TypeVar

import dagster as dg
import sqlalchemy as sa
from dagster._core.storage.base_storage import DagsterStorage
from dagster._core.storage.event_log.schema import ConcurrencySlotsTable
from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage
from dagster._serdes import ConfigurableClass, ConfigurableClassData
from dagster._utils.concurrency import ConcurrencyClaimStatus, ConcurrencySlotStatus
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage
from dagster_postgres.utils import (
    create_pg_engine,
    get_token_provider_from_config,
    pg_config,
    pg_url_from_config,
    set_pg_statement_timeout,
)
from sqlalchemy import event, exc
from sqlalchemy.pool import QueuePool

# The tables each storage's constructor looks for before it creates what is missing (dagster-postgres
# 0.29: runs, instance_info; event_logs; schedules or its old name, jobs). When every entry has one
# of its names present, none of them would create anything.
TABLES_CHECKED_AT_START = (("runs",), ("instance_info",), ("event_logs",), ("schedules", "jobs"))


@dataclass(frozen=True)
class PoolSettings:
    size: int = 4
    max_overflow: int = 6
    recycle_s: int = 3600
    timeout_s: int = 30


def _pool_config() -> dg.Field:
    defaults = PoolSettings()
    return dg.Field(
        {
            "size": dg.Field(dg.IntSource, default_value=defaults.size, description="Connections kept per process."),
            "max_overflow": dg.Field(
                dg.IntSource,
                default_value=defaults.max_overflow,
                description="Connections opened beyond `size` at busy moments, closed when returned.",
            ),
            "recycle_s": dg.Field(
                dg.IntSource, default_value=defaults.recycle_s, description="A connection older than this is replaced."
            ),
            "timeout_s": dg.Field(
                dg.IntSource, default_value=defaults.timeout_s, description="How long a caller waits for a connection."
            ),
        },
        is_required=False,
    )


def _replace_closed_connection(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """Pool checkout hook: an idle session has nothing to read unless the server ended it (it sends
    its FATAL notice and closes), so a readable socket means the connection is gone. Raising
    DisconnectionError makes the pool discard it and connect again."""
    if dbapi_connection.closed or select.select([dbapi_connection.fileno()], [], [], 0)[0]:
        raise exc.DisconnectionError("the server closed this pooled connection")


class SharedEngine:
    """The one pooled engine of a process's instance storage; the three storages point at it."""

    def __init__(self, postgres_url: str, token_provider: Any, pool: PoolSettings) -> None:
        self.postgres_url = postgres_url
        self.token_provider = token_provider
        self.pool = pool
        self._statement_timeout_ms: int | None = None
        self._storages: list[Any] = []
        self.engine = self._build()

    def _build(self) -> sa.Engine:
        engine = create_pg_engine(
            self.postgres_url,
            self.token_provider,
            isolation_level="AUTOCOMMIT",
            poolclass=QueuePool,
            pool_size=self.pool.size,
            max_overflow=self.pool.max_overflow,
            pool_recycle=self.pool.recycle_s,
            pool_timeout=self.pool.timeout_s,
        )
        event.listen(engine, "checkout", _replace_closed_connection)
        timeout = self._statement_timeout_ms
        if timeout is not None:
            event.listen(engine, "connect", lambda connection, _: set_pg_statement_timeout(connection, timeout))
        return engine

    def attach(self, storage: Any) -> None:
        # The storage's own engine is a NullPool one that never held a connection.
        storage._engine.dispose()
        storage._engine = self.engine
        self._storages.append(storage)

    def optimize_for_webserver(self, statement_timeout: int, pool_recycle: int, max_overflow: int) -> None:
        """What dagster-webserver asks of each storage (its --db-* flags): a statement timeout, and
        at least its overflow. The three storages ask in turn; the engine is rebuilt once, and the
        one it replaces is disposed, so no pooled session is stranded."""
        pool = replace(self.pool, recycle_s=pool_recycle, max_overflow=max(self.pool.max_overflow, max_overflow))
        if (pool, statement_timeout) == (self.pool, self._statement_timeout_ms):
            return
        self.pool, self._statement_timeout_ms = pool, statement_timeout
        replaced, self.engine = self.engine, self._build()
        for storage in self._storages:
            storage._engine = self.engine
        replaced.dispose()

    def dispose(self) -> None:
        self.engine.dispose()


_Probe = TypeVar("_Probe", bound=Callable[..., bool])


# The schema probes found present, by database URL, for the life of the process: every instance the
# process builds shares them (a code server builds one per sensor evaluation), and a process forked
# after learn_schema starts with them.
_schema_facts: dict[str, set[tuple[Any, ...]]] = {}


def remembers_yes(probe: _Probe) -> _Probe:
    """A schema probe that keeps a positive answer: a table or column that exists stays."""

    @wraps(probe)
    def cached(self: Any, *args: Any) -> bool:
        key = (probe.__qualname__, *args)
        if key in self._schema_present:
            return True
        present = bool(probe(self, *args))
        if present:
            self._schema_present.add(key)
        return present

    return cached  # type: ignore[return-value]


class _OnSharedEngine:
    """What the three storages add to dagster-postgres's: the shared engine, its disposal, and the
    process's schema facts found present in this database."""

    def __init__(self, shared: SharedEngine, create_tables: bool) -> None:
        self._schema_present = _schema_facts.setdefault(shared.postgres_url, set())
        super().__init__(shared.postgres_url, create_tables, token_provider=shared.token_provider)  # type: ignore[call-arg]
        self._shared = shared
        shared.attach(self)

    def optimize_for_webserver(self, statement_timeout: int, pool_recycle: int, max_overflow: int) -> None:
        self._shared.optimize_for_webserver(statement_timeout, pool_recycle, max_overflow)

    def dispose(self) -> None:
        super().dispose()  # type: ignore[misc]
        self._shared.dispose()


class PooledRunStorage(_OnSharedEngine, PostgresRunStorage):
    # Asked on every run event and every new run.
    has_run_stats_index_cols = remembers_yes(PostgresRunStorage.has_run_stats_index_cols)
    has_backfill_id_column = remembers_yes(PostgresRunStorage.has_backfill_id_column)
    has_bulk_actions_selector_cols = remembers_yes(PostgresRunStorage.has_bulk_actions_selector_cols)
    has_bulk_action_job_name_column = remembers_yes(PostgresRunStorage.has_bulk_action_job_name_column)
    has_backfill_tags_table = remembers_yes(PostgresRunStorage.has_backfill_tags_table)


# How long a dynamic partition found present is taken as present without asking again. A run asks
# 4 times per step for its own partition (24 queries in a 6-step index run: data-version inputs
# and output contexts, each checking a range's start and end); a partition deleted by another
# process is seen at most this late (one deleted through this process's instance at once).
PARTITION_SEEN_S = 5.0
# Past this many remembered partitions, the expired ones are dropped (a daemon sees every bundle).
_PARTITIONS_SEEN_MAX = 1024


class PartitionSightings:
    """When each dynamic partition was last found present, shared by the threads of a process
    (the threaded executor runs steps on one instance). A look-up that a deletion or a wipe
    overtook does not record its answer: it may have read the row before it went."""

    def __init__(self, most: int) -> None:
        self._most = most  # past this many, the sightings older than a look-up's window are dropped
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str], float] = {}  # (partitions definition, key) -> monotonic time
        self._forgettings = 0

    def seen_since(self, key: tuple[str, str], moment: float) -> bool:
        with self._lock:
            return self._seen.get(key, moment) > moment

    def generation(self) -> int:
        """What `record` is given back, taken before the look-up it records."""
        with self._lock:
            return self._forgettings

    def record(self, key: tuple[str, str], now: float, generation: int, forget_before: float) -> None:
        with self._lock:
            if generation != self._forgettings:
                return
            if len(self._seen) >= self._most:
                for old_key, seen in list(self._seen.items()):
                    if seen < forget_before:
                        del self._seen[old_key]
            self._seen[key] = now

    def forget(self, key: tuple[str, str] | None = None) -> None:
        """One partition, or all of them."""
        with self._lock:
            self._forgettings += 1
            if key is None:
                self._seen.clear()
            else:
                self._seen.pop(key, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._seen)


# A step refused a pool slot asks again after this share of the time it has waited so far, within
# these bounds (the upper one is Dagster's own ceiling). Dagster waits 1 s, 1.1 s, 1.21 s…: longer
# than a small index run's pooled steps (10-50 ms) take, so concurrent runs of small bundles spent
# most of their time waiting for slots freed long before (50 small pushes, 2026-12-02: 67 s with
# 4 runs at a time, 27 s one at a time on a Celery worker).
CLAIM_RECHECK_SHARE = 0.25
CLAIM_RECHECK_MIN_S = 0.05
CLAIM_RECHECK_MAX_S = 15.0


class PooledEventLogStorage(_OnSharedEngine, PostgresEventLogStorage):
    # has_dynamic_partition, supports_asset_checks and asset-event tags each ask has_table first.
    has_table = remembers_yes(PostgresEventLogStorage.has_table)
    has_asset_key_col = remembers_yes(PostgresEventLogStorage.has_asset_key_col)
    _pool_limit_col_probe = remembers_yes(PostgresEventLogStorage.has_default_pool_limit_col.func)

    @property
    def has_default_pool_limit_col(self) -> bool:
        """Upstream's probe, asked whenever pool limits are read (a blocked step's every recheck):
        upstream keeps its answer per storage (a cached_property), yes or no; here a yes is kept
        for the process, as the other probes', and a no for this storage, as upstream does."""
        if self._pool_limit_col is None:
            self._pool_limit_col = self._pool_limit_col_probe()
        return self._pool_limit_col

    def __init__(self, shared: SharedEngine, create_tables: bool) -> None:
        self._pool_limit_col: bool | None = None
        self._partitions_seen = PartitionSightings(_PARTITIONS_SEEN_MAX)
        self._blocked_since: dict[tuple[str, str], float] = {}  # (run id, step key) -> first refusal
        super().__init__(shared, create_tables)

    # dagster-postgres's store_event is SqlEventLogStorage's plus a NOTIFY: a statement per event
    # (56 of an index run's ~340) that no reader listens for since event watchers poll
    # (dagster-postgres keeps it for older webservers; every process here runs the pinned version).
    store_event = SqlEventLogStorage.store_event

    def has_dynamic_partition(self, partitions_def_name: str, partition_key: str) -> bool:
        key = (partitions_def_name, partition_key)
        now = time.monotonic()
        if self._partitions_seen.seen_since(key, now - PARTITION_SEEN_S):
            return True
        generation = self._partitions_seen.generation()
        present = super().has_dynamic_partition(partitions_def_name, partition_key)
        if present:
            self._partitions_seen.record(key, now, generation, forget_before=now - PARTITION_SEEN_S)
        return present

    def delete_dynamic_partition(self, partitions_def_name: str, partition_key: str) -> None:
        # Forgotten once the row is gone: a look-up that read it before then records nothing.
        try:
            super().delete_dynamic_partition(partitions_def_name, partition_key)
        finally:
            self._partitions_seen.forget((partitions_def_name, partition_key))

    def wipe(self) -> None:
        try:
            super().wipe()
        finally:
            self._partitions_seen.forget()

    def claim_concurrency_slot(
        self, concurrency_key: str, run_id: str, step_key: str, priority: int | None = None
    ) -> ConcurrencyClaimStatus:
        """Upstream's claim; a step refused a slot is told to ask again after a quarter of the time
        it has waited so far (CLAIM_RECHECK_*), not after Dagster's 1 s, 1.1 s, 1.21 s…"""
        status = super().claim_concurrency_slot(concurrency_key, run_id, step_key, priority)
        key = (run_id, step_key)
        if status.is_claimed:
            self._blocked_since.pop(key, None)
            return status
        now = time.monotonic()
        waited = now - self._blocked_since.setdefault(key, now)
        return status.with_sleep_interval(
            min(CLAIM_RECHECK_MAX_S, max(CLAIM_RECHECK_MIN_S, waited * CLAIM_RECHECK_SHARE))
        )

    def free_concurrency_slot_for_step(self, run_id: str, step_key: str) -> None:
        # Also how a run gives up a claim still pending when it ends.
        self._blocked_since.pop((run_id, step_key), None)
        super().free_concurrency_slot_for_step(run_id, step_key)

    def _claim_concurrency_slot(self, concurrency_key: str, run_id: str, step_key: str) -> ConcurrencySlotStatus:
        """A free slot row taken in one transaction. dagster-postgres selects it `FOR UPDATE SKIP
        LOCKED`, then updates it, on an autocommit connection: the row lock ends with the SELECT,
        so two processes claiming at once both took the one slot (observed: two Celery workers'
        object_blobs steps started within 1 ms under a limit of 1). Here the lock holds until the
        UPDATE commits: a second claimer skips the locked row and is blocked."""
        slots = ConcurrencySlotsTable
        free_slot = (
            sa.select(slots.c.id)
            .where(slots.c.concurrency_key == concurrency_key, slots.c.step_key.is_(None), slots.c.deleted.is_(False))
            .with_for_update(skip_locked=True)
            .limit(1)
        )
        with self.index_transaction() as conn:
            row = conn.execute(free_slot).fetchone()
            if row is None:
                return ConcurrencySlotStatus.BLOCKED
            conn.execute(slots.update().values(run_id=run_id, step_key=step_key).where(slots.c.id == row[0]))
        return ConcurrencySlotStatus.CLAIMED


class PooledScheduleStorage(_OnSharedEngine, PostgresScheduleStorage):
    # Asked by the sensor daemon on every tick (supports_batch_queries).
    has_instigators_table = remembers_yes(PostgresScheduleStorage.has_instigators_table)
    has_secondary_index_table = remembers_yes(PostgresScheduleStorage.has_secondary_index_table)
    has_built_index = remembers_yes(PostgresScheduleStorage.has_built_index)


# The databases (by URL) this process found every storage table in. Tables, once there, stay: like
# a schema probe's yes, the answer is kept for the life of the process.
_databases_with_all_tables: set[str] = set()


def _all_tables_present(postgres_url: str, engine: sa.Engine) -> bool:
    if postgres_url in _databases_with_all_tables:
        return True
    present = set(sa.inspect(engine).get_table_names())
    if all(present.intersection(names) for names in TABLES_CHECKED_AT_START):
        _databases_with_all_tables.add(postgres_url)
        return True
    return False


# The schema probes an index run asks (storage, probe, arguments): learn_schema asks them all at once.
RUN_PROBES: tuple[tuple[str, str, tuple[str, ...] | None], ...] = (
    ("run_storage", "has_run_stats_index_cols", ()),
    ("run_storage", "has_backfill_id_column", ()),
    ("run_storage", "has_bulk_actions_selector_cols", ()),
    ("run_storage", "has_bulk_action_job_name_column", ()),
    ("run_storage", "has_backfill_tags_table", ()),
    *(
        ("event_log_storage", "has_table", (table,))
        for table in (
            "dynamic_partitions",
            "asset_event_tags",
            "concurrency_slots",
            "concurrency_limits",
            "asset_check_executions",
        )
    ),
    ("event_log_storage", "has_asset_key_col", ("cached_status_data",)),
    ("event_log_storage", "has_asset_key_col", ("last_materialization_timestamp",)),
    ("event_log_storage", "has_default_pool_limit_col", None),  # a property
)


def learn_schema(instance: dg.DagsterInstance) -> None:
    """Ask, once, every schema probe an index run asks: a process forked afterwards (a run worker,
    hub_assets/workers/local.py) starts its runs knowing the answers, ~65 ms of reflection queries
    a run that are otherwise asked again in every new process, most of them inside the run."""
    for storage, probe, arguments in RUN_PROBES:
        answer = getattr(getattr(instance, storage), probe)
        if arguments is not None:
            answer(*arguments)


class PooledPostgresStorage(DagsterStorage, ConfigurableClass):
    """dagster-postgres's storage with one pooled engine per process (see the module docstring).

    dagster.yaml:
        storage:
          custom:
            module: hub_assets.instance.storage
            class: PooledPostgresStorage
            config: {postgres_url: …, pool: {size: 4, max_overflow: 6}}
    """

    def __init__(
        self,
        postgres_url: str,
        should_autocreate_tables: bool = True,
        pool: PoolSettings | None = None,
        inst_data: ConfigurableClassData | None = None,
        token_provider: Any = None,
    ) -> None:
        self._inst_data = inst_data
        self.engine = SharedEngine(postgres_url, token_provider, pool or PoolSettings())
        create = should_autocreate_tables and not _all_tables_present(postgres_url, self.engine.engine)
        self._run_storage = PooledRunStorage(self.engine, create)
        self._event_log_storage = PooledEventLogStorage(self.engine, create)
        self._schedule_storage = PooledScheduleStorage(self.engine, create)
        if create:  # the storages made what was missing
            _databases_with_all_tables.add(postgres_url)
        super().__init__()

    @property
    def inst_data(self) -> ConfigurableClassData | None:
        return self._inst_data

    @classmethod
    def config_type(cls) -> dict[str, Any]:
        return {**pg_config(), "pool": _pool_config()}

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]) -> Any:
        return cls(
            postgres_url=pg_url_from_config(config_value),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            pool=PoolSettings(**config_value.get("pool", {})),
            inst_data=inst_data,
            token_provider=get_token_provider_from_config(config_value),
        )

    @property
    def event_log_storage(self) -> PooledEventLogStorage:
        return self._event_log_storage

    @property
    def run_storage(self) -> PooledRunStorage:
        return self._run_storage

    @property
    def schedule_storage(self) -> PooledScheduleStorage:
        return self._schedule_storage
