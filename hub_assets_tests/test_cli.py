"""`hub-assets` (SPEC §9) through a subprocess, as an operator runs it: real PostgreSQL, file store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import pytest

from hub_assets.hub import Hub
from hub_assets.hub.repos import create_repo, create_token, find_repo, token_owner
from hub_assets.store import partition_key, upload_key
from hub_assets_tests.api.recorded import recorded
from hub_assets_tests.bundle.builders import build_history, fake_id, sha256_hex
from hub_assets_tests.conftest import FIXTURES_DIR
from hub_assets_tests.hub.conftest import open_hub
from hub_assets_tests.hub.helpers import bundle_statuses, load_bundle, load_fixture, push_new
from hub_assets_tests.polling import wait_until
from hub_assets_tests.ports import PortTaken, start_on_free_port

CLI = [sys.executable, "-m", "hub_assets.cli"]
SMALL = FIXTURES_DIR / "muse-small-history.bundle"
MERGE = FIXTURES_DIR / "muse-merge.bundle"
PUSH_KEYS = {"repo_id", "branch", "bundle_key", "partition_key", "head_commit_id"}
STATUS_KEYS = {"repo_id", "bundle_key", "branch", "status"}


@dataclass
class Cli:
    env: dict[str, str]
    cwd: Path

    def run(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [*CLI, *args], env={**self.env, **(env or {})}, cwd=self.cwd, capture_output=True, timeout=180
        )

    def ok(self, *args: str) -> bytes:
        """stdout of a command that must succeed."""
        done = self.run(*args)
        assert done.returncode == 0, done.stderr.decode()
        return done.stdout

    def json(self, *args: str) -> object:
        return json.loads(self.ok(*args, "--json"))

    def fails(self, *args: str, env: dict[str, str] | None = None) -> str:
        """The one line a failing command leaves on stderr (nothing on stdout)."""
        done = self.run(*args, env=env)
        stderr = done.stderr.decode()
        assert done.returncode != 0, (done.stdout, stderr)
        assert len(stderr.splitlines()) == 1, stderr
        assert done.stdout == b""
        assert stderr.startswith(f"hub-assets {args[0]}: "), stderr
        return stderr.strip()


@pytest.fixture
def cli(tmp_path: Path, pg_url: str, file_store_url: str) -> Cli:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "DAGSTER_", "AWS_"))}
    env |= {"HUB_HOME": str(tmp_path / "hub"), "HUB_DATABASE_URL": pg_url, "HUB_OBJECT_STORE_URL": file_store_url}
    return Cli(env, tmp_path)


@pytest.fixture
def hub(pg_url: str, file_store_url: str) -> Iterator[Hub]:
    """The same catalog and store as `cli`, in this process."""
    yield from open_hub(pg_url, file_store_url)


def test_push_index_cat_clone_status(cli: Cli, hub: Hub, tmp_path: Path) -> None:
    small, merge = load_fixture(SMALL.name), load_fixture(MERGE.name)

    pushed = cli.json("push", str(SMALL), "--repo", "cli-a", "--branch", "main")
    assert isinstance(pushed, dict) and pushed.keys() >= PUSH_KEYS
    key = pushed["bundle_key"]
    assert pushed == pushed | {
        "repo_id": "cli-a",
        "branch": "main",
        "partition_key": f"cli-a/{key}",
        "head_commit_id": small.head,  # from branch_heads
    }
    assert cli.ok("index", pushed["partition_key"]).decode().startswith(f"indexed cli-a/{key}")

    indexed = cli.json("push", str(MERGE), "--repo", "cli-b", "--branch", "main", "--index")
    assert isinstance(indexed, dict) and indexed.keys() >= PUSH_KEYS
    assert indexed["head_commit_id"] == merge.head

    binary = max(small.contents, key=lambda i: (len(small.contents[i]), i))
    assert cli.ok("cat", "--repo", "cli-a", binary) == small.contents[binary]

    out = tmp_path / "clone.bundle"
    cli.ok("clone", "--repo", "cli-b", "--branch", "main", str(out))
    cloned = load_bundle(out.read_bytes(), "clone")
    assert (cloned.commits, cloned.manifests, cloned.contents) == (merge.commits, merge.manifests, merge.contents)

    status = cli.json("status")
    assert isinstance(status, list) and all(s.keys() >= STATUS_KEYS and "error" not in s for s in status)
    assert {(s["repo_id"], s["bundle_key"], s["branch"], s["status"]) for s in status} == {
        ("cli-a", key, "main", "indexed"),
        ("cli-b", indexed["bundle_key"], "main", "indexed"),
    }
    assert hub.catalog.branch_head("cli-b", "main") == merge.head


def test_a_refused_push_prints_one_line_and_leaves_nothing(cli: Cli, hub: Hub, tmp_path: Path) -> None:
    # Deltas over a base this repo does not hold: refused by push itself, no index run needed.
    orphan = build_history(2, 3, seed=3, after=build_history(1, 3, seed=3))
    path = tmp_path / "orphan.bundle"
    path.write_bytes(orphan.wire())
    pushed = f"cli-a/{sha256_hex(orphan.wire())}"
    first = orphan.bundle["snapshots"][0]

    line = cli.fails("push", str(path), "--repo", "cli-a", "--branch", "main")

    assert line == (
        f"hub-assets push: bundle {pushed}: snapshot {first['snapshot_id']}: "
        f"delta base {first['base_snapshot_id']} is neither in the bundle nor in the catalog"
    )
    assert cli.json("status") == []
    assert hub.catalog.branch_head("cli-a", "main") is None
    assert list(hub.store.list("")) == []


@dataclass(frozen=True)
class Failure:
    args: list[str]
    reason: str  # a substring of the one line on stderr
    setup: Callable[[Hub, Path], None] = lambda hub, tmp: None
    env: dict[str, str] = field(default_factory=dict)


def _write_notes(hub: Hub, tmp: Path) -> None:
    (tmp / "notes.txt").write_text("not a bundle\n")


def _push_small(hub: Hub, tmp: Path) -> None:
    small = load_fixture(SMALL.name)
    push_new(hub, "cli-a", small.data, small.head)


FAILURES = {
    "push-not-a-bundle": Failure(
        ["push", "notes.txt", "--repo", "cli-a", "--branch", "main"], "not a msgpack map", _write_notes
    ),
    "push-branch-moved": Failure(
        ["push", str(MERGE), "--repo", "cli-a", "--branch", "main"],
        "does not descend from the head of 'main'",
        _push_small,
    ),
    "index-garbage-key": Failure(["index", "not-a-partition-key"], "'not-a-partition-key' is not <repo_id>/<64 hex"),
    "cat-unknown-object": Failure(["cat", "--repo", "cli-a", fake_id("x")], f"object {fake_id('x')} not found"),
    "clone-unknown-branch": Failure(["clone", "--repo", "cli-a", "--branch", "nope", "out"], "branch 'nope' not found"),
    "status-unknown-repo-name": Failure(["status", "--repo", "nobody/nothing"], "no repo named 'nobody/nothing'"),
    "status-bad-repo-name": Failure(["status", "--repo", "alice/"], "repo name 'alice/' must be OWNER/SLUG"),
    "dev-ui-beyond-loopback": Failure(["dev", "--host", "0.0.0.0"], "pass --expose-unauthenticated-ui"),
    "dev-unknown-launcher": Failure(
        ["dev"],
        "HUB_RUN_LAUNCHER must be 'local', 'code-server' or 'celery', got 'k8s'",
        env={"HUB_RUN_LAUNCHER": "k8s"},
    ),
    "worker-without-celery": Failure(["worker"], "needs HUB_RUN_LAUNCHER=celery"),
    "worker-without-broker": Failure(["worker"], "needs HUB_BROKER_URL", env={"HUB_RUN_LAUNCHER": "celery"}),
    "worker-amqp-without-backend": Failure(
        ["worker"],
        "HUB_BROKER_URL=amqp://… needs HUB_RESULT_BACKEND_URL",
        env={"HUB_RUN_LAUNCHER": "celery", "HUB_BROKER_URL": "amqp://guest:secret@127.0.0.1:5672//"},
    ),
    "worker-no-processes": Failure(
        ["worker", "--concurrency", "0"],
        "--concurrency must be at least 1",
        env={"HUB_RUN_LAUNCHER": "celery", "HUB_BROKER_URL": "redis://127.0.0.1:1/0"},
    ),
    "status-bad-database": Failure(
        ["status"], "connection failed", env={"HUB_DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:1/none"}
    ),
}


@pytest.mark.parametrize("case", FAILURES.values(), ids=FAILURES.keys())
def test_a_failing_command_exits_non_zero_with_one_line(cli: Cli, hub: Hub, tmp_path: Path, case: Failure) -> None:
    case.setup(hub, tmp_path)
    heads = {"main": hub.catalog.branch_head("cli-a", "main")}
    assert case.reason in cli.fails(*case.args, env=case.env)
    # Nothing moved, nothing recorded beyond the setup.
    assert {"main": hub.catalog.branch_head("cli-a", "main")} == heads
    assert not (tmp_path / "out").exists()
    assert len(hub.catalog.bundle_rows()) == (1 if heads["main"] else 0)
    if case.args[0] in ("dev", "worker"):
        assert not (tmp_path / "hub").exists(), "refused before anything started"


def test_push_with_explicit_head_fast_forwards_an_existing_branch(cli: Cli, hub: Hub, tmp_path: Path) -> None:
    base = build_history(2, 3, seed=4, delta=False)
    more = build_history(2, 3, seed=4, after=base, delta=False)  # full snapshots: valid before base is indexed
    push_new(hub, "cli-a", base.wire(), base.head)  # not indexed: only the bundle knows the way back
    path = tmp_path / "more.bundle"
    path.write_bytes(more.wire())

    pushed = cli.json("push", str(path), "--repo", "cli-a", "--branch", "main", "--head", more.commit_ids[0])
    assert isinstance(pushed, dict) and pushed["head_commit_id"] == more.commit_ids[0]
    assert hub.catalog.branch_head("cli-a", "main") == more.commit_ids[0]


def test_index_of_a_partition_without_upload_fails_at_once_naming_it(cli: Cli, hub: Hub) -> None:
    key = f"cli-a/{fake_id('missing')}"
    assert f"no upload at uploads/{key}" in cli.fails("index", key)
    [row] = hub.catalog.bundle_rows("cli-a")
    assert row.status == "failed" and "no upload" in row.stats["error"]


def test_repo_create_and_token_create(cli: Cli, hub: Hub) -> None:
    created = cli.ok("repo", "create", "alice/demo", "--domain", "midi").decode()
    repo = find_repo(hub, "alice", "demo")
    assert repo is not None and repo.domain == "midi"
    assert created == f"created alice/demo: repo_id {repo.repo_id}, domain midi\n"
    assert cli.fails("repo", "create", "alice/demo") == "hub-assets repo: repo alice/demo exists already"
    assert "owner '..' must be 1-64 of [A-Za-z0-9._-]" in cli.fails("repo", "create", "../demo")
    assert cli.fails("repo", "create", "alice") == "hub-assets repo: repo name 'alice' must be OWNER/SLUG"

    lines = cli.ok("token", "create", "alice").decode().splitlines()
    token = lines[-1]
    assert token_owner(hub, token) == "alice"
    assert all(token not in line for line in lines[:-1]), "the token alone on the last line"
    assert cli.ok("token", "create", "alice").decode().splitlines()[-1] != token, "a new token each time"


def test_status_names_the_repo_beside_its_id(cli: Cli, hub: Hub) -> None:
    repo = create_repo(hub, "alice", "demo", "midi")
    small = load_fixture(SMALL.name)
    pushed = push_new(hub, repo.repo_id, small.data, small.head)
    push_new(hub, "cli-a", small.data, small.head)

    status = cli.json("status")
    assert isinstance(status, list)
    assert {(s["repo_id"], s["repo"]) for s in status} == {(repo.repo_id, "alice/demo"), ("cli-a", None)}
    text = cli.ok("status").decode()
    assert f"pushed   alice/demo {pushed.partition_key} main" in text
    assert "pushed   cli-a/" in text
    # --repo takes the repo's id or its OWNER/SLUG.
    for repo_argument in (repo.repo_id, "alice/demo"):
        assert [s["repo_id"] for s in cli.json("status", "--repo", repo_argument)] == [repo.repo_id]
    assert [s["repo_id"] for s in cli.json("status", "--repo", "cli-a")] == ["cli-a"]


def test_serve_answers_the_wire_protocol(cli: Cli, hub: Hub, tmp_path: Path) -> None:
    repo = create_repo(hub, "alice", "demo", "midi")
    log = tmp_path / "serve.log"

    def start(port: int) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
        with log.open("wb") as out:
            process = subprocess.Popen(
                [*CLI, "serve", "--port", str(port), "--workers", "2"],
                env=cli.env,
                cwd=cli.cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

        def answer() -> dict[str, Any] | str | None:
            if process.poll() is not None:
                return "exited"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/alice/demo/refs", timeout=5) as response:
                    return msgpack.unpackb(response.read(), raw=False)
            except OSError:
                return None

        refs = wait_until(answer, 60, 0.2, what=f"hub-assets serve to answer (log: {log})")
        if refs == "exited":
            if "address already in use" in log.read_text():
                raise PortTaken(port)
            raise AssertionError(log.read_text()[-3000:])
        return process, refs, port

    process, refs, port = start_on_free_port(start)
    try:
        assert refs == {"repo_id": repo.repo_id, "domain": "midi", "default_branch": "main", "branch_heads": {}}
        assert "hub API at http://127.0.0.1:" in log.read_text()
        # The real client's first push (its objects, then its commits), as recorded.
        token = create_token(hub, "alice")
        for request in (recorded(4), recorded(5)):
            sent = urllib.request.Request(
                f"http://127.0.0.1:{port}{request.path}", request.body, request.headers_with(token), method="POST"
            )
            with urllib.request.urlopen(sent, timeout=30) as response:
                answer = msgpack.unpackb(response.read(), raw=False)
        assert answer["ok"] is True, answer
        assert list(hub.catalog.branch_heads(repo.repo_id)) == ["main"]
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        assert process.wait(60) == 0
    # Answered at its commit point, the push's upload was published by the server after the
    # answer, at the latest while it shut down.
    (bundle_key,) = bundle_statuses(hub, repo.repo_id)
    assert hub.catalog.pending_uploads() == []
    assert hub.store.exists(upload_key(partition_key(repo.repo_id, bundle_key)))


def test_commands_that_run_no_dagster_start_without_importing_it() -> None:
    """push, clone, cat, status and sweep on a file:// hub need neither Dagster nor the S3 client:
    importing them took ~2.3 s of a `hub-assets status`, 0.4 s without (issue 13)."""
    probe = (
        "import sys, hub_assets.cli, hub_assets.hub, hub_assets.store; "
        "print(sorted(m for m in ('dagster', 'dagster_aws', 'dagster_postgres', 'boto3') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"
