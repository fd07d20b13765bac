"""Trust (SPEC §2, §8): stored objects are write-once whatever another repo declares, declared ids
can be verified, a repo reads only what it references, and credentials never reach a log."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from hub_assets.hub import Hub, HubError, NotFound, push, read_object
from hub_assets.store import object_key
from hub_assets_tests.bundle.builders import (
    Raw,
    fake_id,
    full_snapshot,
    make_bundle,
    make_commit,
    make_object,
    pack,
    sha256_hex,
    timestamp,
)
from hub_assets_tests.hub.helpers import ObjectRow, object_rows
from hub_assets_tests.hub.test_fetch import not_found_text
from hub_assets_tests.index.conftest import HubEnv
from hub_assets_tests.index.runlog import failed_steps

from .corpus import CORPUS, REPO
from .processes import CLI, hub_child_env, run_measured

HONEST, FORGER, BYSTANDER = "honest", "forger", "bystander"
TRUE_BYTES = b"the bytes this id is the sha256 of\n" * 8
FORGED_BYTES = b"other bytes, of another size"
OBJECT_ID = sha256_hex(TRUE_BYTES)
VERIFY_ENV = "HUB_VERIFY_OBJECT_IDS"


def one_file_push(record: Raw, message: str) -> tuple[bytes, str]:
    """(wire bytes, head) of a root commit whose one file is OBJECT_ID, sent as `record`."""
    snapshot = full_snapshot({"file.txt": OBJECT_ID})
    commit = make_commit(snapshot["snapshot_id"], message=message, committed_at=timestamp(1))
    return pack(make_bundle(commits=[commit], snapshots=[snapshot], objects=[record])), commit["commit_id"]


HONEST_PUSH = one_file_push(make_object(TRUE_BYTES), "honest")
FORGED_PUSH = one_file_push(make_object(FORGED_BYTES, object_id=OBJECT_ID), "forged")


def refused_push_carrying_the_object() -> tuple[bytes, str, str]:
    """(wire bytes, snapshot id, reason) of a bundle carrying OBJECT_ID with its true bytes, in a
    snapshot refused for a path climbing out of the repo."""
    snapshot = full_snapshot({"file.txt": OBJECT_ID, "../escape.txt": OBJECT_ID})
    commit = make_commit(snapshot["snapshot_id"], message="refused", committed_at=timestamp(1))
    data = pack(make_bundle(commits=[commit], snapshots=[snapshot], objects=[make_object(TRUE_BYTES)]))
    return data, snapshot["snapshot_id"], "path '../escape.txt' contains '..'"


def row(hub: Hub) -> ObjectRow:
    return object_rows(hub, [OBJECT_ID])[OBJECT_ID]


def stored_row(hub: Hub) -> ObjectRow:
    return ObjectRow(len(TRUE_BYTES), hub.store.uri_for(object_key(OBJECT_ID)), None)


def push_main(hub: Hub, repo_id: str, bundle: tuple[bytes, str]) -> str:
    """Push (inline path: the bundle is small) creating `main`; returns the partition key."""
    data, head = bundle
    return push(hub, repo_id, "main", data, head_commit_id=head).partition_key


def assert_true_bytes_everywhere(hub: Hub) -> None:
    """The store, the row and every repo referencing the id give the true bytes."""
    assert hub.store.get(object_key(OBJECT_ID)) == TRUE_BYTES
    assert row(hub) == stored_row(hub)
    assert read_object(hub, HONEST, OBJECT_ID) == TRUE_BYTES
    assert read_object(hub, FORGER, OBJECT_ID) == TRUE_BYTES


# --- write-once ------------------------------------------------------------------------------------


def test_forged_bundle_cannot_change_a_stored_object(hub_env: HubEnv, hub: Hub) -> None:
    hub_env.index_ok(hub_env.upload(HONEST, HONEST_PUSH[0]))
    assert row(hub) == stored_row(hub)

    hub_env.index_ok(hub_env.upload(FORGER, FORGED_PUSH[0]))  # verification is off: accepted…
    assert_true_bytes_everywhere(hub)  # …but it changes nothing

    push_main(hub, FORGER, FORGED_PUSH)  # the inline path leaves the row alone too
    assert_true_bytes_everywhere(hub)


def test_forged_bundle_cannot_change_an_object_still_inline(hub_env: HubEnv, hub: Hub) -> None:
    """The honest push is only inline (content_cache, 'pending') when the forger pushes, and the
    forger's bundle is indexed first: the bytes promoted to the store are still the honest ones."""
    honest = push_main(hub, HONEST, HONEST_PUSH)
    forged = push_main(hub, FORGER, FORGED_PUSH)
    assert row(hub) == ObjectRow(len(TRUE_BYTES), "pending", TRUE_BYTES)

    hub_env.index_ok(forged)
    assert_true_bytes_everywhere(hub)
    hub_env.index_ok(honest)
    assert_true_bytes_everywhere(hub)


