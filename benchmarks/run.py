"""Benchmark: the project's index vs the seed-style baseline job (issue #6).

    .venv/bin/python benchmarks/run.py [--scales 1,10] [--repeats 3] [--stores file,s3]

For each store (file://, S3 on a loopback s3rver) and scale of the reference push
(hub_assets.sample; scale 1 = 1,035 commits, ~5.5k objects, ~47 MB): generate the bundle once
(cached under benchmarks/.work), then run baseline and project alternately (A B A B …),
`repeats` times each. Every run is a fresh subprocess (benchmarks/worker.py) against a fresh
catalog database on the PostgreSQL at --pg-admin and a fresh store (new directory / new
bucket), with the bundle already uploaded under uploads/. Peak RSS is the subprocess's
high-water mark (VmHWM). Prints one table per (store, scale) and appends them, with the machine
and date, to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import psycopg
from sqlalchemy.engine import make_url

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WORK = HERE / ".work"
sys.path.insert(0, str(REPO))

from hub_assets.embedded_postgres import (  # noqa: E402
    create_scratch_database,
    drop_database,
    libpq_conninfo,
    with_database,
)
from hub_assets.sample import SampleSpec, write_sample  # noqa: E402
from hub_assets_tests.pg_activity import settled_activity  # noqa: E402
from hub_assets_tests.private_postgres import private_postgres  # noqa: E402

PYTHON = sys.executable
REPO_ID = "bench"
S3_KEY = "S3RVER"

# (label, baseline phase keys summed, project stats key)
ROWS: list[tuple[str, list[str], str | None]] = [
    ("fetch (+ sha256 in baseline)", ["fetch"], "fetch_bundle_ms"),
    ("unpack / validate / resolve", ["unpack", "resolve", "decode"], "unpack_ms"),
    ("  baseline: msgpack.unpackb", ["unpack"], None),
    ("  baseline: resolve deltas", ["resolve"], None),
    ("  baseline: zstd decode", ["decode"], None),
    ("object puts", ["puts"], "object_puts_ms"),
    ("object rows", ["objects"], "object_insert_ms"),
    ("refs", ["refs"], "object_refs_ms"),
    ("snapshots", ["snapshots"], "snapshot_insert_ms"),
    ("commits", ["commits"], "commit_insert_ms"),
]
PROJECT_PHASES = [key for _, _, key in ROWS if key]


# --------------------------------------------------------------------------- infrastructure


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class S3rver:
    """s3rver (npm) on a free loopback port, data in a temp dir under benchmarks/.work."""

    def __init__(self, scratch: Path) -> None:
        script = HERE / "node_modules" / "s3rver" / "bin" / "s3rver.js"
        if not script.exists():
            print("installing s3rver into benchmarks/node_modules …", flush=True)
            subprocess.run(["npm", "install", "--prefix", str(HERE), "s3rver"], check=True)
        self.directory = scratch / f"s3rver-{uuid.uuid4().hex[:8]}"
        self.directory.mkdir(parents=True)
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log = (WORK / f"{self.directory.name}.log").open("wb")
        self.process = subprocess.Popen(
            ["node", str(script), "-d", str(self.directory), "-a", "127.0.0.1", "-p", str(self.port), "--silent"],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"s3rver did not start (see {self.log.name})") from None
                time.sleep(0.1)
        self.env = {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": S3_KEY,
            "AWS_SECRET_ACCESS_KEY": S3_KEY,
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        self.client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=S3_KEY,
            aws_secret_access_key=S3_KEY,
            region_name="us-east-1",
        )

    def version(self) -> str:
        package = json.loads((HERE / "node_modules" / "s3rver" / "package.json").read_text())
        node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
        return f"s3rver {package['version']} on node {node}"

    def stop(self) -> None:
        self.client.close()
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()
        shutil.rmtree(self.directory, ignore_errors=True)


@dataclass(frozen=True)
class ScratchHub:
    database_url: str
    store_url: str
    s3_version: str | None  # the s3rver serving `store_url`, when it is an S3 store


@contextmanager
def scratch_hub(store: str, admin_url: str, scratch: Path, name: str) -> Iterator[ScratchHub]:
    """A fresh catalog database and a fresh store (`file` under `scratch`, or `s3` on an s3rver of
    its own, its variables exported), both dropped afterwards."""
    database = create_scratch_database(admin_url, name)
    s3 = S3rver(scratch) if store == "s3" else None
    try:
        if s3:
            os.environ.update(s3.env)
            bucket = f"{name}-{database[-8:]}"
            s3.client.create_bucket(Bucket=bucket)
            yield ScratchHub(with_database(admin_url, database), f"s3://{bucket}/hub", s3.version())
        else:
            store_url = (scratch.resolve() / f"{name}-store" / database).as_uri()
            yield ScratchHub(with_database(admin_url, database), store_url, None)
    finally:
        if s3:
            s3.stop()
        drop_database(admin_url, database)


# --------------------------------------------------------------------------- bundles


@dataclass(frozen=True)
class BundleInfo:
    scale: float
    path: Path
    bundle_key: str
    size_bytes: int
    commits: int
    objects: int
    manifest_entries: int

    @property
    def partition_key(self) -> str:
        return f"{REPO_ID}/{self.bundle_key}"


def ensure_bundle(scale: float) -> BundleInfo:
    WORK.mkdir(parents=True, exist_ok=True)
    name = f"reference-x{scale:g}"
    path, meta = WORK / f"{name}.bundle", WORK / f"{name}.json"
    if path.exists() and meta.exists():
        info = json.loads(meta.read_text())
        if info["size_bytes"] == path.stat().st_size:
            return BundleInfo(
                scale,
                path,
                info["bundle_key"],
                info["size_bytes"],
                info["commits"],
                info["objects"],
                info["manifest_entries"],
            )
    print(f"generating the reference push x{scale:g} -> {path.relative_to(REPO)} …", flush=True)
    started = time.perf_counter()
    sample = write_sample(path, SampleSpec().scaled(scale))
    info = {
        "bundle_key": sample.bundle_key,
        "size_bytes": sample.size_bytes,
        "commits": sample.commits,
        "objects": sample.objects,
        "manifest_entries": sample.manifest_entries,
    }
    meta.write_text(json.dumps(info))
    print(
        f"  {sample.size_bytes / 1e6:.1f} MB, {sample.commits} commits, {sample.objects} objects "
        f"in {time.perf_counter() - started:.1f} s",
        flush=True,
    )
    return BundleInfo(scale, path, **{**info})


# --------------------------------------------------------------------------- one run


@dataclass
class Target:
    kind: str  # file | s3
    scratch: Path  # where file stores (and s3rver's data) live
    s3: S3rver | None = None


def _fresh_store(target: Target, bundle: BundleInfo, token: str) -> tuple[str, Any]:
    """A new, empty store with the bundle uploaded under uploads/; returns (url, cleanup)."""
    key = f"uploads/{bundle.partition_key}"
    if target.kind == "file":
        root = target.scratch / "stores" / token
        (root / key).parent.mkdir(parents=True)
        shutil.copyfile(bundle.path, root / key)
        return root.resolve().as_uri(), lambda: shutil.rmtree(root, ignore_errors=True)
    assert target.s3 is not None
    bucket = f"bench-{token}"
    target.s3.client.create_bucket(Bucket=bucket)
    with bundle.path.open("rb") as body:
        target.s3.client.put_object(Bucket=bucket, Key=f"hub/{key}", Body=body)
    # Dropping the bucket's directory is what DeleteBucket would end with, without 5k DELETEs.
    return f"s3://{bucket}/hub", lambda: shutil.rmtree(target.s3.directory / bucket, ignore_errors=True)


def _count_stored_objects(target: Target, store_url: str) -> int:
    if target.kind == "file":
        root = Path(store_url.removeprefix("file://")) / "objects"
        return sum(len(files) for _, _, files in os.walk(root))  # temp files live outside objects/
    assert target.s3 is not None
    bucket = store_url.removeprefix("s3://").split("/", 1)[0]
    root = target.s3.directory / bucket / "hub" / "objects"
    return sum(1 for _, _, files in os.walk(root) for f in files if f.endswith("._S3rver_object"))


def _spot_check(target: Target, store_url: str, object_ids: list[str]) -> None:
    """A few stored objects read back: their bytes hash to their ids (catches a store, or a
    client, that mangles bodies)."""
    import hashlib

    for object_id in object_ids:
        key = f"objects/{object_id[:2]}/{object_id[2:]}"
        if target.kind == "file":
            data = (Path(store_url.removeprefix("file://")) / key).read_bytes()
        else:
            assert target.s3 is not None
            bucket = store_url.removeprefix("s3://").split("/", 1)[0]
            data = target.s3.client.get_object(Bucket=bucket, Key=f"hub/{key}")["Body"].read()
        if hashlib.sha256(data).hexdigest() != object_id:
            raise RuntimeError(f"stored object {key} does not hash to its id")


def _catalog_counts(admin_url: str, database: str) -> tuple[dict[str, int], list[str]]:
    counts = {}
    with psycopg.connect(libpq_conninfo(with_database(admin_url, database))) as conn:
        for table in ("musehub_snapshots", "musehub_commits", "musehub_objects", "musehub_object_refs"):
            counts[table.removeprefix("musehub_")] = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        counts["objects_not_promoted"] = conn.execute(
            "SELECT count(*) FROM musehub_objects WHERE content_cache IS NOT NULL OR storage_uri = 'pending'"
        ).fetchone()[0]
        sample = [r[0] for r in conn.execute("SELECT object_id FROM musehub_objects ORDER BY random() LIMIT 5")]
    return counts, sample


def worker_env(home: Path, database_url: str, store_url: str, dagster_pg_url: str, s3: S3rver | None) -> dict[str, str]:
    """The environment of a worker process (benchmarks/worker.py, `hub-assets serve`): this
    process's, without any HUB_/AWS_/DAGSTER_ setting of the caller's shell."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "AWS_", "DAGSTER_"))}
    env.update(s3.env if s3 else {})
    env.update(
        {
            "HUB_HOME": str(home),
            "DAGSTER_HOME": str(home / "dagster"),
            "HUB_DATABASE_URL": database_url,
            "HUB_OBJECT_STORE_URL": store_url,
            "HUB_DAGSTER_PG_URL": dagster_pg_url,
        }
    )
    return env


