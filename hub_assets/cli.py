"""`hub-assets`: the operator's and the tests' entry point (SPEC §9). Each command is a thin
shell over the library function the tests call too."""

import argparse
import contextlib
import json
import sys
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from .bundle import BundleError
from .cyclic_gc import cyclic_gc_paused
from .environment import HubEnvironment, open_instance, prepare
from .hub import Hub, HubError, clone, push, read_object, sweep
from .hub.repos import DEFAULT_DOMAIN, create_repo, create_token, find_repo, parse_repo_name
from .settings import quarantine_grace_s, worker_pool
from .store import ObjectNotFound

Command = Callable[[argparse.Namespace, HubEnvironment], int]


def _hub(environment: HubEnvironment) -> Hub:
    return Hub.connect(environment.database_url, environment.store_url)


def _index(environment: HubEnvironment, partition_keys: Sequence[str]) -> list[Any]:
    # Dagster logs every run event to stderr, where a failed command must leave one line
    # (SPEC §9), and stdout may carry --json: the run logs go to a file (and the instance).
    log_path = environment.dagster_home / "index.log"
    with log_path.open("a") as log, contextlib.redirect_stderr(log):
        # Dagster, the code location (its Definitions) and the storage dagster.yaml names load
        # only for the commands that run it (~1.5 s of imports), and live as long as the process.
        # While they load, every full collection walks all the objects imported so far: with the
        # GC on, importing took 0.45 s more (2.2 s instead of 1.8 s of CPU). Frozen afterwards,
        # the run's collections and the interpreter's at exit skip them: exit took 0.6-0.9 s
        # after an index run, 0.05 s frozen. Never collecting them costs nothing in a process
        # that ends after its command (benchmarks/RESULTS.md, 2026-12-02, issue 13).
        with cyclic_gc_paused(freeze=True):
            from .index.run import apply_pool_limits, index_job, index_partitions

            index_job()
            instance = open_instance(environment)
        with instance:
            apply_pool_limits(instance)
            return index_partitions(instance, partition_keys)


def cmd_push(args: argparse.Namespace, environment: HubEnvironment) -> int:
    hub = _hub(environment)
    try:
        expected = None if args.force else hub.catalog.branch_head(args.repo, args.branch)
        with Path(args.file).open("rb") as stream:
            result = push(
                hub,
                args.repo,
                args.branch,
                stream,
                head_commit_id=args.head,
                expected_old_head=expected,
                force=args.force,
            )
    finally:
        hub.close()
    if args.index:
        [outcome] = _index(environment, [result.partition_key])
        if not outcome.success:
            raise HubError(f"pushed, but indexing failed: {outcome.error}")
    report = {
        "repo_id": result.repo_id,
        "branch": result.branch,
        "bundle_key": result.bundle_key,
        "partition_key": result.partition_key,
        "head_commit_id": result.head_commit_id,
        "inline_objects": result.inline_objects,
        "indexed": bool(args.index),
    }
    line = f"pushed {result.partition_key} -> {args.branch} at {result.head_commit_id}"
    print(json.dumps(report) if args.json else line)
    return 0


def cmd_sweep(args: argparse.Namespace, environment: HubEnvironment) -> int:
    hub = _hub(environment)
    try:
        report = sweep(hub, timedelta(seconds=args.grace if args.grace is not None else quarantine_grace_s()))
    finally:
        hub.close()
    print(report)
    return 0


def cmd_index(args: argparse.Namespace, environment: HubEnvironment) -> int:
    failed = 0
    for outcome in _index(environment, args.partition_keys):
        if outcome.success:
            print(f"indexed {outcome.partition_key} (run {outcome.run_id})")
        else:
            failed += 1
            reason = _first_line(outcome.error or "") or "run failed"
            print(f"hub-assets index: {outcome.partition_key}: {reason}", file=sys.stderr)
    return 1 if failed else 0


def cmd_cat(args: argparse.Namespace, environment: HubEnvironment) -> int:
    hub = _hub(environment)
    try:
        sys.stdout.buffer.write(read_object(hub, args.repo, args.object_id))
    finally:
        hub.close()
    return 0


def cmd_clone(args: argparse.Namespace, environment: HubEnvironment) -> int:
    hub = _hub(environment)
    try:
        data = clone(hub, args.repo, args.branch)
    finally:
        hub.close()
    out = Path(args.out)
    partial = out.with_name(f".{out.name}.partial")
    partial.write_bytes(data)
    partial.replace(out)
    print(f"cloned {args.repo}/{args.branch} into {out} ({len(data)} bytes)")
    return 0


