"""One timed run in a fresh process (started by benchmarks/run.py; not meant to be run by hand).

    python benchmarks/worker.py MODE OUT_JSON PARTITION_KEY DATABASE_URL STORE_URL

MODE `baseline`: benchmarks/baseline.run_baseline. MODE `project`: the `index_bundle` job of
hub_assets, in-process, on a Postgres-backed Dagster instance (environment.open_instance: the
repo's dagster.yaml, pooled connections). MODE `init`: create the Dagster instance's tables
once, so no timed run pays for them. The environment (HUB_*, DAGSTER_HOME, AWS_*) is set by
the parent. Imports and instance creation are timed apart from the run itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import dagster as dg

_STARTED = time.perf_counter()


@contextlib.contextmanager
def _profiled() -> Iterator[None]:
    """With HUB_BENCH_PROFILE=<file>, profile the timed run with pyinstrument (run.py --profile)."""
    target = os.environ.get("HUB_BENCH_PROFILE")
    if not target:
        yield
        return
    from pyinstrument import Profiler

    with Profiler(interval=0.0005, async_mode="disabled") as profiler:
        yield
    Path(target).write_text(profiler.output_text(unicode=True, color=False, show_all=False, timeline=False))
    profiler.last_session.save(str(Path(target).with_suffix(".pyisession")))


def _project(partition_key: str) -> dict:
    from hub_assets.environment import open_instance, prepare
    from hub_assets.index.run import apply_pool_limits, index_partitions

    imported = time.perf_counter()
    environment = prepare()
    instance = open_instance(environment)
    apply_pool_limits(instance)
    ready = time.perf_counter()
    try:
        with _profiled():
            start = time.perf_counter()
            [outcome] = index_partitions(instance, [partition_key])
            wall = time.perf_counter() - start
        # Issue #6 times an index run from Dagster's run start to its success: the run record's
        # RUN_START and RUN_SUCCESS times (the wall time above also covers creating the run).
        record = instance.get_run_record_by_id(outcome.run_id)
        run_s = record.end_time - record.start_time if record and record.start_time and record.end_time else wall
        timeline = _timeline(instance, outcome.run_id)
    finally:
        instance.dispose()
    import sqlalchemy as sa

    from hub_assets.catalog import schema

    repo_id, bundle_key = partition_key.split("/", 1)
    engine = sa.create_engine(environment.database_url)
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(schema.bundles.c.status, schema.bundles.c.stats).where(
                schema.bundles.c.repo_id == repo_id, schema.bundles.c.bundle_key == bundle_key
            )
        ).first()
    engine.dispose()
    return {
        "import_s": imported - _STARTED,
        "instance_s": ready - imported,
        "wall_s": wall,
        "run_s": run_s,
        "success": outcome.success,
        "error": outcome.error,
        "run_id": outcome.run_id,
        "status": row[0] if row else None,
        "stats": row[1] if row else {},
        "timeline": timeline,
    }


def _timeline(instance: dg.DagsterInstance, run_id: str) -> list[list]:
    """The run's events as [seconds since RUN_START, event type, step key, message]: where the
    time between the run's start and its success goes (run.py --timeline)."""
    import dagster as dg

    entries = instance.all_logs(run_id)
    start = next((e.timestamp for e in entries if e.dagster_event_type == dg.DagsterEventType.RUN_START), None)
    start = start if start is not None else entries[0].timestamp
    rows = []
    for entry in entries:
        kind = entry.dagster_event_type.value if entry.dagster_event_type else "LOG"
        message = (entry.user_message or "").replace("\n", " ")[:90]
        rows.append([round(entry.timestamp - start, 4), kind, entry.step_key or "", message])
    return rows


def _baseline(partition_key: str, database_url: str, store_url: str) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from baseline import run_baseline

    imported = time.perf_counter()
    start = time.perf_counter()
    phases = run_baseline(partition_key, database_url, store_url)
    wall = time.perf_counter() - start
    return {"import_s": imported - _STARTED, "instance_s": 0.0, "wall_s": wall, "success": True, "phases": phases}


def peak_rss_kb() -> int:
    """This process's own peak RSS. Not ru_maxrss: a child inherits its parent's high-water
    mark across fork and exec, so a parent that generated a 10x bundle would show in every run."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def main() -> int:
    mode, out = sys.argv[1], Path(sys.argv[2])
    if mode == "init":
        from hub_assets.environment import open_instance, prepare

        instance = open_instance(prepare())
        instance.dispose()
        result: dict = {}
    elif mode == "project":
        result = _project(sys.argv[3])
    elif mode == "baseline":
        result = _baseline(sys.argv[3], sys.argv[4], sys.argv[5])
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    result["mode"] = mode
    result["peak_rss_kb"] = peak_rss_kb()
    out.write_text(json.dumps(result))
    return 0 if result.get("success", True) else 1


if __name__ == "__main__":
    sys.exit(main())