@pytest.mark.parametrize("store_url", ["file"], indirect=True)
def test_verified_ids_refuse_the_forged_bundle_naming_the_object(
    hub_env: HubEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(VERIFY_ENV, "1")
    hub = Hub(hub_env.catalog, hub_env.store)
    forged = hub_env.upload(FORGER, FORGED_PUSH[0])

    (outcome,) = hub_env.index(forged)

    assert not outcome.success and failed_steps(hub_env.instance, outcome.run_id) == ["bundle"]
    reason = f"bundle {forged}: objects[0] {OBJECT_ID}: object_id is not the sha256 of the object's bytes"
    assert outcome.error == reason
    with pytest.raises(HubError, match=f"objects\\[0\\] {OBJECT_ID}: object_id is not the sha256"):
        push_main(hub, FORGER, FORGED_PUSH)
    assert object_rows(hub, [OBJECT_ID]) == {}
    assert not_found_text(hub, FORGER, OBJECT_ID) == not_found_text(hub, FORGER, fake_id("missing"))

    hub_env.index_ok(push_main(hub, HONEST, HONEST_PUSH))  # an honest bundle passes the check
    assert read_object(hub, HONEST, OBJECT_ID) == TRUE_BYTES


# --- reads across repos --------------------------------------------------------------------------


@pytest.mark.parametrize("store_url", ["file"], indirect=True)
def test_another_repos_object_is_not_found_like_a_missing_one(hub_env: HubEnv, hub: Hub) -> None:
    missing = not_found_text(hub, BYSTANDER, fake_id("missing"))
    assert missing == (NotFound, f"object <id> not found in repo {BYSTANDER}")
    honest = push_main(hub, HONEST, HONEST_PUSH)
    # A repo whose bundle carrying the object was refused gains no reference to it either.
    data, snapshot_id, reason = refused_push_carrying_the_object()
    refused = hub_env.upload(BYSTANDER, data)
    (outcome,) = hub_env.index(refused)
    assert not outcome.success and failed_steps(hub_env.instance, outcome.run_id) == ["bundle"]
    assert outcome.error == f"bundle {refused}: snapshots[0] {snapshot_id}: {reason}"

    assert not_found_text(hub, BYSTANDER, OBJECT_ID) == missing  # while inline only
    hub_env.index_ok(honest)
    assert not_found_text(hub, BYSTANDER, OBJECT_ID) == missing  # once in the store
    assert read_object(hub, HONEST, OBJECT_ID) == TRUE_BYTES


# --- credentials ------------------------------------------------------------------------------------


@pytest.fixture
def secret(s3_env: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A secret access key no log could contain by chance, set before the store is opened."""
    value = f"hub-secret-{uuid.uuid4().hex}"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", value)
    yield value


def run_texts(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """Every event of the run, whole (messages, metadata values, error texts), and its record."""
    texts = [dg.serialize_value(entry) for entry in instance.all_logs(run_id)]
    return [*texts, dg.serialize_value(instance.get_run_by_id(run_id))]


def file_texts(root: Path) -> list[str]:
    return [path.read_bytes().decode(errors="replace") for path in root.rglob("*") if path.is_file()]


@pytest.mark.parametrize("store_url", ["s3"], indirect=True)
def test_credentials_never_reach_logs_or_run_metadata(
    secret: str,
    hub_env: HubEnv,
    hub: Hub,
    pg_url: str,
    store_url: str,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    refused = CORPUS["zstd-bomb"]()
    outcomes = hub_env.index(push_main(hub, HONEST, HONEST_PUSH), hub_env.upload(REPO, refused.data))
    assert [o.success for o in outcomes] == [True, False]
    bundle_file = tmp_path / "forged.bundle"
    bundle_file.write_bytes(FORGED_PUSH[0])
    aws = {name: value for name, value in os.environ.items() if name.startswith("AWS_")}
    cli_home = tmp_path / "cli"
    cli = run_measured(
        [*CLI, "push", str(bundle_file), "--repo", FORGER, "--branch", "main", "--index"],
        hub_child_env(cli_home, pg_url, store_url, **aws),
        tmp_path / "cli-run",
    )
    assert cli.returncode == 0, cli.stderr

    captured = capfd.readouterr()
    texts = [captured.out, captured.err, cli.stdout, cli.stderr, *file_texts(cli_home)]
    for outcome in outcomes:
        texts += run_texts(hub_env.instance, outcome.run_id)
    texts += file_texts(Path(hub_env.instance.root_directory))
    assert len(texts) > 50 and any("object_blobs" in t for t in texts), "the scan saw the runs' events"
    assert not [t[:200] for t in texts if secret in t]
