"""Push latency: how long until a pushed bundle's objects are fetchable (issue #6: p50 < 50 ms for
a bundle of at most 4 MiB), and large pushes validated whole (issue #11).

    .venv/bin/python benchmarks/push_latency.py [--pushes 30] [--stores file,s3] [--scratch DIR]
                                                [--large 1,10] [--large-repeats 3]

Project: `hub.push` on a hub that publishes in the background, as the HTTP API's does (validate,
quarantine write, then the commit point: branch compare-and-swap, small objects registered
inline); its objects are fetchable when it returns, which is checked after the timed call by
reading every object back through `read_object`. Beside it, until published: from the push's
start until its upload is under the upload prefix (polled every millisecond), where the sensor
sees it. Baseline: what the seed did for the same bundle: land the
upload, then run its job (benchmarks/baseline.py) before anything is fetchable. Alternating, each
push a new repo, against one catalog database and one store per store kind; one warm-up push of
each first. Prints a table and appends it, with the machine and date, to benchmarks/RESULTS.md.

Large pushes (`--large`, scales of the reference push; file store under --scratch): each push a
fresh process (benchmarks/push_worker.py) on a fresh database and store, alternating: the seed's
push of a large bundle (file read whole, hashed, uploaded, branch moved, bundle recorded: nothing
parsed) against the project's (streamed through the decoder into quarantine, every rule of SPEC
§3 checked, then published), and the index's decode of the same bundle, for the memory a push
must stay within. Time is the push call (after imports and connecting); memory the process's
peak RSS (VmHWM).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from baseline import run_baseline
from run import HERE, PYTHON, WORK, append_section, code_version, ensure_bundle, machine, percentile, scratch_hub

from hub_assets.embedded_postgres import create_scratch_database, drop_database, with_database
from hub_assets.hub import Hub, push, read_object
from hub_assets.sample import SampleSpec, write_sample
from hub_assets.store import partition_key, upload_key

# (label, sample shape): a typical push of a few commits, and one just under the inline limit.
SHAPES = {
    "3 commits, ~55 objects": SampleSpec(commits=3, files=40),
    "1 commit, 340 objects": SampleSpec(commits=1, files=340),
}


def _bundles(pushes: int) -> dict[str, list[tuple[bytes, str]]]:
    """`pushes` + 1 distinct bundles per shape (different seeds): (bytes, head commit id)."""
    made: dict[str, list[tuple[bytes, str]]] = {}
    for label, shape in SHAPES.items():
        made[label] = []
        for seed in range(pushes + 1):
            path = WORK / "push" / f"{shape.commits}-{shape.files}-{seed}.bundle"
            path.parent.mkdir(parents=True, exist_ok=True)
            info = write_sample(path, SampleSpec(**{**vars(shape), "seed": seed}))
            assert info.size_bytes <= 4 * 1024 * 1024, f"{label}: {info.size_bytes} bytes is over 4 MiB"
            made[label].append((path.read_bytes(), info.head_commit_id))
    return made


def _object_ids(data: bytes) -> list[str]:
    import io

    from hub_assets.bundle import Limits
    from hub_assets.bundle.wire import read_wire

    return [o.object_id for o in read_wire(io.BytesIO(data), Limits()).objects]


def measure(hub: Hub, database_url: str, store_url: str, bundles: list[tuple[bytes, str]], tag: str) -> dict:
    project, until_published, baseline, fetch_all = [], [], [], []
    for index, (data, head) in enumerate(bundles):
        ids = _object_ids(data)
        repo = f"p-{tag}-{index}"
        started = time.perf_counter()
        pushed = push(hub, repo, "main", data, head_commit_id=head)
        elapsed = time.perf_counter() - started
        while not hub.store.exists(upload_key(pushed.partition_key)):
            time.sleep(0.001)
        published = time.perf_counter() - started
        started = time.perf_counter()
        for object_id in ids:
            assert hashlib.sha256(read_object(hub, repo, object_id)).hexdigest() == object_id
        fetched = time.perf_counter() - started

        repo = f"b-{tag}-{index}"
        key = partition_key(repo, hashlib.sha256(data).hexdigest())
        started = time.perf_counter()
        hub.store.put(upload_key(key), data)
        run_baseline(key, database_url, store_url)
        seed = time.perf_counter() - started
        assert read_object(hub, repo, ids[0])

        if index:  # the first push of each is the warm-up
            project.append(elapsed)
            until_published.append(published)
            baseline.append(seed)
            fetch_all.append(fetched / len(ids))
    return {
        "project": project,
        "published": until_published,
        "baseline": baseline,
        "fetch_per_object": fetch_all,
        "objects": len(ids),
    }


LARGE_MODES = ("seed", "push", "decode")


def large_run(mode: str, path: Path, scratch: Path, admin_url: str) -> dict:
    """One large push (or decode) in a fresh process, on a fresh database and file store."""
    token = uuid.uuid4().hex[:12]
    database = create_scratch_database(admin_url, "hublarge")
    root = scratch.resolve() / "large-stores" / token
    out = WORK / "large" / f"{token}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        command = [PYTHON, str(HERE / "push_worker.py"), mode, str(out), str(path), "large"]
        command += [with_database(admin_url, database), root.as_uri()]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "AWS_", "DAGSTER_"))}
        subprocess.run(command, env=env, check=True, timeout=1800)
        return json.loads(out.read_text())
    finally:
        drop_database(admin_url, database)
        shutil.rmtree(root, ignore_errors=True)


def measure_large(scales: list[float], repeats: int, scratch: Path, admin_url: str) -> list[str]:
    rows = []
    for scale in scales:
        bundle = ensure_bundle(scale)
        runs: dict[str, list[dict]] = {mode: [] for mode in LARGE_MODES}
        for _ in range(repeats):
            for mode in LARGE_MODES:
                runs[mode].append(large_run(mode, bundle.path, scratch, admin_url))
                print(f"x{scale:g} {mode}: {runs[mode][-1]}", flush=True)
        wall = {mode: statistics.median(r["wall_s"] for r in runs[mode]) for mode in LARGE_MODES}
        rss = {mode: statistics.median(r["peak_rss_kb"] / 1024 for r in runs[mode]) for mode in LARGE_MODES}
        spread = {mode: ", ".join(f"{r['wall_s']:.2f}" for r in runs[mode]) for mode in LARGE_MODES}
        rows.append(
            f"| x{scale:g} ({bundle.size_bytes / 1e6:.1f} MB) | {repeats} | {wall['seed']:.2f} ({spread['seed']}) | "
            f"{wall['push']:.2f} ({spread['push']}) | {wall['push'] / wall['seed']:.2f}× | "
            f"{rss['seed']:.0f} / {rss['push']:.0f} | {wall['decode']:.2f} / {rss['decode']:.0f} |"
        )
        print(rows[-1], flush=True)
    return [
        "",
        "Large pushes (file store on the scratch disk; medians, every run in brackets):",
        "",
        "| bundle | runs | seed push s (upload + hash) | project push s (validated, published) | "
        "push / seed | peak RSS MB, seed / push | index decode s / peak RSS MB |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *rows,
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pushes", type=int, default=30, help="timed pushes per shape and store")
    parser.add_argument("--stores", default="file,s3")
    parser.add_argument("--pg-admin", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--scratch", type=Path, default=WORK, help="file store and s3rver data")
    parser.add_argument("--large", default="1,10", help="scales of the reference push for large pushes ('' for none)")
    parser.add_argument("--large-repeats", type=int, default=3)
    args = parser.parse_args()
    load = os.getloadavg()
    bundles = _bundles(args.pushes) if args.pushes else {}
    rows = []
    s3_version = None
    for store in [name for name in args.stores.split(",") if name]:
        with scratch_hub(store, args.pg_admin, args.scratch, "hubpush") as target:
            s3_version = target.s3_version or s3_version
            database_url, store_url = target.database_url, target.store_url
            hub = Hub.connect(database_url, store_url, publish_in_background=True)
            try:
                for label, shaped in bundles.items():
                    result = measure(hub, database_url, store_url, shaped, f"{store}-{len(rows)}")
                    modes = ("project", "published", "baseline")
                    p50 = {mode: statistics.median(result[mode]) * 1000 for mode in modes}
                    p90 = {mode: percentile(result[mode], 0.9) * 1000 for mode in modes}
                    rows.append(
                        f"| {store} | {label} ({len(shaped[0][0]) / 1e6:.1f} MB) | {len(result['project'])} | "
                        f"{p50['project']:.1f} / {p90['project']:.1f} | "
                        f"{p50['published']:.1f} / {p90['published']:.1f} | "
                        f"{p50['baseline']:.1f} / {p90['baseline']:.1f} | "
                        f"{p50['project'] / p50['baseline']:.3f}× | "
                        f"{statistics.median(result['fetch_per_object']) * 1000:.2f} |"
                    )
                    print(rows[-1], flush=True)
            finally:
                hub.close()
    scales = [float(scale) for scale in args.large.split(",") if scale]
    large = measure_large(scales, args.large_repeats, args.scratch, args.pg_admin) if scales else []
    header = [
        f"## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC — push latency (until the objects are fetchable)",
        "",
        f"- command: `python benchmarks/push_latency.py {' '.join(sys.argv[1:])}`",
        f"- machine: {machine(args.pg_admin, s3_version, load)}",
        f"- code: {code_version()}",
        f"- store data under `{args.scratch}`; target: p50 < 50 ms for a bundle of at most 4 MiB",
    ]
    table = [
        "",
        "| store | bundle | pushes | project p50 / p90 ms (fetchable) | until published p50 / p90 ms | "
        "baseline (upload + seed job) p50 / p90 ms | p50 project/baseline | fetch ms per object, after |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    text = "\n".join(header + (table + rows if rows else []) + large) + "\n"
    append_section(args.results, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
