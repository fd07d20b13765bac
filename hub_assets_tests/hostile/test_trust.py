"""Trust (SPEC §2, §8): stored objects are write-once whatever another repo declares, declared ids
can be verified, a repo reads only what it references, and credentials never reach a log."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from hub_assets.embedded_postgres import drop_database, libpq_conninfo
from hub_assets.hub import Hub, HubError, NotFound, push, read_object
from hub_assets.store import object_key, partition_key, upload_key
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
from .daemon import running_dev, wait_for_runs
from .processes import CLI, run_measured

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
def password_database(pg_admin_url: str) -> Iterator[tuple[str, str]]:
    """(URL, password) of a database owned by a role of its own that logs in with a password no
    log could contain by chance: the catalog's and, by default, Dagster's instance storage."""
    suffix = uuid.uuid4().hex[:12]
    role, database, password = f"hubrole_{suffix}", f"hubsecret_{suffix}", f"pg-secret-{uuid.uuid4().hex}"
    with psycopg.connect(libpq_conninfo(pg_admin_url), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(database), sql.Identifier(role)))
    url = make_url(pg_admin_url).set(username=role, password=password, database=database)
    try:
        yield url.render_as_string(hide_password=False), password
    finally:
        drop_database(pg_admin_url, database)
        with psycopg.connect(libpq_conninfo(pg_admin_url), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def database_texts(url: str) -> list[str]:
    """Every row of every table of the database, as text: the catalog, and Dagster's event log
    (messages, metadata, errors), runs (tags, config), asset records, sensor ticks, cursors…"""
    with psycopg.connect(libpq_conninfo(url)) as conn:
        tables = [name for (name,) in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        return [
            row_text
            for table in tables
            for (row_text,) in conn.execute(sql.SQL("SELECT t::text FROM {} t").format(sql.Identifier(table)))
        ]


def file_texts(root: Path) -> list[str]:
    return [path.read_bytes().decode(errors="replace") for path in root.rglob("*") if path.is_file()]


@pytest.mark.slow
def test_credentials_never_reach_logs_or_run_metadata(
    password_database: tuple[str, str],
    s3_store_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A CLI push + index and daemon-launched runs (one refused) on a password-protected database
    and an S3 store with a secret key: neither secret reaches a file under the hub's home, the
    output, or any row of the database the catalog and the instance share."""
    database_url, password = password_database
    s3_secret = f"s3-secret-{uuid.uuid4().hex}"
    aws = {name: value for name, value in os.environ.items() if name.startswith("AWS_")}
    aws["AWS_SECRET_ACCESS_KEY"] = s3_secret
    bundle_file = tmp_path / "honest.bundle"
    bundle_file.write_bytes(HONEST_PUSH[0])
    refused = CORPUS["zstd-bomb"]()

    with running_dev(database_url, s3_store_url, tmp_path, monkeypatch, **aws) as dev:
        cli = run_measured(
            [*CLI, "push", str(bundle_file), "--repo", HONEST, "--branch", "main", "--index"], dev.env, tmp_path / "cli"
        )
        assert cli.returncode == 0, cli.stderr
        refused_key = partition_key(REPO, sha256_hex(refused.data))
        dev.hub.store.put(upload_key(refused_key), refused.data)  # straight into the upload prefix, as a client may
        by_daemon = {push_main(dev.hub, FORGER, FORGED_PUSH), refused_key}
        runs = wait_for_runs(dev, by_daemon, 180)
        statuses = sorted(run.status.value for partition_runs in runs.values() for run in partition_runs)
        assert statuses == ["FAILURE", "SUCCESS"]
        assert all(run.tags.get("dagster/sensor_name") for partition_runs in runs.values() for run in partition_runs)
        texts = [*database_texts(database_url), *file_texts(tmp_path)]

    captured = capfd.readouterr()
    texts += [captured.out, captured.err, cli.stdout, cli.stderr]
    for seen in ("STEP_START", "object_blobs", "hub/repo_id", "objects_written", "decodes to more than"):
        assert any(seen in text for text in texts), f"the scan never saw {seen!r}: it missed events or runs"
    for secret in (password, s3_secret):
        assert not [text[:300] for text in texts if secret in text]
