"""Where runs execute, through the path a real push takes (`hub-assets dev`: sensor, run queue,
launch), on a PostgreSQL and a Redis of the benchmark's own and a file store: a new process per
run started by the code server (HUB_RUN_LAUNCHER=code-server, Dagster's DefaultRunLauncher, the
baseline), a process forked beside the daemon from a warm one (local, the default), and warm
Celery workers (celery).

    .venv/bin/python benchmarks/scaleout.py [--workloads latency,small,reference] [--pushes 10]

- latency: --pushes pushes of a small bundle, one at a time at random moments; upload -> indexed
  p50 / p90 with each launcher (one warm worker for celery).
- small: 50 small bundles (2 commits, 40 files, each repo its own) pushed at once; the time from
  the first push to the last run's end, as bundles/minute and objects/second, with the code
  server, local, 1 worker and 2 workers.
- reference: 4 reference pushes (the benchmark's 46.8 MB sample, each with its own seed), likewise.

Each configuration starts on a fresh database, store and broker. Per run, from the throughput
workloads: PostgreSQL sessions, transactions, statements and execution time (pg_stat_statements),
and broker commands (Redis INFO), each over the whole window (the idle hub's polling included):
the numbers the capacity model in RESULTS.md is built from. Appends a section to RESULTS.md.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import redis
from daemon_path import Dev, head_of, start_dev, stop_dev
from run import HERE, WORK, append_section, code_version, machine, percentile

from hub_assets.bundle import Limits
from hub_assets.bundle.wire import read_wire
from hub_assets.embedded_postgres import create_scratch_database, drop_database, libpq_conninfo, with_database
from hub_assets.hub import Hub, push
from hub_assets.index.assets import index_assets
from hub_assets.sample import SampleSpec, write_sample
from hub_assets_tests.bundle.builders import build_history
from hub_assets_tests.pg_activity import Activity, quiet_activity
from hub_assets_tests.private_postgres import private_postgres
from hub_assets_tests.workers.processes import RedisBroker, Worker, start_worker

RUN_TIMEOUT_S = 900
LOOK_S = 0.03
REFERENCE_PUSHES = 4
SMALL_PUSHES = 50


@dataclass(frozen=True)
class Bundle:
    repo_id: str
    data: bytes
    head: str
    objects: int


@dataclass(frozen=True)
class Config:
    name: str
    launcher: str  # HUB_RUN_LAUNCHER
    workers: int = 0  # hub-assets workers (celery)


CODE_SERVER = Config("code server (a process per run)", "code-server")
LOCAL = Config("local (forked from a warm process)", "local")
ONE, TWO = Config("1 warm worker", "celery", 1), Config("2 warm workers", "celery", 2)


@dataclass
class Hubs:
    """A running hub (`hub-assets dev` and its workers) on a fresh database, store and broker."""

    dev: Dev
    workers: list[Worker]
    database_url: str
    database: str
    store_url: str
    broker: RedisBroker

    def wait_indexed(self, partition_key: str) -> float:
        """perf_counter() when the run's `indexed <partition>` line appears in any run's log."""
        logs = [self.dev] + [Dev(w.process, w.log, {}) for w in self.workers]
        deadline = time.perf_counter() + RUN_TIMEOUT_S
        while time.perf_counter() < deadline:
            for log in logs:
                with suppress(TimeoutError):  # a short look at each log in turn
                    return log.wait_for_line(f"indexed {partition_key}:", LOOK_S)
        raise TimeoutError(f"{partition_key} not indexed after {RUN_TIMEOUT_S} s")


@contextmanager
def running(config: Config, admin_url: str, scratch: Path) -> Iterator[Hubs]:
    with ExitStack() as stack:
        database = create_scratch_database(admin_url, "hubscale")
        stack.callback(drop_database, admin_url, database)
        database_url = with_database(admin_url, database)
        home = scratch / f"scaleout-{database[-8:]}"
        store_url = (home / "store").as_uri()
        broker = RedisBroker.start(home / "broker")
        stack.callback(broker.stop)
        pool_env = {"HUB_RUN_LAUNCHER": config.launcher}
        if config.workers:
            pool_env["HUB_BROKER_URL"] = broker.url
        dev = start_dev(home / "dev", database_url, store_url, **pool_env)
        stack.callback(stop_dev, dev)
        workers = []
        for n in range(config.workers):
            env = {**dev.env, **pool_env, "HUB_HOME": str(home / f"worker-{n}")}
            worker = start_worker(env, home / f"worker-{n}.log")
            stack.callback(worker.stop)
            workers.append(worker)
        yield Hubs(dev, workers, database_url, database, store_url, broker)


def small_bundles(count: int) -> list[Bundle]:
    histories = [build_history(2, 40, seed=1000 + n) for n in range(count)]
    return [Bundle(f"small-{n}", h.wire(), h.head, len(h.contents)) for n, h in enumerate(histories)]


def reference_bundles(count: int) -> list[Bundle]:
    """The reference push of benchmarks/run.py, once per seed (so no two share an object)."""
    bundles = []
    WORK.mkdir(parents=True, exist_ok=True)
    for seed in range(count):
        path = WORK / f"reference-x1-seed{seed}.bundle"
        if not path.exists():
            write_sample(path, SampleSpec(seed=seed))
        data = path.read_bytes()
        objects = _object_count(data)
        bundles.append(Bundle(f"reference-{seed}", data, head_of(data), objects))
    return bundles


def _object_count(data: bytes) -> int:
    return len(read_wire(io.BytesIO(data), Limits()).objects)


def latency(config: Config, admin_url: str, scratch: Path, pushes: int, jitter_s: float) -> list[float]:
    """upload -> indexed of each push (the first, a warm-up, left out)."""
    bundles = small_bundles(pushes + 1)
    seconds = []
    pause = random.Random(7)
    with running(config, admin_url, scratch) as hubs:
        hub = Hub.connect(hubs.database_url, hubs.store_url)
        try:
            for n, bundle in enumerate(bundles):
                time.sleep(pause.uniform(0, jitter_s))  # arrive at any moment of the sensor's loop
                started = time.perf_counter()
                result = push(hub, bundle.repo_id, "main", bundle.data, head_commit_id=bundle.head)
                indexed = hubs.wait_indexed(result.partition_key)
                if n:
                    seconds.append(indexed - started)
        finally:
            hub.close()
    return seconds


@dataclass(frozen=True)
class Throughput:
    seconds: float
    bundles: int
    objects: int
    activity: Activity
    pg_exec_ms: float | None
    broker_commands: int
    decode_ms: float  # median per run: fetch + decode of the bundle, which its steps share
    run_ms: float  # median per run: the run's own elapsed time

    def per_run(self, value: float) -> float:
        return value / self.bundles


def throughput(config: Config, admin_url: str, scratch: Path, bundles: list[Bundle]) -> Throughput:
    """All bundles pushed at once; from the first push to the end of the last run."""
    admin = libpq_conninfo(admin_url)
    with running(config, admin_url, scratch) as hubs:
        before, exec_before = quiet_activity(admin, hubs.database), _pg_exec_ms(admin, hubs.database)
        commands_before = _broker_commands(hubs.broker)
        hub = Hub.connect(hubs.database_url, hubs.store_url)
        started = time.time()
        try:
            for b in bundles:
                push(hub, b.repo_id, "main", b.data, head_commit_id=b.head)
        finally:
            hub.close()
        ended = _last_run_end(libpq_conninfo(hubs.database_url), len(bundles))
        after, exec_after = quiet_activity(admin, hubs.database), _pg_exec_ms(admin, hubs.database)
        commands = _broker_commands(hubs.broker) - commands_before
        with psycopg.connect(libpq_conninfo(hubs.database_url)) as conn:
            stats = [row[0] for row in conn.execute("SELECT stats FROM musehub_bundles")]
    exec_ms = None if exec_before is None or exec_after is None else exec_after - exec_before
    objects = sum(b.objects for b in bundles)
    decode_ms = statistics.median(s["fetch_bundle_ms"] + s["unpack_ms"] for s in stats)
    run_ms = statistics.median(s["elapsed_ms"] for s in stats)
    return Throughput(ended - started, len(bundles), objects, after - before, exec_ms, commands, decode_ms, run_ms)


def import_seconds(repeats: int = 3) -> float:
    """A fresh interpreter importing the code location: what a process per step starts with."""
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import hub_assets.definitions"], check=True)
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def per_step_lines(label: str, result: Throughput, start_s: float) -> list[str]:
    """What distributing steps (dagster-celery's celery_executor: a task per step, each in a
    process that loads the code and decodes the bundle again) would add to a run, from the
    measured parts, against the run on one warm worker that decodes once."""
    steps = len(index_assets)
    decode_s = result.decode_ms / 1000
    extra = steps * start_s + (steps - 1) * decode_s
    return [
        f"- {label}: a run on one warm worker takes {result.run_ms / 1000:.2f} s (median), of which "
        f"{decode_s:.3f} s fetch + decode, shared by its {steps} steps; a process per step would add "
        f"{steps} × {start_s:.2f} s (interpreter + imports) + {steps - 1} × {decode_s:.3f} s (decode again) = "
        f"**+{extra:.2f} s per run** ({(result.run_ms / 1000 + extra) / (result.run_ms / 1000):.1f}× the run)"
    ]


def _last_run_end(conninfo: str, runs: int) -> float:
    """When the last of `runs` index runs ended (epoch s), once all have; one session polls twice a second."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while time.monotonic() < deadline:
            done, failed, last = conn.execute(
                "SELECT count(*) FILTER (WHERE status IN ('SUCCESS', 'FAILURE')),"
                " count(*) FILTER (WHERE status = 'FAILURE'), max(end_time) FROM runs"
            ).fetchone()
            if failed:
                raise RuntimeError(f"{failed} index run(s) failed")
            if done == runs:
                return float(last)
            time.sleep(0.5)
    raise TimeoutError(f"{runs} runs not finished after {RUN_TIMEOUT_S} s")


