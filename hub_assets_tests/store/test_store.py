"""The object store (SPEC §4), on both backends: write-once puts, reads, listings, URIs."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

import boto3
import pytest

from hub_assets.store import FileStore, ObjectNotFound, ObjectStore, S3Store, object_key, open_store
from hub_assets.store import s3 as s3_module
from hub_assets_tests.faults.state import partial_writes


@pytest.fixture
def store(store_url: str) -> Iterator[ObjectStore]:
    store = open_store(store_url)
    try:
        yield store
    finally:
        store.close()


def test_put_then_get_is_byte_exact(store: ObjectStore) -> None:
    data = bytes(range(256)) * 1000 + b"\x00\r\n\xff"
    assert store.put("objects/ab/cdef", data) is True
    assert store.get("objects/ab/cdef") == data
    assert store.put("empty", b"") is True
    assert store.get("empty") == b""
    with store.open("objects/ab/cdef") as stream:
        assert stream.read() == data


def test_put_is_write_once(store: ObjectStore) -> None:
    assert store.put("k/once", b"first") is True
    assert store.put("k/once", b"second, longer bytes") is False
    assert store.get("k/once") == b"first"


def test_racing_puts_one_winner_whole_bytes(store: ObjectStore) -> None:
    writers = 16
    barrier = threading.Barrier(writers)
    # Distinct, same-length payloads of ~1 MiB: a torn mix would show bytes of two writers.
    payloads = [bytes([i]) * (1024 * 1024) for i in range(writers)]
    results: list[bool | None] = [None] * writers
    errors: list[BaseException] = []

    def put(i: int) -> None:
        try:
            barrier.wait()
            results[i] = store.put("race/key", payloads[i])
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=put, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    winners = [i for i, won in enumerate(results) if won is True]
    assert len(winners) == 1, results
    assert all(won is False for i, won in enumerate(results) if i != winners[0])
    assert store.get("race/key") == payloads[winners[0]]


def test_exists_and_missing_keys(store: ObjectStore) -> None:
    assert store.exists("a/b") is False
    store.put("a/b", b"x")
    assert store.exists("a/b") is True
    assert store.exists("a") is False
    assert store.exists("a/b/c") is False
    with pytest.raises(ObjectNotFound):
        store.get("objects/no/such")
    with pytest.raises(KeyError):  # ObjectNotFound is a KeyError
        store.open("nothing")


def test_list_is_sorted_and_scoped_to_prefix(store: ObjectStore) -> None:
    keys = ["uploads/r1/b", "uploads/r1/a", "uploads/r1/sub/c", "uploads/r2/a", "uploads/r10/a", "objects/ab/cd"]
    for key in keys:
        store.put(key, key.encode())
    listed = list(store.list("uploads/r1/"))
    assert [k.key for k in listed] == ["uploads/r1/a", "uploads/r1/b", "uploads/r1/sub/c"]
    assert [k.size for k in listed] == [len(k.key) for k in listed]
    assert all(k.last_modified.tzinfo is not None for k in listed)
    assert [k.key for k in store.list("uploads/")] == sorted(k for k in keys if k.startswith("uploads/"))
    assert [k.key for k in store.list("uploads/r1/", start_after="uploads/r1/a")] == [
        "uploads/r1/b",
        "uploads/r1/sub/c",
    ]
    assert list(store.list("nothing/")) == []


def test_list_pages_with_start_after(store: ObjectStore) -> None:
    keys = [f"uploads/repo/{i:03d}" for i in range(25)]
    for key in reversed(keys):
        store.put(key, b"x")
    store.put("uploads/repp/000", b"other prefix")
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        iterator = store.list("uploads/repo/", start_after=cursor)
        page = [item.key for _, item in zip(range(10), iterator, strict=False)]
        if not page:
            break
        pages += 1
        seen += page
        cursor = page[-1]
    assert seen == keys
    assert pages == 3


def test_uri_for(store: ObjectStore, store_url: str) -> None:
    key = object_key("ab" + "c" * 62)
    uri = store.uri_for(key)
    parsed = urlparse(store_url)
    if parsed.scheme == "s3":
        assert uri == f"s3://{parsed.netloc}/hub/objects/ab/{'c' * 62}"
    else:
        assert uri == f"file://{parsed.path}/objects/ab/{'c' * 62}"
        assert uri.startswith("file:///")
        store.put(key, b"here")
        assert Path(urlparse(uri).path).read_bytes() == b"here"


def test_put_many(store: ObjectStore) -> None:
    items = [(f"many/{i:03d}", (lambda i=i: f"value {i}".encode())) for i in range(200)]
    assert store.put_many(items, in_flight=8) == 200
    assert store.put_many(items, in_flight=8) == 0
    assert store.get("many/123") == b"value 123"
    assert len(list(store.list("many/"))) == 200


# --- streamed writes, publish, delete: what a push's quarantine needs ---------------------------


def test_writer_shows_the_key_only_once_committed(store: ObjectStore, monkeypatch: pytest.MonkeyPatch) -> None:
    # Two and a half S3 parts (made small here), in uneven pieces: a multipart upload on S3.
    monkeypatch.setattr(s3_module, "PART_BYTES", 5 * 1024 * 1024)
    data = os.urandom(12 * 1024 * 1024 + 17)
    with store.writer("quarantine/r/big") as writer:
        for start in range(0, len(data), 3_000_001):
            writer.write(data[start : start + 3_000_001])
            assert not store.exists("quarantine/r/big")
        writer.commit()
    assert store.get("quarantine/r/big") == data
    with store.writer("quarantine/r/small") as writer:
        writer.write(b"small")
        writer.commit()
    assert store.get("quarantine/r/small") == b"small"
    assert partial_writes(store, "quarantine/") == 0


def test_an_aborted_or_failed_write_leaves_no_key(store: ObjectStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(s3_module, "PART_BYTES", 5 * 1024 * 1024)
    with pytest.raises(RuntimeError), store.writer("quarantine/r/failed") as writer:
        writer.write(os.urandom(6 * 1024 * 1024))
        raise RuntimeError("the stream broke")
    writer.abort()  # twice is fine
    assert not store.exists("quarantine/r/failed")
    assert list(store.list("quarantine/")) == []
    assert partial_writes(store, "quarantine/") == 0


def test_unfinished_writes_are_discarded_by_age(store: ObjectStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """A writer killed before commit or abort leaves a partial write; only an old one is dropped."""
    monkeypatch.setattr(s3_module, "PART_BYTES", 5 * 1024 * 1024)
    left = store.writer("quarantine/r/killed")
    left.write(os.urandom(6 * 1024 * 1024))  # never committed nor aborted
    assert partial_writes(store, "quarantine/") == 1
    if isinstance(store, FileStore):  # moto reports every multipart upload as initiated in 2010
        assert store.discard_partial_writes("quarantine/", datetime.now(UTC) - timedelta(hours=1)) == 0
        assert partial_writes(store, "quarantine/") == 1
    assert store.discard_partial_writes("quarantine/", datetime.now(UTC) + timedelta(seconds=5)) == 1
    assert partial_writes(store, "quarantine/") == 0
    assert list(store.list("")) == []


def test_publish_is_write_once_and_keeps_the_source(store: ObjectStore) -> None:
    store.put("quarantine/r/a", b"bundle bytes")
    store.put("quarantine/r/b", b"other bytes")
    assert store.publish("quarantine/r/a", "uploads/r/key") is True
    assert store.publish("quarantine/r/b", "uploads/r/key") is False
    assert store.get("uploads/r/key") == b"bundle bytes"
    assert store.get("quarantine/r/a") == b"bundle bytes"
    with pytest.raises(ObjectNotFound):
        store.publish("quarantine/r/missing", "uploads/r/other")
    assert not store.exists("uploads/r/other")

    store.delete("quarantine/r/a")
    store.delete("quarantine/r/a")  # a missing key is not an error
    assert not store.exists("quarantine/r/a")
    assert store.get("uploads/r/key") == b"bundle bytes"


# --- file store -------------------------------------------------------------------------------


def test_file_store_leaves_no_temp_files(file_store_url: str) -> None:
    store = open_store(file_store_url)
    assert isinstance(store, FileStore)
    store.put_many([(f"objects/{i % 7:02d}/{i}", lambda i=i: b"x" * i) for i in range(50)], in_flight=8)
    store.put("objects/00/0", b"again")  # the write-once path
    barrier = threading.Barrier(8)

    def race(i: int) -> None:
        barrier.wait()
        store.put("objects/race/key", bytes([i]) * 4096)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    leftovers = [name for _, _, files in os.walk(store.root) for name in files if name.startswith(".tmp-")]
    assert leftovers == []


@pytest.mark.parametrize("key", ["../x", "a/../../x", "/etc/passwd", "a/..", "..", "a\\..\\x"])
def test_file_store_key_cannot_escape_root(file_store_url: str, key: str) -> None:
    store = open_store(file_store_url)
    with pytest.raises(ValueError):
        store.put(key, b"x")
    with pytest.raises(ValueError):
        store.exists(key)
    with pytest.raises(ValueError):
        store.get(key)
    assert not (store.root.parent / "x").exists()


def test_file_store_root_must_be_absolute() -> None:
    with pytest.raises(ValueError):
        FileStore(Path("relative/root"))


@pytest.mark.parametrize("url", ["http://x", "file://relative", "s3://", "s3:///prefix", "", "/abs/path"])
def test_open_store_rejects_bad_urls(url: str) -> None:
    with pytest.raises(ValueError) as raised:
        open_store(url)
    assert repr(url) in str(raised.value)


# --- S3 ---------------------------------------------------------------------------------------


def test_s3_prefix_is_honoured(s3_store_url: str) -> None:
    store = open_store(s3_store_url)
    assert isinstance(store, S3Store)
    store.put("objects/ab/cd", b"1")
    store.put("uploads/r/k", b"2")
    bucket = urlparse(s3_store_url).netloc
    raw = boto3.client("s3").list_objects_v2(Bucket=bucket)
    assert sorted(item["Key"] for item in raw.get("Contents", [])) == ["hub/objects/ab/cd", "hub/uploads/r/k"]
    assert [k.key for k in store.list("objects/")] == ["objects/ab/cd"]
    store.close()


def test_s3_store_without_prefix_and_with_slashes(s3_store_url: str) -> None:
    bucket = urlparse(s3_store_url).netloc
    store = open_store(f"s3://{bucket}")
    assert store.url == f"s3://{bucket}"
    store.put("top/key", b"1")
    assert store.uri_for("top/key") == f"s3://{bucket}/top/key"
    assert [k.key for k in store.list("top/")] == ["top/key"]
    assert [k.key for k in store.list("")] == ["top/key"]
    store.close()

    store = open_store(f"s3://{bucket}/deep/prefix/")
    store.put("k", b"1")
    assert store.uri_for("k") == f"s3://{bucket}/deep/prefix/k"
    raw = boto3.client("s3").list_objects_v2(Bucket=bucket)
    assert sorted(item["Key"] for item in raw["Contents"]) == ["deep/prefix/k", "top/key"]
    store.close()
