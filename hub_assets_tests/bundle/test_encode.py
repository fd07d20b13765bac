"""The PackBundle encoder (bundle/encode.py): its size, known before the objects are read, is exact."""

from __future__ import annotations

from datetime import UTC, datetime

import msgpack
import pytest

from hub_assets.bundle.encode import commit_dict, object_entry_size, pack_head

from .builders import decode_dict, fake_id, full_snapshot, make_bundle, make_commit, sha256_hex

# Around every change of msgpack's bin header (2, 3 then 5 bytes).
SIZES = [0, 1, 255, 256, 65_535, 65_536, 300_000]


@pytest.mark.parametrize("size", SIZES)
def test_an_object_entry_size_is_its_encoded_size(size: int) -> None:
    object_id = fake_id(size)
    entry = msgpack.packb({"object_id": object_id, "content": b"x" * size}, use_bin_type=True)
    assert object_entry_size(object_id, size) == len(entry)


def test_the_head_size_is_the_body_size_and_the_body_a_pack_bundle() -> None:
    contents = {sha256_hex(b"x" * size): b"x" * size for size in SIZES}
    manifest = {f"f{n}.bin": object_id for n, object_id in enumerate(sorted(contents))}
    snapshot = full_snapshot(manifest)
    commit = make_commit(snapshot["snapshot_id"], message="é ünïcode", metadata={"k": "v"})
    record = decode_dict(make_bundle(commits=[commit], snapshots=[snapshot])).commits[0]
    created = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)

    head = pack_head(
        [record],
        [(snapshot["snapshot_id"], manifest, created)],
        {object_id: len(data) for object_id, data in sorted(contents.items())},
        {"main": commit["commit_id"]},
    )
    body = head.encode(dict(contents))

    assert head.size == len(body)
    assert msgpack.unpackb(body) == {
        "commits": [commit],  # every field the pusher sent
        "snapshots": [
            {"snapshot_id": snapshot["snapshot_id"], "manifest": manifest, "created_at": created.isoformat()}
        ],
        "objects": [{"object_id": i, "content": data} for i, data in sorted(contents.items())],
        "branch_heads": {"main": commit["commit_id"]},
    }


def test_a_merge_commit_names_both_parents() -> None:
    snapshot = full_snapshot({})
    commit = make_commit(snapshot["snapshot_id"], parents=[fake_id(1), fake_id(2)])
    record = decode_dict(make_bundle(commits=[commit], snapshots=[snapshot])).commits[0]
    assert commit_dict(record) == commit