def cmd_status(args: argparse.Namespace, environment: HubEnvironment) -> int:
    hub = _hub(environment)
    try:
        rows = hub.catalog.bundle_rows(_repo_id(hub, args.repo) if args.repo else None)
        names = hub.catalog.repo_names(row.repo_id for row in rows)
    finally:
        hub.close()
    bundles = [_bundle_status(row, names.get(row.repo_id)) for row in rows]
    if args.json:
        print(json.dumps(bundles))
        return 0
    for b in bundles:
        named = f"{b['repo']} " if b["repo"] else ""
        line = f"{b['status']:8} {named}{b['repo_id']}/{b['bundle_key']} {b['branch'] or '-'} {b['size_bytes']} B"
        print(line + (f"  error: {b['error']}" if b.get("error") else ""))
    return 0


def _repo_id(hub: Hub, repo: str) -> str:
    """A repo id, or the id of the repo named OWNER/SLUG (a repo id has no '/')."""
    if "/" not in repo:
        return repo
    found = find_repo(hub, *parse_repo_name(repo))
    if found is None:
        raise HubError(f"no repo named {repo!r}")
    return found.repo_id


def _bundle_status(row: Any, repo: str | None) -> dict[str, Any]:
    status = {
        "repo_id": row.repo_id,
        "repo": repo,  # owner/slug, for a repo the hub has a name for
        "bundle_key": row.bundle_key,
        "branch": row.branch,
        "status": row.status,
        "size_bytes": row.size_bytes,
        "pushed_at": row.pushed_at.isoformat(),
        "indexed_at": row.indexed_at.isoformat() if row.indexed_at else None,
        "stats": row.stats,
    }
    if row.status == "failed":
        status["error"] = row.stats.get("error", "unknown")
    return status


def cmd_dev(args: argparse.Namespace, environment: HubEnvironment) -> int:
    from .devserver import run_dev
    from .index.run import apply_pool_limits

    with open_instance(environment) as instance:
        apply_pool_limits(instance)
    _hub(environment).close()  # creates the catalog tables before the first run needs them
    return run_dev(environment, args.host, args.port, args.api_port)


def cmd_serve(args: argparse.Namespace, environment: HubEnvironment) -> int:
    import uvicorn

    _hub(environment).close()  # creates the catalog tables before the first request needs them
    print(f"hub-assets serve: hub API at http://{args.host}:{args.port} ({args.workers} worker(s))", flush=True)
    uvicorn.run(
        "hub_assets.api:app_from_environment", factory=True, host=args.host, port=args.port, workers=args.workers
    )
    return 0


def cmd_repo_create(args: argparse.Namespace, environment: HubEnvironment) -> int:
    owner, slug = parse_repo_name(args.name)
    hub = _hub(environment)
    try:
        repo = create_repo(hub, owner, slug, args.domain)
    finally:
        hub.close()
    print(f"created {repo.name}: repo_id {repo.repo_id}, domain {repo.domain}")
    return 0


def cmd_token_create(args: argparse.Namespace, environment: HubEnvironment) -> int:
    hub = _hub(environment)
    try:
        token = create_token(hub, args.owner)
    finally:
        hub.close()
    print(f"write token for {args.owner}'s repos (shown once; the hub keeps only its hash):")
    print(token)
    return 0


def check_dev(args: argparse.Namespace) -> None:
    """Before anything starts: the UI's address, and HUB_RUN_LAUNCHER (not at the first launch)."""
    from .devserver import check_host

    check_host(args.host, args.expose_unauthenticated_ui)
    worker_pool()


def check_worker(args: argparse.Namespace) -> None:
    if worker_pool().launcher != "celery":
        raise ValueError("hub-assets worker needs HUB_RUN_LAUNCHER=celery and HUB_BROKER_URL")
    if args.concurrency < 1:
        raise ValueError(f"--concurrency must be at least 1, got {args.concurrency}")


def cmd_worker(args: argparse.Namespace, environment: HubEnvironment) -> int:
    from .workers.worker import run_worker

    pool = worker_pool()
    return run_worker(pool, args.concurrency, args.queue or pool.queue)