def init_dagster_tables(dagster_pg_url: str) -> None:
    """Create Dagster's own tables in its database once: no timed run pays for their creation."""
    home = WORK / "homes" / "init"
    catalog_url = dagster_pg_url.replace("+psycopg2://", "+psycopg://", 1)
    env = worker_env(home, catalog_url, "file:///tmp", dagster_pg_url, None)
    subprocess.run(
        [PYTHON, str(HERE / "worker.py"), "init", str(WORK / "init.json")], env=env, check=True, cwd=str(WORK)
    )
    shutil.rmtree(home, ignore_errors=True)


def run_once(
    mode: str,
    target: Target,
    bundle: BundleInfo,
    admin_url: str,
    dagster_pg_url: str,
    profile_dir: Path | None,
    timeline_dir: Path | None = None,
) -> dict[str, Any]:
    token = uuid.uuid4().hex[:12]
    database = create_scratch_database(admin_url, "hubbench")
    database_url = with_database(admin_url, database)
    store_url, drop_store = _fresh_store(target, bundle, token)
    home = WORK / "homes" / token
    home.mkdir(parents=True)
    env = worker_env(home, database_url, store_url, dagster_pg_url, target.s3)
    if profile_dir and mode == "project":
        env["HUB_BENCH_PROFILE"] = str(profile_dir / f"{target.kind}-x{bundle.scale:g}-{token}.txt")
    out = home / "result.json"
    admin = libpq_conninfo(admin_url)
    dagster_db = make_url(dagster_pg_url).database
    # What this run costs PostgreSQL: the whole worker process (instance, run, its reads of the
    # result), counted once each session has ended and reported.
    before = {db: settled_activity(admin, db) for db in (dagster_db, database)}
    log = WORK / "logs" / f"{target.kind}-x{bundle.scale:g}-{mode}-{token}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    try:
        with log.open("wb") as log_file:
            started = time.perf_counter()
            process = subprocess.Popen(
                [PYTHON, str(HERE / "worker.py"), mode, str(out), bundle.partition_key, database_url, store_url],
                env=env,
                cwd=str(home),
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
            process.wait()
            process_s = time.perf_counter() - started
        if process.returncode != 0 or not out.exists():
            tail = log.read_text(errors="replace")[-4000:]
            detail = json.loads(out.read_text()).get("error") if out.exists() else None
            raise RuntimeError(f"{mode} run failed (exit {process.returncode}): {detail}\n--- {log} ---\n{tail}")
        result = json.loads(out.read_text())
        result["peak_rss_mb"] = result["peak_rss_kb"] / 1024
        result["process_s"] = process_s
        roles = {"dagster": dagster_db, "catalog": database}
        result["activity"] = {role: settled_activity(admin, db) - before[db] for role, db in roles.items()}
        counts, sample = _catalog_counts(admin_url, database)
        counts["stored_objects"] = _count_stored_objects(target, store_url)
        _spot_check(target, store_url, sample)
        result["counts"] = counts
        if mode == "project":
            with psycopg.connect(libpq_conninfo(with_database(admin_url, dagster_db))) as conn:
                query = "SELECT count(*) FROM event_logs WHERE run_id = %s"
                result["events"] = conn.execute(query, [result["run_id"]]).fetchone()[0]
        if timeline_dir and mode == "project":
            write_timeline(timeline_dir / f"{target.kind}-x{bundle.scale:g}-{token}.txt", result["timeline"])
        if mode == "project" and result.get("status") != "indexed":
            raise RuntimeError(f"project run left the bundle {result.get('status')!r}")
        log.unlink()
        return result
    finally:
        drop_database(admin_url, database)
        drop_store()
        shutil.rmtree(home, ignore_errors=True)


def write_timeline(path: Path, timeline: list[list[Any]]) -> None:
    """One line per event of the run (seconds since RUN_START, gap since the previous event, type,
    step, message), then each step's STEP_START → STEP_SUCCESS."""
    lines, previous, started, spans = [], 0.0, {}, []
    for at, kind, step, message in timeline:
        lines.append(f"{at:8.4f} +{at - previous:7.4f}  {kind:28s} {step:14s} {message}")
        previous = at
        if kind == "STEP_START":
            started[step] = at
        elif kind == "STEP_SUCCESS" and step in started:
            spans.append(f"{step:14s} {started[step]:8.4f} → {at:8.4f} = {at - started[step]:.4f} s")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([*lines, "", *spans]) + "\n")


