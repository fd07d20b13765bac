"""A push over the wire against the same history pushed as one bundle file (issue #12).

    .venv/bin/python benchmarks/wire_push.py [--repeats 2] [--scale 1]

The history: the reference push (benchmarks/run.py's `ensure_bundle`; scale 1 = 1,035 commits,
~5.5k objects, ~47 MB), decoded once: its commits as sent, its snapshots with full manifests,
its objects' decoded bytes.

Wire: `hub-assets serve` (uvicorn) in a subprocess, and a plain HTTP client doing what `muse
push` does: POST /push/objects in chunks of 400 objects, 4 requests at once, then POST /push
with `{bundle: {commits, snapshots, objects: []}, branch, force}` (msgpack, a Bearer token).
On a file store every object goes through /push/objects (no presigned URLs).
Bundle: `hub.push` of the bundle file, in this process.

For each: (a) until fetchable: the push returned and every tenth object reads back (checked after the
timing; a bundle too large to register its objects inline is fetchable only once indexed);
(b) until the landed bundle is `indexed`: the push's return plus the index run of its
partition, in a fresh process (benchmarks/worker.py `project`: `index_partitions` on a Postgres-backed Dagster
instance; the run's wall time, without the process's imports and instance start). Every
run on a fresh catalog database and file store, wire and bundle alternating. Prints a table
and appends it, with the machine and date, to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgpack
import sqlalchemy as sa
from run import (
    HERE,
    PYTHON,
    WORK,
    BundleInfo,
    append_section,
    code_version,
    ensure_bundle,
    free_port,
    init_dagster_tables,
    machine,
    worker_env,
)

from hub_assets.bundle import EmptyCatalog, Limits, decode_bundle
from hub_assets.bundle.objects import decoded_bytes
from hub_assets.catalog import schema
from hub_assets.embedded_postgres import create_scratch_database, drop_database, with_database
from hub_assets.hub import Hub, NotFound, push, read_object
from hub_assets.hub.repos import find_repo
from hub_assets_tests.api.conftest import ApiServer
from hub_assets_tests.polling import wait_until

CHUNK = 400  # objects per /push/objects request, as the muse client sends them
PARALLEL = 4  # /push/objects requests at once, as the muse client sends them
OWNER = "bench"
SERVER_START_S = 60


@dataclass(frozen=True)
class History:
    commits: list[dict[str, Any]]  # as a bundle carries them
    snapshots: list[dict[str, Any]]  # full manifests
    objects: list[dict[str, Any]]  # {object_id, content: decoded bytes}


def decode_history(bundle: BundleInfo) -> History:
    data = bundle.path.read_bytes()
    raw = msgpack.unpackb(data, raw=False)
    created = {s["snapshot_id"]: s.get("created_at") for s in raw["snapshots"]}
    decoded = decode_bundle(
        io.BytesIO(data), bundle_key=None, name="reference push", limits=Limits(), catalog=EmptyCatalog()
    )
    snapshots = [
        {"snapshot_id": s.snapshot_id, "manifest": s.manifest, "created_at": created[s.snapshot_id]}
        for s in decoded.snapshots
    ]
    objects = [{"object_id": o.object_id, "content": decoded_bytes(o)} for o in decoded.objects]
    return History(raw["commits"], snapshots, objects)


class Scratch:
    """A fresh catalog database and file store for one run."""

    def __init__(self, admin_url: str, scratch: Path, dagster_pg_url: str) -> None:
        self.admin_url = admin_url
        self.database = create_scratch_database(admin_url, "hubwire")
        self.database_url = with_database(admin_url, self.database)
        self.token = uuid.uuid4().hex[:12]
        self.root = scratch / "wire-stores" / self.token
        self.store_url = self.root.resolve().as_uri()
        self.home = WORK / "homes" / self.token
        self.home.mkdir(parents=True)
        self.env = worker_env(self.home, self.database_url, self.store_url, dagster_pg_url, None)
        self.hub = Hub.connect(self.database_url, self.store_url)

    def close(self) -> None:
        self.hub.close()
        drop_database(self.admin_url, self.database)
        shutil.rmtree(self.root, ignore_errors=True)
        shutil.rmtree(self.home, ignore_errors=True)

    def pushed_partition(self, repo_id: str) -> str:
        with self.hub.catalog.engine.connect() as conn:
            [bundle_key] = conn.execute(
                sa.select(schema.bundles.c.bundle_key).where(schema.bundles.c.repo_id == repo_id)
            ).scalars()
        return f"{repo_id}/{bundle_key}"

    def fetchable(self, repo_id: str, history: History) -> bool:
        """Whether every tenth object of the history reads back from the repo, byte for byte."""
        try:
            return all(
                read_object(self.hub, repo_id, obj["object_id"]) == obj["content"] for obj in history.objects[::10]
            )
        except NotFound:
            return False

    def finish(self, repo_id: str, history: History, returned: float) -> dict[str, float]:
        """After a push returned in `returned` s: whether its objects are fetchable now (if not,
        only once indexed, which is then checked), and the index run of its landed bundle."""
        fetchable_at_return = self.fetchable(repo_id, history)
        index_s = self.index(self.pushed_partition(repo_id))
        if not self.fetchable(repo_id, history):
            raise RuntimeError(f"the objects of {repo_id} are not fetchable once indexed")
        indexed = returned + index_s
        fetchable = returned if fetchable_at_return else indexed
        return {"returns": returned, "fetchable": fetchable, "index": index_s, "indexed": indexed}

    def index(self, partition_key: str) -> float:
        """The index run of `partition_key` in a fresh process: its wall time, seconds."""
        out, log = self.home / "index.json", self.home / "index.log"
        with log.open("wb") as log_file:
            worker = [PYTHON, str(HERE / "worker.py"), "project", str(out), partition_key]
            exit_code = subprocess.run(worker, env=self.env, cwd=str(self.home), stdout=log_file, stderr=log_file)
        if exit_code.returncode != 0:
            raise RuntimeError(f"index of {partition_key} failed:\n{log.read_text(errors='replace')[-3000:]}")
        result = json.loads(out.read_text())
        if result.get("status") != "indexed":
            raise RuntimeError(f"index of {partition_key} left the bundle {result.get('status')!r}: {result}")
        return result["wall_s"]


def serve(scratch: Scratch) -> tuple[subprocess.Popen, ApiServer]:
    port = free_port()
    log = (scratch.home / "serve.log").open("wb")
    server = subprocess.Popen(
        [str(Path(PYTHON).parent / "hub-assets"), "serve", "--port", str(port)],
        env=scratch.env,
        cwd=str(scratch.home),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    api = ApiServer(scratch.hub, port)

    def up() -> bool:
        if server.poll() is not None:
            raise RuntimeError(f"hub-assets serve exited {server.returncode}: see {log.name}")
        try:
            return api.request("GET", "/nobody/none/refs").status == 404
        except OSError:
            return False

    wait_until(up, SERVER_START_S, what="hub-assets serve to answer")
    return server, api


def wire_push(scratch: Scratch, history: History, slug: str) -> dict[str, float]:
    server, api = serve(scratch)
    try:
        api.token(OWNER)  # made before the timing, as a user's token is
        chunks = [history.objects[i : i + CHUNK] for i in range(0, len(history.objects), CHUNK)]

        def upload(chunk: list[dict[str, Any]]) -> None:
            reply = api.call("POST", f"/{OWNER}/{slug}/push/objects", {"objects": chunk}, owner=OWNER)
            if reply.status != 200:
                raise RuntimeError(f"/push/objects answered {reply.status}: {reply.raw[:200]!r}")

        started = time.perf_counter()
        with ThreadPoolExecutor(PARALLEL) as pool:
            list(pool.map(upload, chunks))
        uploaded = time.perf_counter() - started
        body = {
            "bundle": {"commits": history.commits, "snapshots": history.snapshots, "objects": []},
            "branch": "main",
            "force": False,
        }
        reply = api.call("POST", f"/{OWNER}/{slug}/push", body, owner=OWNER)
        returned = time.perf_counter() - started
        if reply.status != 200 or not reply.body.get("ok"):
            raise RuntimeError(f"/push answered {reply.status}: {reply.raw[:300]!r}")
    finally:
        server.terminate()
        server.wait(30)
    return {"uploads": uploaded, **scratch.finish(find_repo(scratch.hub, OWNER, slug).repo_id, history, returned)}


def bundle_push(scratch: Scratch, history: History, bundle: BundleInfo, repo_id: str) -> dict[str, float]:
    started = time.perf_counter()
    with bundle.path.open("rb") as stream:
        push(scratch.hub, repo_id, "main", stream)
    return scratch.finish(repo_id, history, time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2, help="runs of each of wire and bundle")
    parser.add_argument("--scale", type=float, default=1.0, help="scale of the reference push")
    parser.add_argument("--pg-admin", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--scratch", type=Path, default=WORK, help="directory of the file stores")
    args = parser.parse_args()
    load = os.getloadavg()
    started_at = datetime.now(UTC)
    bundle = ensure_bundle(args.scale)
    dagster_db = create_scratch_database(args.pg_admin, "hubwire_dagster")
    dagster_pg_url = with_database(args.pg_admin, dagster_db).replace("+psycopg://", "+psycopg2://", 1)
    runs: dict[str, list[dict[str, float]]] = {"wire": [], "bundle": []}
    try:
        init_dagster_tables(dagster_pg_url)
        history = decode_history(bundle)
        for repeat in range(args.repeats):
            for mode in ("wire", "bundle"):
                scratch = Scratch(args.pg_admin, args.scratch, dagster_pg_url)
                try:
                    if mode == "wire":
                        result = wire_push(scratch, history, f"wire-{repeat}")
                    else:
                        result = bundle_push(scratch, history, bundle, f"bundle-{repeat}")
                finally:
                    scratch.close()
                runs[mode].append(result)
                print(
                    f"[{repeat + 1}/{args.repeats}] {mode:6s} "
                    + ", ".join(f"{k} {v:.2f} s" for k, v in result.items()),
                    flush=True,
                )
    finally:
        drop_database(args.pg_admin, dagster_db)

    def med(mode: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[mode])

    def every(mode: str, key: str) -> str:
        return ", ".join(f"{r[key]:.2f}" for r in runs[mode])

    rows = [
        f"| {label} | {med('wire', key):.2f} ({every('wire', key)}) | "
        f"{med('bundle', key):.2f} ({every('bundle', key)}) | {med('wire', key) / med('bundle', key):.2f}× |"
        for label, key in (
            ("push returns (wire: /push answers ok)", "returns"),
            ("(a) until fetchable (objects read back; else only once indexed)", "fetchable"),
            ("index run (its wall time, fresh process)", "index"),
            ("(b) until indexed = push returns + index run", "indexed"),
        )
    ]
    objects_s = med("wire", "uploads")
    lines = [
        f"## {started_at:%Y-%m-%d %H:%M} UTC — push over the wire vs one bundle file (issue #12)",
        "",
        f"- command: `python benchmarks/wire_push.py {' '.join(sys.argv[1:])}` (through /work/bin/quiet)",
        f"- machine: {machine(args.pg_admin, None, load)}",
        f"- code: {code_version()}",
        f"- history: the reference push x{args.scale:g}: {bundle.commits:,} commits, {bundle.objects:,} objects, "
        f"{bundle.size_bytes / 1e6:.1f} MB as one bundle; file store under `{args.scratch}`, fresh catalog "
        f"database and store per run; wire = `hub-assets serve` (uvicorn, 1 worker) + http.client, "
        f"/push/objects in chunks of {CHUNK}, {PARALLEL} at once, then /push; bundle = `hub.push` in-process",
        "",
        f"| seconds (median of {args.repeats}, every run in brackets) | wire | bundle | wire / bundle |",
        "|---|---:|---:|---:|",
        *rows,
        "",
        f"- of the wire push's (a), the object uploads took {objects_s:.2f} s "
        f"({bundle.objects / objects_s:,.0f} objects/s), /push the remaining "
        f"{med('wire', 'returns') - objects_s:.2f} s",
    ]
    append_section(args.results, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
