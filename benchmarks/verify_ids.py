"""Cost of HUB_VERIFY_OBJECT_IDS (SPEC §2: opt-in, its cost measured and stated) on the reference
push (hub_assets.sample, default spec: 1,035 commits, ~5.5k objects, ~47 MB).

    .venv/bin/python benchmarks/verify_ids.py [--runs 5] [--pg-admin URL] [--no-index] [--scratch DIR]

1. decode_bundle alone, in this process, bytes in memory: verification off and on, alternating
   (one warm-up each first), `runs` times each.
2. A full in-process index run (the index_bundle job on a Postgres-backed Dagster instance, as
   `hub-assets index` runs it), off and on alternating, each on a fresh catalog database and a
   fresh file store under --scratch (default /dev/shm, so the disk does not drown the difference).

Prints the medians and the difference (on - off) in ms and %.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from run import REPO_ID, BundleInfo, create_database, drop_database, ensure_bundle  # noqa: E402

from hub_assets.bundle import EmptyCatalog, Limits, decode_bundle  # noqa: E402
from hub_assets.embedded_postgres import with_database  # noqa: E402
from hub_assets.settings import DATABASE_URL, OBJECT_STORE_URL  # noqa: E402

VERIFY = "HUB_VERIFY_OBJECT_IDS"


def alternate(runs: int, measure: Callable[[bool], float], warm_up: bool) -> dict[bool, list[float]]:
    """`measure(verify)` for off, on, off, on…; seconds."""
    if warm_up:
        measure(False)
        measure(True)
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(runs):
        for verify in (False, True):
            times[verify].append(measure(verify))
    return times


def report(label: str, times: dict[bool, list[float]]) -> None:
    off, on = statistics.median(times[False]), statistics.median(times[True])
    print(f"{label}: medians of {len(times[False])} alternating runs")
    print(f"  verify off  {off * 1000:8.1f} ms   runs {[round(t * 1000) for t in times[False]]}")
    print(f"  verify on   {on * 1000:8.1f} ms   runs {[round(t * 1000) for t in times[True]]}")
    print(f"  difference  {(on - off) * 1000:+8.1f} ms   {100 * (on - off) / off:+.1f} %", flush=True)


def decode_seconds(data: bytes, bundle: BundleInfo) -> Callable[[bool], float]:
    def measure(verify: bool) -> float:
        start = time.perf_counter()
        decode_bundle(
            io.BytesIO(data),
            bundle_key=bundle.bundle_key,
            name=bundle.partition_key,
            limits=Limits(verify_object_ids=verify),
            catalog=EmptyCatalog(),
        )
        return time.perf_counter() - start

    return measure


def index_seconds(
    bundle: BundleInfo, pg_admin: str, scratch: Path
) -> tuple[Callable[[bool], float], Callable[[], None]]:
    """(measure, close): one in-process index run of the bundle on a fresh catalog and store."""
    from hub_assets.environment import open_instance, prepare
    from hub_assets.index.run import apply_pool_limits, index_partitions

    dagster_db = create_database(pg_admin, "hubbench_verify_dagster")
    home = Path(tempfile.mkdtemp(prefix="verify-ids-", dir=scratch))
    os.environ.update({"HUB_HOME": str(home), DATABASE_URL: with_database(pg_admin, dagster_db)})
    for name in ("DAGSTER_HOME", "HUB_DAGSTER_PG_URL", "HUB_DAGSTER_DIR", "HUB_DAGSTER_LOGS"):
        os.environ.pop(name, None)
    instance = open_instance(prepare())
    apply_pool_limits(instance)

    def measure(verify: bool) -> float:
        catalog_db = create_database(pg_admin, "hubbench_verify")
        store = home / f"store-{catalog_db}"
        upload = store / "uploads" / bundle.partition_key
        upload.parent.mkdir(parents=True)
        shutil.copyfile(bundle.path, upload)
        os.environ.update(
            {
                DATABASE_URL: with_database(pg_admin, catalog_db),
                OBJECT_STORE_URL: store.as_uri(),
                VERIFY: "1" if verify else "",
            }
        )
        import hub_assets.definitions

        importlib.reload(hub_assets.definitions)  # resources read HUB_VERIFY_OBJECT_IDS when built
        try:
            # Dagster logs every event to stderr; the timings are the output here.
            with open(os.devnull, "w") as quiet, contextlib.redirect_stderr(quiet):
                start = time.perf_counter()
                [outcome] = index_partitions(instance, [bundle.partition_key])
                seconds = time.perf_counter() - start
            if not outcome.success:
                raise RuntimeError(f"index failed: {outcome.error}")
            return seconds
        finally:
            drop_database(pg_admin, catalog_db)
            shutil.rmtree(store, ignore_errors=True)

    def close() -> None:
        instance.dispose()
        drop_database(pg_admin, dagster_db)
        shutil.rmtree(home, ignore_errors=True)

    return measure, close


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="alternating runs of each setting")
    parser.add_argument("--pg-admin", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--no-index", action="store_true", help="time decode_bundle only")
    parser.add_argument("--scratch", type=Path, default=Path("/dev/shm") if os.access("/dev/shm", os.W_OK) else None)
    args = parser.parse_args()

    bundle = ensure_bundle(1.0)
    data = bundle.path.read_bytes()
    print(
        f"reference push: {bundle.commits} commits, {bundle.objects} objects, {bundle.size_bytes / 1e6:.1f} MB "
        f"(repo {REPO_ID}); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs",
        flush=True,
    )
    report("decode_bundle", alternate(args.runs, decode_seconds(data, bundle), warm_up=True))
    if not args.no_index:
        measure, close = index_seconds(bundle, args.pg_admin, args.scratch or Path(tempfile.gettempdir()))
        try:
            report("full in-process index run", alternate(args.runs, measure, warm_up=True))
        finally:
            close()
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