# --------------------------------------------------------------------------- summary


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}×" if b > 0 else "—"


def _phase_values(result: dict[str, Any], mode: str, baseline_keys: list[str], project_key: str | None) -> float | None:
    if mode == "baseline":
        return sum(result["phases"][k] for k in baseline_keys)
    if project_key is None:
        return None
    return result["stats"].get(project_key, 0) / 1000


def derived(result: dict[str, Any], mode: str, bundle: BundleInfo) -> dict[str, float]:
    if mode == "baseline":
        phases = result["phases"]
        wall = phases["total"]
        in_phases = sum(sum(phases[k] for k in keys) for _, keys, pk in ROWS if pk)
        other = wall - in_phases  # setup (engine, schema, client) + bundle row
        return {
            "wall": wall,
            "run": wall,
            "sum_phases": in_phases,
            "critical": in_phases,
            "other": other,
            "outside_assets": float("nan"),
            "inside_assets": float("nan"),
        }
    stats = result["stats"]
    in_phases = sum(stats.get(k, 0) for k in PROJECT_PHASES) / 1000
    # Object puts and snapshot writes run at once (index/executor.py): phase times overlap, and
    # what a run must wait for is the longest chain of them through the asset graph.
    phase = {key: stats.get(key, 0) / 1000 for key in PROJECT_PHASES}
    critical = (
        phase["fetch_bundle_ms"]
        + phase["unpack_ms"]
        + max(
            phase["object_puts_ms"] + phase["object_insert_ms"] + phase["object_refs_ms"], phase["snapshot_insert_ms"]
        )
        + phase["commit_insert_ms"]
    )
    wall = result["wall_s"]
    elapsed = stats.get("elapsed_ms", 0) / 1000
    return {
        "wall": wall,
        "run": result["run_s"],
        "sum_phases": in_phases,
        "critical": critical,
        "other": wall - critical,
        "outside_assets": wall - elapsed,
        "inside_assets": elapsed - critical,
    }


