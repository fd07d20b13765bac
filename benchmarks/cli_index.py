"""`hub-assets index` as a whole process, against the run it starts (issue 13: process <= run + 1 s).

    .venv/bin/python benchmarks/cli_index.py [--repeats 5] [--scale 1] [--own-postgres] [--profile]

A fresh catalog database (on --pg-admin, or a PostgreSQL of its own with --own-postgres) and a
file:// store under --scratch (tmpfs by default); Dagster's and the catalog's tables are made by a
first, untimed index. Then, --repeats times, the reference push (hub_assets.sample at --scale)
is uploaded to a new repo and `python -m hub_assets.cli index <partition>` is timed as a whole
process; the run's start -> end comes from its record. Beside it, `python -c "import …"` of what
the command loads, each in a fresh process (the last with the GC paused, as the command does).
--profile: one more index under cProfile, its top entries by cumulative time printed (not
appended). Appends a section to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import cProfile  # noqa: F401  (run as `-m cProfile` in the child; imported so a missing module fails here)
import os
import pstats
import re
import shutil
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from run import HERE, PYTHON, REPO, append_section, code_version, ensure_bundle, machine, scratch_database

from hub_assets.embedded_postgres import libpq_conninfo

CODE_LOCATION = "import hub_assets.cli, hub_assets.definitions, hub_assets.instance.storage"
IMPORTS = [
    "import dagster",
    "import dagster, dagster_postgres",
    "import dagster, dagster_postgres, dagster_aws.s3",
    "import hub_assets.cli",
    CODE_LOCATION,
    # As `hub-assets index` imports them: the cyclic GC paused (hub_assets/cli.py).
    f"import gc; gc.disable(); {CODE_LOCATION}",
]
IMPORT_REPEATS = 3
RUN_ID = re.compile(r"\(run ([0-9a-f-]{36})\)")
PROFILE_LINES = 40


def child_env(home: Path, database_url: str, store_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "DAGSTER_", "AWS_"))}
    env.update({"HUB_HOME": str(home), "HUB_DATABASE_URL": database_url, "HUB_OBJECT_STORE_URL": store_url})
    return env


def upload(store_root: Path, repo_id: str, bundle_path: Path, bundle_key: str) -> str:
    key = store_root / "uploads" / repo_id / bundle_key
    key.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(bundle_path, key)
    return f"{repo_id}/{bundle_key}"


def index(env: dict[str, str], partition_key: str, *prefix: str) -> tuple[float, str]:
    """Seconds the whole `hub-assets index` process took, and its run id."""
    started = time.perf_counter()
    done = subprocess.run(
        [PYTHON, *prefix, "-m", "hub_assets.cli", "index", partition_key],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"hub-assets index {partition_key} failed: {done.stderr.strip()}")
    match = RUN_ID.search(done.stdout)
    if match is None:
        raise RuntimeError(f"no run id in {done.stdout!r}")
    return elapsed, match.group(1)


def run_seconds(database_url: str, run_id: str) -> float:
    with psycopg.connect(libpq_conninfo(database_url)) as conn:
        start, end = conn.execute("SELECT start_time, end_time FROM runs WHERE run_id = %s", [run_id]).fetchone()
    return end - start


def import_seconds(statement: str, env: dict[str, str]) -> list[float]:
    times = []
    for _ in range(IMPORT_REPEATS):
        started = time.perf_counter()
        subprocess.run([PYTHON, "-c", statement], env=env, cwd=REPO, check=True)
        times.append(time.perf_counter() - started)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--pg-admin", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--own-postgres", action="store_true")
    parser.add_argument("--scratch", type=Path, default=Path("/dev/shm") if os.access("/dev/shm", os.W_OK) else HERE)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args()
    bundle = ensure_bundle(args.scale)
    load = os.getloadavg()
    started_at = datetime.now(UTC)
    rows = []
    with ExitStack() as stack:
        admin_url, database, database_url = scratch_database(stack, args.pg_admin, args.own_postgres, "hubcli")
        home = args.scratch.resolve() / f"hub-cli-{database[-8:]}"
        stack.callback(shutil.rmtree, home, True)
        store_root = home / "store"
        env = child_env(home, database_url, store_root.as_uri())
        index(env, upload(store_root, "warmup", bundle.path, bundle.bundle_key))  # makes the tables
        for repeat in range(args.repeats):
            process_s, run_id = index(env, upload(store_root, f"cli{repeat}", bundle.path, bundle.bundle_key))
            rows.append((process_s, run_seconds(database_url, run_id)))
        imports = {statement: import_seconds(statement, env) for statement in IMPORTS}
        described = machine(admin_url, None, load)
        if args.profile:
            profile = home / "index.prof"
            index(
                env,
                upload(store_root, "profiled", bundle.path, bundle.bundle_key),
                "-m",
                "cProfile",
                "-o",
                str(profile),
            )
            pstats.Stats(str(profile)).sort_stats("cumulative").print_stats(PROFILE_LINES)

    lines = [
        f"## {started_at:%Y-%m-%d %H:%M} UTC — `hub-assets index` as a whole process, and imports",
        "",
        f"- command: `python benchmarks/cli_index.py {' '.join(sys.argv[1:])}`",
        f"- bundle: the reference push x{bundle.scale:g} ({bundle.commits:,} commits, {bundle.objects:,} objects, "
        f"{bundle.size_bytes / 1e6:.1f} MB), file:// store under {args.scratch}",
        f"- machine: {described}",
        f"- code: {code_version()}",
        "",
        "| `hub-assets index` | process s | run start → end s | rest s |",
        "|---|---:|---:|---:|",
    ]
    for process_s, run_s in rows:
        lines.append(f"| | {process_s:.2f} | {run_s:.2f} | {process_s - run_s:.2f} |")
    process_p50, run_p50 = (statistics.median(column) for column in zip(*rows, strict=True))
    rest_p50 = statistics.median(process_s - run_s for process_s, run_s in rows)
    lines.append(f"| **median** | **{process_p50:.2f}** | **{run_p50:.2f}** | **{rest_p50:.2f}** |")
    lines += ["", f"| import | seconds, {IMPORT_REPEATS} processes |", "|---|---|"]
    for statement, times in imports.items():
        lines.append(f"| `{statement}` | {' '.join(f'{t:.2f}' for t in times)} |")
    append_section(args.results, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