def _pg_exec_ms(conninfo: str, database: str) -> float | None:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'").fetchone():
            return None
        return float(
            conn.execute(
                "SELECT coalesce(sum(total_exec_time), 0) FROM pg_stat_statements s"
                " JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = %s",
                [database],
            ).fetchone()[0]
        )


def _broker_commands(broker: RedisBroker) -> int:
    return int(redis.Redis(host=broker.host, port=broker.port).info("stats")["total_commands_processed"])


def throughput_rows(label: str, results: dict[Config, Throughput]) -> list[str]:
    baseline = results[CODE_SERVER].seconds
    rows = []
    for config, r in results.items():
        rate = r.bundles / (r.seconds / 60)
        statements = "—" if r.activity.statements is None else f"{r.per_run(r.activity.statements):.0f}"
        pg_ms = "—" if r.pg_exec_ms is None else f"{r.per_run(r.pg_exec_ms):.0f}"
        rows.append(
            f"| {label} | {config.name} | {r.seconds:.1f} | {r.seconds / baseline:.2f}× | {rate:.1f} | "
            f"{r.objects / r.seconds:.0f} | {r.per_run(r.activity.sessions):.1f} | {statements} | {pg_ms} | "
            f"{r.per_run(r.broker_commands):.0f} |"
        )
    return rows