def summarize(store: str, bundle: BundleInfo, runs: dict[str, list[dict[str, Any]]]) -> tuple[str, dict[str, float]]:
    lines = [
        f"### {store} store, scale {bundle.scale:g}× — {bundle.commits:,} commits, {bundle.objects:,} objects, "
        f"{bundle.size_bytes / 1e6:.1f} MB (medians of {len(runs['baseline'])} baseline / "
        f"{len(runs['project'])} project runs, seconds)",
        "",
        "| phase | baseline | project | project/baseline |",
        "|---|---:|---:|---:|",
    ]
    for label, baseline_keys, project_key in ROWS:
        b = _median([_phase_values(r, "baseline", baseline_keys, project_key) for r in runs["baseline"]])
        if project_key is None:
            lines.append(f"| {label} | {b:.3f} | — | |")
            continue
        p = _median([_phase_values(r, "project", baseline_keys, project_key) for r in runs["project"]])
        lines.append(f"| {label} | {b:.3f} | {p:.3f} | {_ratio(p, b)} |")
    d = {mode: [derived(r, mode, bundle) for r in runs[mode]] for mode in runs}
    med = {mode: {k: _median([x[k] for x in d[mode]]) for k in d[mode][0]} for mode in d}
    b, p = med["baseline"], med["project"]
    lines += [
        f"| sum of the phases above | {b['sum_phases']:.3f} | {p['sum_phases']:.3f} | "
        f"{_ratio(p['sum_phases'], b['sum_phases'])} |",
        f"| longest chain of phases (project: puts → rows → refs and snapshots run at once) | "
        f"{b['critical']:.3f} | {p['critical']:.3f} | {_ratio(p['critical'], b['critical'])} |",
        f"| not in a phase: baseline setup + bundle row; project = Dagster overhead | {b['other']:.3f} | "
        f"{p['other']:.3f} | |",
        f"| **total (run wall time)** | **{b['wall']:.3f}** | **{p['wall']:.3f}** | "
        f"**{_ratio(p['wall'], b['wall'])}** |",
        f"| **index run: Dagster's run start → success (the target's measure; baseline: its wall time)** | "
        f"**{b['run']:.3f}** | **{p['run']:.3f}** | **{_ratio(p['run'], b['run'])}** |",
        "",
    ]
    rss = {mode: [r["peak_rss_mb"] for r in runs[mode]] for mode in runs}
    setup = {mode: [r["import_s"] + r["instance_s"] for r in runs[mode]] for mode in runs}
    process = {mode: [r["process_s"] for r in runs[mode]] for mode in runs}
    per_object = {mode: med[mode]["wall"] / bundle.objects * 1000 for mode in med}
    counts = {mode: runs[mode][-1]["counts"] for mode in runs}
    walls = {mode: ", ".join(f"{x['wall']:.2f}" for x in d[mode]) for mode in d}
    lines += [
        f"- total, ratio project/baseline: **{_ratio(p['wall'], b['wall'])}** "
        f"(baseline {b['wall']:.2f} s, project {p['wall']:.2f} s; every run: baseline [{walls['baseline']}], "
        f"project [{walls['project']}])",
        f"- index run (run start → success), ratio project/baseline: **{_ratio(p['run'], b['run'])}**; "
        f"creating the run before its start: {p['wall'] - p['run']:.3f} s",
        f"- peak RSS (median / max): baseline {_median(rss['baseline']):.0f} / {max(rss['baseline']):.0f} MB, "
        f"project {_median(rss['project']):.0f} / {max(rss['project']):.0f} MB",
        f"- Dagster overhead (run wall − longest chain of phases): {p['other']:.3f} s; "
        f"of it (medians, need not add up) "
        f"{p['outside_assets']:.3f} s outside the "
        f"assets (wall − stats.elapsed_ms: job start, resource setup, run/step events) + {p['inside_assets']:.3f} s "
        f"inside them but outside the timed phases (bundle-row insert, asset checks, metadata, step transitions); "
        f"from the run's start (the target's window): {p['run'] - p['critical']:.3f} s",
        f"- time per object (run wall / objects): baseline {per_object['baseline']:.3f} ms, "
        f"project {per_object['project']:.3f} ms",
        f"- one-off, not in the timed window (import + instance/pools): baseline {_median(setup['baseline']):.2f} s, "
        f"project {_median(setup['project']):.2f} s; whole subprocess: baseline {_median(process['baseline']):.2f} s, "
        f"project {_median(process['project']):.2f} s",
        f"- end state (rows / stored objects), baseline: {_fmt_counts(counts['baseline'])}; "
        f"project: {_fmt_counts(counts['project'])}",
        f"- what a run costs PostgreSQL (medians per worker process, Dagster's instance database / the catalog's, "
        f"the latter with the worker's one read of the bundle row after the run): "
        f"{_fmt_activity(runs['project'])}; baseline (catalog only): {_fmt_activity(runs['baseline'], ('catalog',))}",
        "",
    ]
    return "\n".join(lines), {"baseline": per_object["baseline"], "project": per_object["project"]}


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def append_section(results: Path, text: str) -> None:
    """Print a section and append it to the results file."""
    print("\n" + text)
    with results.open("a") as out:
        out.write("\n" + text)
    print(f"appended to {results}")


