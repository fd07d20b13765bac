"""What one database of a PostgreSQL server has seen: sessions opened, transactions, statements.
Tests and benchmarks read it before and after the work they measure.

A backend adds to these counters when it goes idle (at most once a second) and when it exits,
so a reading is complete once the measured sessions have ended (`settled_activity`) or have
been idle for a moment (`quiet_activity`)."""

from __future__ import annotations

import time
from dataclasses import dataclass, fields

import psycopg

from .polling import wait_until

# An idle backend reports within PGSTAT_MIN_INTERVAL (1 s) of its last report.
_REPORT_INTERVAL_S = 1.2


@dataclass(frozen=True)
class Activity:
    sessions: int
    transactions: int
    # pg_stat_statements' calls; None where the server does not load the extension.
    statements: int | None

    def __sub__(self, other: Activity) -> Activity:
        values = {}
        for field in fields(self):
            mine, theirs = getattr(self, field.name), getattr(other, field.name)
            values[field.name] = None if mine is None or theirs is None else mine - theirs
        return Activity(**values)


def read_activity(conninfo: str, database: str) -> Activity:
    """The counters of `database`, read through `conninfo` (a connection to another database of
    the server, so the reading itself is not counted)."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        sessions, transactions = conn.execute(
            "SELECT sessions, xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s", [database]
        ).fetchone()
        counted = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'").fetchone()
        statements = None
        if counted:
            statements = conn.execute(
                "SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_statements s"
                " JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = %s",
                [database],
            ).fetchone()[0]
    return Activity(sessions, transactions, statements)


def open_sessions(conninfo: str, database: str) -> int:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [database]).fetchone()[0]


def settled_activity(conninfo: str, database: str, timeout_s: float = 30) -> Activity:
    """The counters once no session of `database` is left (each reports as it exits)."""
    wait_until(
        lambda: open_sessions(conninfo, database) == 0, timeout_s, 0.05, what=f"the sessions of {database} to end"
    )
    return read_activity(conninfo, database)


def quiet_activity(conninfo: str, database: str, timeout_s: float = 30) -> Activity:
    """The counters once two readings a report interval apart count the same sessions: the
    sessions still open have reported what they did. (A running hub never stops sending
    statements, so only the sessions can be waited for; its other counters are as of then.)"""
    previous = read_activity(conninfo, database)

    def stable() -> Activity | None:
        nonlocal previous
        time.sleep(_REPORT_INTERVAL_S)  # one report interval between the two readings compared
        current = read_activity(conninfo, database)
        agreed = current.sessions == previous.sessions
        previous = current
        return current if agreed else None

    return wait_until(stable, timeout_s, 0, what=f"the counters of {database} to settle")
