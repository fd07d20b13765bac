"""Clone throughput: how fast the hub answers `/fetch` with `have = []` (fetch_pack, what `muse
clone` gets) for the reference push, against reading the pushed bundle file back.

    .venv/bin/python benchmarks/clone_throughput.py [--scale 1] [--repeats 5] [--stores file,s3]

The reference push (hub_assets.sample, cached under benchmarks/.work) is pushed and indexed once
per store (`hub-assets index` in a subprocess), so every object is promoted to the store and the
pack is read from the store, as a clone of an indexed repo is. Then, alternating, `repeats`
times each: the baseline reads the bundle file (its bytes, as a hub that kept the upload could
send it) and the project builds the pack from the catalog and the store (`fetch_pack`, no size
cap), and an incremental fetch of the last 10 commits (have = the head's 10th ancestor). MB/s
are of the bytes each produces. Prints a table and appends it, with the machine and date, to
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import msgpack
from run import HERE, WORK, append_section, code_version, ensure_bundle, machine, scratch_hub

from hub_assets.hub import Hub, fetch_pack, push
from hub_assets.settings import DATABASE_URL, OBJECT_STORE_URL

REPO_ID = "bench-clone"
UNCAPPED = sys.maxsize
INCREMENTAL = 10


def index(partition_key: str, database_url: str, store_url: str, home: Path) -> None:
    env = {**os.environ, DATABASE_URL: database_url, OBJECT_STORE_URL: store_url, "HUB_HOME": str(home)}
    env.pop("DAGSTER_HOME", None)
    subprocess.run([str(Path(sys.executable).parent / "hub-assets"), "index", partition_key], env=env, check=True)


def timed(action: Callable[[], bytes]) -> tuple[float, int]:
    started = time.perf_counter()
    size = len(action())
    return time.perf_counter() - started, size


def first_parent_ancestor(hub: Hub, head: str, steps: int) -> str:
    parents = {row.commit_id: row.parent_ids for row in hub.catalog.history(REPO_ID, head)}
    for _ in range(steps):
        head = parents[head][0]
    return head


def measure(hub: Hub, bundle_path: Path, head: str, repeats: int) -> dict[str, list[tuple[float, int]]]:
    have = first_parent_ancestor(hub, head, INCREMENTAL)
    runs: dict[str, list[tuple[float, int]]] = {"file": [], "clone": [], "incremental": []}
    for _ in range(repeats):
        runs["file"].append(timed(bundle_path.read_bytes))
        runs["clone"].append(timed(lambda: fetch_pack(hub, REPO_ID, [head], [], max_bytes=UNCAPPED)))
        runs["incremental"].append(timed(lambda: fetch_pack(hub, REPO_ID, [head], [have], max_bytes=UNCAPPED)))
    return runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--stores", default="file,s3")
    parser.add_argument("--pg-admin", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--scratch", type=Path, default=WORK)
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args()

    bundle = ensure_bundle(args.scale)
    data = bundle.path.read_bytes()
    head = msgpack.unpackb(data)["branch_heads"]["main"]
    load = os.getloadavg()
    rows, s3_version = [], None
    for store in args.stores.split(","):
        with scratch_hub(store, args.pg_admin, args.scratch, "hubclone") as target:
            s3_version = target.s3_version or s3_version
            hub = Hub.connect(target.database_url, target.store_url)
            try:
                result = push(hub, REPO_ID, "main", data, head_commit_id=head)
                home = args.scratch.resolve() / "clone-home" / target.database_url.rsplit("/", 1)[1]
                index(result.partition_key, target.database_url, target.store_url, home)
                runs = measure(hub, bundle.path, head, args.repeats)
            finally:
                hub.close()
        median = {mode: statistics.median(seconds for seconds, _ in timings) for mode, timings in runs.items()}
        size = {mode: timings[0][1] for mode, timings in runs.items()}
        rate = {mode: size[mode] / median[mode] / 1e6 for mode in runs}
        rows.append(
            f"| {store} | {size['file'] / 1e6:.1f} MB in {median['file'] * 1000:.0f} ms = {rate['file']:.0f} MB/s | "
            f"{size['clone'] / 1e6:.1f} MB in {median['clone'] * 1000:.0f} ms = {rate['clone']:.0f} MB/s | "
            f"{rate['clone'] / rate['file']:.3f}× | "
            f"{size['incremental'] / 1e3:.0f} kB in {median['incremental'] * 1000:.0f} ms |"
        )
        print(rows[-1], flush=True)
    header = [
        f"## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC — clone throughput (fetch_pack, have = [])",
        "",
        f"- command: `python benchmarks/clone_throughput.py {' '.join(sys.argv[1:])}`",
        f"- machine: {machine(args.pg_admin, s3_version, load)}",
        f"- code: {code_version()}",
        f"- reference push x{args.scale:g}: {bundle.commits:,} commits, {bundle.objects:,} objects, "
        f"bundle {bundle.size_bytes / 1e6:.1f} MB; medians of {args.repeats} alternating runs",
        "",
        "| store | baseline: read the bundle file | project: clone pack from catalog + store | "
        f"clone / file MB/s | incremental fetch (last {INCREMENTAL} commits) |",
        "|---|---:|---:|---:|---:|",
    ]
    append_section(args.results, "\n".join(header + rows) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