def _fmt_activity(runs: list[dict[str, Any]], roles: tuple[str, ...] = ("dagster", "catalog")) -> str:
    """Sessions opened, transactions and statements (pg_stat_statements, where the server loads it)."""
    parts = []
    for what in ("sessions", "transactions", "statements"):
        values = [[getattr(r["activity"][role], what) for r in runs] for role in roles]
        if any(v is None for column in values for v in column):
            continue
        parts.append(f"{what} " + " / ".join(f"{_median(column):g}" for column in values))
    if "events" in runs[0]:
        parts.append(f"events {_median([r['events'] for r in runs]):g}")
    return ", ".join(parts)


def _fmt_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in counts.items())


def scratch_database(stack: ExitStack, pg_admin: str, own_postgres: bool, prefix: str) -> tuple[str, str, str]:
    """A fresh database on `pg_admin`'s server (or on a PostgreSQL of its own, statements counted),
    dropped when `stack` closes: (admin URL, database name, database URL)."""
    admin_url = stack.enter_context(private_postgres()).admin_url if own_postgres else pg_admin
    database = create_scratch_database(admin_url, prefix)
    stack.callback(drop_database, admin_url, database)
    return admin_url, database, with_database(admin_url, database)


def code_version() -> str:
    """The commit measured, and any uncommitted change to the package (others may be editing it)."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout.strip()

    changed = git("status", "--porcelain", "--", "hub_assets").splitlines()
    dirty = f" + uncommitted changes to {', '.join(line.split(maxsplit=1)[1] for line in changed)}" if changed else ""
    return f"hub_assets at commit {git('rev-parse', '--short', 'HEAD')}{dirty}"


def machine(admin_url: str | None, s3_version: str | None, load: tuple[float, float, float]) -> str:
    """The machine a benchmark ran on; `admin_url` None for one that uses no PostgreSQL."""
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )
    if admin_url is None:
        postgres = "PostgreSQL not used"
    else:
        with psycopg.connect(libpq_conninfo(admin_url)) as conn:
            pg = conn.execute("SHOW server_version").fetchone()[0]
        postgres = f"PostgreSQL {pg} at {make_url(admin_url).host}:{make_url(admin_url).port}"
    parts = [
        f"CPU {cpu}, nproc {os.cpu_count()}",
        f"memory {mem_kb / 1024 / 1024:.1f} GiB",
        f"{platform.system()} {platform.release()}",
        f"Python {platform.python_version()}",
        postgres,
        f"load average at start {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}",
    ]
    if s3_version:
        parts.append(s3_version)
    return "; ".join(parts)


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", default="1,10", help="comma-separated scales of the reference push")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each of baseline and project")
    parser.add_argument("--stores", default="file,s3", help="comma-separated: file, s3")
    parser.add_argument("--pg-admin", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument(
        "--own-postgres",
        action="store_true",
        help="run on a PostgreSQL of its own (pg_stat_statements loaded: statements are counted) instead of --pg-admin",
    )
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md", help="markdown file to append to")
    parser.add_argument(
        "--scratch",
        type=Path,
        default=WORK,
        help="directory for the file stores and s3rver's data (default benchmarks/.work; /dev/shm takes the disk out)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="directory: profile every project run with pyinstrument (pip install pyinstrument), one text file each",
    )
    parser.add_argument(
        "--timeline",
        type=Path,
        help="directory: every project run's events (time since RUN_START, gaps, steps' spans), one text file each",
    )
    args = parser.parse_args()
    with ExitStack() as stack:
        if args.own_postgres:
            args.pg_admin = stack.enter_context(private_postgres()).admin_url
        return benchmark(args)


def benchmark(args: argparse.Namespace) -> int:
    if args.profile:
        args.profile = args.profile.resolve()
        args.profile.mkdir(parents=True, exist_ok=True)
    scales = [float(s) for s in args.scales.split(",")]
    args.scratch = args.scratch.resolve()
    args.scratch.mkdir(parents=True, exist_ok=True)
    stores = [s.strip() for s in args.stores.split(",")]
    if not set(stores) <= {"file", "s3"}:
        raise SystemExit("--stores takes file and/or s3")
    started_at = datetime.now(UTC)
    command = "python benchmarks/run.py " + " ".join(sys.argv[1:])

    load = os.getloadavg()
    code = code_version()
    bundles = {scale: ensure_bundle(scale) for scale in scales}
    dagster_db = create_scratch_database(args.pg_admin, "hubbench_dagster")
    dagster_pg_url = with_database(args.pg_admin, dagster_db).replace("+psycopg://", "+psycopg2://", 1)
    sections: list[str] = []
    per_object: dict[tuple[str, float], dict[str, float]] = {}
    s3_version = None
    try:
        init_dagster_tables(dagster_pg_url)
        for store in stores:
            target = Target(store, args.scratch, S3rver(args.scratch) if store == "s3" else None)
            if target.s3:
                s3_version = target.s3.version()
            try:
                for scale in scales:
                    bundle = bundles[scale]
                    runs: dict[str, list[dict[str, Any]]] = {"baseline": [], "project": []}
                    for repeat in range(args.repeats):
                        for mode in ("baseline", "project"):
                            result = run_once(
                                mode, target, bundle, args.pg_admin, dagster_pg_url, args.profile, args.timeline
                            )
                            runs[mode].append(result)
                            wall = result["phases"]["total"] if mode == "baseline" else result["wall_s"]
                            print(
                                f"[{store} x{scale:g} {repeat + 1}/{args.repeats}] {mode:8s} wall {wall:7.2f} s, "
                                f"peak RSS {result['peak_rss_mb']:6.0f} MB",
                                flush=True,
                            )
                    text, per_object[(store, scale)] = summarize(store, bundle, runs)
                    print("\n" + text, flush=True)
                    sections.append(text)
            finally:
                if target.s3:
                    target.s3.stop()
    finally:
        drop_database(args.pg_admin, dagster_db)

    scaling = []
    for store in stores:
        ordered = sorted(scale for (s, scale) in per_object if s == store)
        for scale in ordered[1:]:
            low, high = per_object[(store, ordered[0])], per_object[(store, scale)]
            for mode in ("baseline", "project"):
                scaling.append(
                    f"- {store}, {mode}: time per object {scale:g}× vs {ordered[0]:g}×: "
                    f"{high[mode]:.3f} / {low[mode]:.3f} ms = **{high[mode] / low[mode]:.2f}×**"
                )
    if scaling:
        text = "### Time per object across scales\n\n" + "\n".join(scaling) + "\n"
        print(text)
        sections.append(text)

    header = [
        f"## {started_at:%Y-%m-%d %H:%M} UTC — scales {args.scales}, repeats {args.repeats}, stores {args.stores}",
        "",
        f"- command: `{command}`",
        f"- machine: {machine(args.pg_admin, s3_version, load)}",
        f"- code: {code}",
        f"- file stores and s3rver data under `{args.scratch}`",
        "- the machine is shared (other engineers' test suites run on it): absolute numbers are noisy, "
        "read ratios and proportions",
        f"- finished in {(datetime.now(UTC) - started_at).total_seconds() / 60:.1f} min",
        "",
    ]
    if not args.results.exists():
        args.results.write_text(
            "# Benchmark results\n\nAppended by `benchmarks/run.py`, newest last. Baseline: the seed-style "
            "job of `benchmarks/baseline.py`; project: the `index_bundle` job of hub_assets run in-process on a "
            "Postgres-backed Dagster instance. Project phases come from `musehub_bundles.stats`.\n\n"
        )
    with args.results.open("a") as f:
        f.write("\n".join(header) + "\n" + "\n".join(sections) + "\n")
    print(f"appended to {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
