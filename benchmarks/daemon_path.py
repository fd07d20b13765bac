"""The path a real push takes: `hub-assets dev` (webserver, daemon, code server), a push, the upload
sensor's run launched by the daemon, until the bundle is indexed (issue 13).

    .venv/bin/python benchmarks/daemon_path.py [--pushes 20] [--own-postgres] [--scratch DIR]

1. Idle: sessions (and statements, where counted) the running hub opens per second with nothing
   to do, over --idle seconds.
2. One push of the 41-commit fixture (a real Muse bundle, 160 objects) by a fresh client, and its
   run: sessions and statements opened from the push until the run ended, minus the idle rate
   over as long; the run's events; run start -> success.
3. --pushes pushes of a small bundle (muse-small-history, 3 commits, each to a new repo, at random
   moments): upload ->
   indexed (the run's `indexed <partition>` log line), p50 / p90, and where the seconds go, from
   the run's record and events: until the sensor created the run, queued until the daemon
   dequeued it, starting (run worker: process, imports, instance, job) until RUN_START, the
   run until RUN_SUCCESS.

Nothing in the measured windows polls the database: the end of a run is read from dev's log.
--own-postgres starts a PostgreSQL of its own (pg_stat_statements loaded) instead of using
--pg-admin, so statements are counted too. Appends a section to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from dagster import DagsterEventType
from run import HERE, REPO, WORK, append_section, code_version, free_port, machine, percentile, scratch_database

from hub_assets.bundle import Limits
from hub_assets.bundle.wire import read_wire
from hub_assets.embedded_postgres import libpq_conninfo
from hub_assets.hub import Hub, push
from hub_assets_tests.pg_activity import Activity, quiet_activity

FIXTURES = REPO / "hub_assets_tests" / "fixtures"
LARGE = FIXTURES / "muse-41-commits.bundle"
SMALL = FIXTURES / "muse-small-history.bundle"
UI_TIMEOUT_S = 180
RUN_TIMEOUT_S = 180
LOG_POLL_S = 0.02


@dataclass
class Dev:
    process: subprocess.Popen
    log: Path
    env: dict[str, str]
    _read: int = 0

    def wait_for_line(self, text: str, timeout_s: float) -> float:
        """perf_counter() when `text` first appears in dev's output (runs log there)."""
        deadline = time.perf_counter() + timeout_s
        while time.perf_counter() < deadline:
            with self.log.open("rb") as log:
                log.seek(self._read)
                chunk = log.read()
            if text.encode() in chunk:
                return time.perf_counter()
            # keep a tail, in case `text` is split across two reads
            self._read += max(0, len(chunk) - len(text))
            if self.process.poll() is not None:
                raise RuntimeError(f"hub-assets dev exited; see {self.log}")
            time.sleep(LOG_POLL_S)
        raise TimeoutError(f"{text!r} not in {self.log} after {timeout_s} s")


def start_dev(home: Path, database_url: str, store_url: str, **extra_env: str) -> Dev:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "DAGSTER_", "AWS_"))}
    env.update({"HUB_HOME": str(home), "HUB_DATABASE_URL": database_url, "HUB_OBJECT_STORE_URL": store_url})
    env.update(extra_env)
    port = free_port()
    home.mkdir(parents=True, exist_ok=True)
    log = home / "dev.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "hub_assets.cli", "dev", "--port", str(port)],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    dev = Dev(process, log, env)
    deadline = time.monotonic() + UI_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2):
                break
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"hub-assets dev exited; see {log}") from None
            time.sleep(0.5)
    dev.wait_for_line("SensorDaemon", UI_TIMEOUT_S)  # the daemon's threads are up
    return dev


def stop_dev(dev: Dev) -> None:
    os.killpg(dev.process.pid, signal.SIGTERM)
    try:
        dev.process.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(dev.process.pid, signal.SIGKILL)
        dev.process.wait()


def head_of(data: bytes) -> str:
    import io

    return read_wire(io.BytesIO(data), Limits()).branch_heads["main"]


def run_timeline(conn: psycopg.Connection, partition_key: str) -> dict[str, float]:
    """Epoch seconds of the first event of each type of the run of `partition_key`, and its event count.
    The run logs its `indexed` line a few ms before RUN_SUCCESS: the last run may still be writing it."""
    [run_id] = conn.execute(
        "SELECT run_id FROM run_tags WHERE key = 'dagster/partition' AND value = %s", [partition_key]
    ).fetchone()
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while True:
        rows = conn.execute(
            "SELECT dagster_event_type, min(extract(epoch FROM timestamp AT TIME ZONE 'UTC')) FROM event_logs"
            " WHERE run_id = %s AND dagster_event_type IS NOT NULL GROUP BY dagster_event_type",
            [run_id],
        ).fetchall()
        # Run events keep their old names in the table (PIPELINE_SUCCESS…): keyed by today's (RUN_SUCCESS…).
        milestones = {DagsterEventType(kind).name: float(at) for kind, at in rows}
        if "RUN_SUCCESS" in milestones or time.monotonic() > deadline:
            break
        time.sleep(LOG_POLL_S)
    milestones["events"] = conn.execute("SELECT count(*) FROM event_logs WHERE run_id = %s", [run_id]).fetchone()[0]
    return milestones