def cmd_demo(args: argparse.Namespace, environment: HubEnvironment) -> int:
    from .demo import run_demo, timing_table
    from .sample import SampleSpec

    spec = SampleSpec(files=args.files, seed=args.seed).scaled(args.scale)
    spec = SampleSpec(**{**vars(spec), "commits": args.commits}) if args.commits else spec
    with open_instance(environment) as instance:
        report = run_demo(environment, instance, spec)
    if not report.outcome.success:
        raise HubError(f"indexing {report.partition_key} failed: {report.outcome.error}")
    print(f"indexed {report.partition_key}; {report.objects_checked} objects fetched back byte-exact")
    print(timing_table(report.stats))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hub-assets", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("dev", help="run the Dagster UI, daemon, sensor and hub API on embedded defaults")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=3000, help="port of the Dagster UI")
    p.add_argument("--api-port", type=int, default=3001, help="port of the hub API (muse remotes)")
    p.add_argument(
        "--expose-unauthenticated-ui",
        action="store_true",
        help="allow a non-loopback --host: whoever reaches it may launch, terminate and wipe runs",
    )
    p.set_defaults(run=cmd_dev, check=check_dev)

    p = commands.add_parser("worker", help="execute index runs from the broker (HUB_RUN_LAUNCHER=celery)")
    p.add_argument("--concurrency", type=int, default=1, help="runs at once (pool processes)")
    p.add_argument("--queue", help="broker queue to serve (default HUB_WORKER_QUEUE, else hub-index)")
    p.set_defaults(run=cmd_worker, check=check_worker)

    p = commands.add_parser("serve", help="serve the hub API alone (production: stateless, any number of workers)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=3001)
    p.add_argument("--workers", type=int, default=1, help="worker processes")
    p.set_defaults(run=cmd_serve)

    p = commands.add_parser("repo", help="manage repos")
    actions = p.add_subparsers(dest="action", required=True)
    p = actions.add_parser("create", help="create a repo OWNER/SLUG")
    p.add_argument("name", metavar="OWNER/SLUG")
    p.add_argument("--domain", default=DEFAULT_DOMAIN, help=f"Muse domain of the repo (default {DEFAULT_DOMAIN})")
    p.set_defaults(run=cmd_repo_create)

    p = commands.add_parser("token", help="manage write tokens")
    actions = p.add_subparsers(dest="action", required=True)
    p = actions.add_parser("create", help="create a write token for OWNER's repos (printed once, last line)")
    p.add_argument("owner")
    p.set_defaults(run=cmd_token_create)

    p = commands.add_parser("demo", help="make a sample push, index it, show the timings")
    p.add_argument("--scale", type=float, default=1.0, help="history length relative to the reference push")
    p.add_argument("--commits", type=int, help="exact number of commits (overrides --scale)")
    p.add_argument("--files", type=int, default=350, help="files in the first snapshot")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=cmd_demo)

    p = commands.add_parser("push", help="push a bundle file to a branch")
    p.add_argument("file")
    p.add_argument("--repo", required=True)
    p.add_argument("--branch", required=True)
    p.add_argument("--head", help="commit the branch moves to (default: from the bundle)")
    p.add_argument("--force", action="store_true", help="move the branch whatever it points at")
    p.add_argument("--index", action="store_true", help="also index the bundle before returning")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_push)

    p = commands.add_parser("index", help="materialize partitions now, in this process")
    p.add_argument("partition_keys", nargs="+", metavar="PARTITION_KEY")
    p.set_defaults(run=cmd_index)

    p = commands.add_parser("cat", help="write an object's bytes to stdout")
    p.add_argument("--repo", required=True)
    p.add_argument("object_id")
    p.set_defaults(run=cmd_cat)

    p = commands.add_parser("clone", help="write a branch's history as a Muse bundle")
    p.add_argument("--repo", required=True)
    p.add_argument("--branch", required=True)
    p.add_argument("out")
    p.set_defaults(run=cmd_clone)

    p = commands.add_parser("sweep", help="finish pushes killed after their commit point, clear old quarantine")
    p.add_argument(
        "--grace", type=int, help="seconds to keep quarantine keys no push names (default HUB_QUARANTINE_GRACE_S)"
    )
    p.set_defaults(run=cmd_sweep)

    p = commands.add_parser("status", help="list pushed bundles and their index status")
    p.add_argument("--repo", help="a repo id, or OWNER/SLUG")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_status)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if hasattr(args, "check"):
            args.check(args)
        return args.run(args, prepare())
    except (HubError, BundleError, ObjectNotFound, ValueError, OSError) as error:
        print(f"hub-assets {args.command}: {_one_line(error)}", file=sys.stderr)
    except Exception as error:
        print(f"hub-assets {args.command}: {type(error).__name__}: {_one_line(error)}", file=sys.stderr)
    return 1


def _one_line(error: BaseException) -> str:
    return _first_line(str(error)) or type(error).__name__


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0] if lines else ""


if __name__ == "__main__":
    sys.exit(main())