WORKLOADS: dict[str, Callable[[], list[Bundle]]] = {
    "small": lambda: small_bundles(SMALL_PUSHES),
    "reference": lambda: reference_bundles(REFERENCE_PUSHES),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workloads", default="latency,small,reference")
    parser.add_argument("--pushes", type=int, default=10, help="pushes timed one at a time (latency)")
    parser.add_argument("--jitter", type=float, default=3, help="random pause of up to this many seconds before each")
    parser.add_argument("--scratch", type=Path, default=WORK)
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args()
    workloads = args.workloads.split(",")
    load, started_at = os.getloadavg(), datetime.now(UTC)
    lines: list[str] = []
    with private_postgres() as pg:
        admin_url = pg.admin_url
        described = machine(admin_url, None, load)
        if "latency" in workloads:
            configs = (CODE_SERVER, LOCAL, ONE)
            timed = {c: latency(c, admin_url, args.scratch.resolve(), args.pushes, args.jitter) for c in configs}
            lines += ["| launcher | upload -> indexed p50 s | p90 s | p50 vs code server |", "|---|---:|---:|---:|"]
            base = statistics.median(timed[CODE_SERVER])
            for config, seconds in timed.items():
                p50 = statistics.median(seconds)
                lines.append(f"| {config.name} | {p50:.2f} | {percentile(seconds, 0.9):.2f} | {p50 / base:.2f}× |")
            lines.append("")
        rows, per_step = [], []
        start_s = import_seconds()
        for name in [w for w in workloads if w in WORKLOADS]:
            bundles = WORKLOADS[name]()
            configs = (CODE_SERVER, LOCAL, ONE, TWO)
            results = {c: throughput(c, admin_url, args.scratch.resolve(), bundles) for c in configs}
            rows += throughput_rows(f"{len(bundles)} × {name}", results)
            per_step += per_step_lines(f"{name} bundle", results[ONE], start_s)
        if rows:
            lines += [
                "| pushes | runs on | s (first push -> last run's end) | vs code server | bundles/min | objects/s "
                "| PG sessions/run | PG statements/run | PG exec ms/run | broker commands/run |",
                "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
                *rows,
                "",
                "Runs whole on a worker vs a task per step (measured parts):",
                *per_step,
            ]
    header = [
        f"## {started_at:%Y-%m-%d %H:%M} UTC — scale-out: where runs execute (code server, local, Celery workers)",
        "",
        f"- command: `python benchmarks/scaleout.py {' '.join(sys.argv[1:])}`",
        f"- machine: {described}",
        f"- code: {code_version()}",
        "",
    ]
    append_section(args.results, "\n".join(header + lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