SEGMENTS = [
    ("push (upload, branch, inline objects)", "push_start", "push_end"),
    ("pushed -> run enqueued (sensor loop + evaluation)", "push_end", "RUN_ENQUEUED"),
    ("enqueued -> starting (run queue daemon dequeues, launches)", "RUN_ENQUEUED", "RUN_STARTING"),
    ("starting -> RUN_START (run worker: process, imports, instance, job)", "RUN_STARTING", "RUN_START"),
    ("RUN_START -> RUN_SUCCESS (the run)", "RUN_START", "RUN_SUCCESS"),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pushes", type=int, default=20)
    parser.add_argument("--idle", type=float, default=20, help="seconds of the idle window")
    parser.add_argument(
        "--jitter",
        type=float,
        default=5,
        help="a random pause of up to this many seconds before each small push, so pushes arrive at any moment "
        "of the sensor's ticks, as real ones do (back to back, they would keep one phase)",
    )
    parser.add_argument("--pg-admin", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--own-postgres", action="store_true", help="a PostgreSQL of its own, statements counted")
    parser.add_argument("--scratch", type=Path, default=WORK)
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args()
    load = os.getloadavg()
    started_at = datetime.now(UTC)
    with ExitStack() as stack:
        admin_url, database, database_url = scratch_database(stack, args.pg_admin, args.own_postgres, "hubdaemon")
        admin = libpq_conninfo(admin_url)
        home = args.scratch.resolve() / f"daemon-{database[-8:]}"
        store_url = (home / "store").as_uri()
        dev = start_dev(home, database_url, store_url)
        stack.callback(stop_dev, dev)

        idle_from, idle_start = quiet_activity(admin, database), time.perf_counter()
        time.sleep(args.idle)  # the idle window measured
        idle_to, idle_end = quiet_activity(admin, database), time.perf_counter()
        idle = (idle_to - idle_from, idle_end - idle_start)

        data = LARGE.read_bytes()
        window_start = time.perf_counter()
        hub = Hub.connect(database_url, store_url)  # a fresh client: its sessions count
        large = push(hub, "daemon-large", "main", data, head_commit_id=head_of(data))
        hub.catalog.engine.dispose()
        dev.wait_for_line(f"indexed {large.partition_key}:", RUN_TIMEOUT_S)
        window_end_activity = quiet_activity(admin, database)
        window = time.perf_counter() - window_start
        scale = window / idle[1]
        spent = window_end_activity - idle_to
        net = Activity(
            sessions=round(spent.sessions - idle[0].sessions * scale, 1),
            transactions=round(spent.transactions - idle[0].transactions * scale),
            statements=None if spent.statements is None else round(spent.statements - idle[0].statements * scale),
        )

        small = SMALL.read_bytes()
        head = head_of(small)
        timings = []
        jitter = random.Random(13)
        for index in range(args.pushes + 1):  # the first is a warm-up
            time.sleep(jitter.uniform(0, args.jitter))
            t0 = time.perf_counter()
            epoch0 = time.time()
            result = push(hub, f"daemon-small-{index}", "main", small, head_commit_id=head)
            pushed = time.perf_counter()
            indexed = dev.wait_for_line(f"indexed {result.partition_key}:", RUN_TIMEOUT_S)
            if index:
                timings.append((result.partition_key, epoch0, t0, pushed, indexed))
        hub.close()
        described = machine(admin_url, None, load)
        with psycopg.connect(libpq_conninfo(database_url), autocommit=True) as conn:
            large_run = run_timeline(conn, large.partition_key)
            rows = []
            for key, epoch0, t0, pushed, indexed in timings:
                milestones = run_timeline(conn, key)
                milestones["push_start"] = epoch0
                milestones["push_end"] = epoch0 + (pushed - t0)
                milestones["indexed"] = epoch0 + (indexed - t0)
                rows.append(milestones)

    latency = [r["indexed"] - r["push_start"] for r in rows]
    lines = [
        f"## {started_at:%Y-%m-%d %H:%M} UTC — daemon path (`hub-assets dev`: push, sensor, daemon-launched run)",
        "",
        f"- command: `python benchmarks/daemon_path.py {' '.join(sys.argv[1:])}`",
        f"- machine: {described}",
        f"- code: {code_version()}",
        f"- idle hub: {idle[0].sessions / idle[1]:.2f} sessions/s, {idle[0].transactions / idle[1]:.1f} transactions/s"
        + (f", {idle[0].statements / idle[1]:.1f} statements/s" if idle[0].statements is not None else "")
        + f" (over {idle[1]:.0f} s)",
        f"- push + run of the 41-commit fixture ({len(data) / 1e6:.1f} MB, 160 objects), minus the idle rate: "
        f"**{net.sessions:g} sessions**, {net.transactions} transactions"
        + (f", {net.statements} statements" if net.statements is not None else " (statements not counted here)")
        + f"; {large_run['events']} events; run start -> success "
        f"**{large_run['RUN_SUCCESS'] - large_run['RUN_START']:.3f} s**",
        f"- upload -> indexed, {len(latency)} pushes of muse-small-history (3 commits) to new repos: "
        f"**p50 {statistics.median(latency):.2f} s**, p90 {percentile(latency, 0.9):.2f} s",
        "",
        "| segment | median s | p90 s |",
        "|---|---:|---:|",
    ]
    for label, start, end in SEGMENTS:
        values = [r[end] - r[start] for r in rows]
        lines.append(f"| {label} | {statistics.median(values):.3f} | {percentile(values, 0.9):.3f} |")
    tail = [r["RUN_SUCCESS"] - r["indexed"] for r in rows]
    tail_p50, tail_p90 = statistics.median(tail), percentile(tail, 0.9)
    lines.append(f"| indexed (log line seen) -> RUN_SUCCESS | {tail_p50:.3f} | {tail_p90:.3f} |")
    text = "\n".join(lines) + "\n"
    append_section(args.results, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
