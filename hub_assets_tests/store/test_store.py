"""The object store (SPEC §4), on both backends: write-once puts, reads, listings, URIs."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlparse

import boto3
import pytest

from hub_assets.store import FileStore, ObjectNotFound, ObjectStore, object_key, open_store
from hub_assets.store import s3 as s3_module
from hub_assets.store.file import TEMP_DIR
from hub_assets.store.s3 import S3Store
from hub_assets_tests.faults.state import partial_writes

T = TypeVar("T")
DEADLINE_S = 60


@pytest.fixture
def store(store_url: str) -> Iterator[ObjectStore]:
    store = open_store(store_url)
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def s3_store(s3_store_url: str) -> Iterator[S3Store]:
    store = open_store(s3_store_url)
    assert isinstance(store, S3Store)
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


def test_a_stream_reads_into_a_buffer(store: ObjectStore) -> None:
    """The decoder reads a store's stream into buffers of its own (bundle/wire.py)."""
    data = bytes(range(256)) * 100
    store.put("objects/ab/into", data)
    buffer = bytearray(len(data) + 10)
    read = 0
    with store.open("objects/ab/into") as stream:
        while got := stream.readinto(memoryview(buffer)[read:]):
            read += got
    assert bytes(buffer[:read]) == data


def test_put_is_write_once(store: ObjectStore) -> None:
    assert store.put("k/once", b"first") is True
    assert store.put("k/once", b"second, longer bytes") is False
    assert store.get("k/once") == b"first"


def all_at_once(task: Callable[[int], T], count: int) -> list[T]:
    """task(0) … task(count - 1), each on a thread of its own, released together; their results.
    A barrier not reached, or a thread still running, DEADLINE_S later fails the test (the
    threads are daemons: a hung one cannot hold the test run either)."""
    barrier = threading.Barrier(count, timeout=DEADLINE_S)
    results: dict[int, T] = {}
    errors: list[BaseException] = []

    def released(i: int) -> None:
        try:
            barrier.wait()
            results[i] = task(i)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=released, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + DEADLINE_S
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    assert not any(thread.is_alive() for thread in threads), f"threads still running after {DEADLINE_S}s"
    assert not errors, errors
    return [results[i] for i in range(count)]


def test_racing_puts_one_winner_whole_bytes(store: ObjectStore) -> None:
    writers = 16
    # Distinct, same-length payloads of ~1 MiB: a torn mix would show bytes of two writers.
    payloads = [bytes([i]) * (1024 * 1024) for i in range(writers)]

    results = all_at_once(lambda i: store.put("race/key", payloads[i]), writers)

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


def test_writer_keeps_what_was_written_not_the_buffer_it_came_in(store: ObjectStore) -> None:
    buffer = bytearray(b"first bytes")
    with store.writer("quarantine/r/reused") as writer:
        writer.write(buffer)
        buffer[:] = b"other bytes"  # a reader's buffer, reused for the next read
        writer.commit()
    assert store.get("quarantine/r/reused") == b"first bytes"


def test_an_aborted_or_failed_write_leaves_no_key(store: ObjectStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(s3_module, "PART_BYTES", 5 * 1024 * 1024)
    with pytest.raises(RuntimeError), store.writer("quarantine/r/failed") as writer:
        writer.write(os.urandom(6 * 1024 * 1024))
        raise RuntimeError("the stream broke")
    writer.abort()  # twice is fine
    assert not store.exists("quarantine/r/failed")
    assert list(store.list("quarantine/")) == []
    assert partial_writes(store, "quarantine/") == 0


KILLED_STREAM_WRITER = """
import os, signal, sys
from pathlib import Path
from hub_assets.store import FileStore
writer = FileStore(Path(sys.argv[1])).writer("quarantine/r/killed")
writer.write(os.urandom(1024))
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_unfinished_file_writes_are_discarded_once_their_writer_is_dead(file_root: Path) -> None:
    """A file store tells a killed writer's temp file by its lock, whatever its age."""
    store = FileStore(file_root)
    live = store.writer("quarantine/r/live")
    live.write(b"a write under way")
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_STREAM_WRITER, str(file_root)], capture_output=True, text=True, timeout=DEADLINE_S
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert partial_writes(store, "quarantine/") == 2

    assert store.discard_partial_writes("quarantine/", datetime.now(UTC) + timedelta(days=1)) == 1

    assert partial_writes(store, "quarantine/") == 1  # the live one
    live.write(b", still")
    live.commit()
    assert store.get("quarantine/r/live") == b"a write under way, still"
    assert [item.key for item in store.list("")] == ["quarantine/r/live"]


def test_unfinished_s3_writes_are_discarded_by_age(s3_store: S3Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """A writer killed before commit or abort leaves a multipart upload; old ones are dropped
    (moto dates every multipart upload 2010, so only the 'old enough' side can be shown here)."""
    monkeypatch.setattr(s3_module, "PART_BYTES", 5 * 1024 * 1024)
    left = s3_store.writer("quarantine/r/killed")
    left.write(os.urandom(6 * 1024 * 1024))  # never committed nor aborted
    assert partial_writes(s3_store, "quarantine/") == 1
    assert s3_store.discard_partial_writes("quarantine/", datetime.now(UTC) + timedelta(seconds=5)) == 1
    assert partial_writes(s3_store, "quarantine/") == 0
    assert list(s3_store.list("")) == []


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


def temp_files(root: Path) -> list[str]:
    """What is in the file store's temp directory."""
    temp_dir = root / TEMP_DIR
    return sorted(os.listdir(temp_dir)) if temp_dir.exists() else []


@pytest.fixture
def file_root(file_store_url: str) -> Path:
    return Path(urlparse(file_store_url).path)


def test_file_store_leaves_no_temp_files(file_root: Path) -> None:
    store = FileStore(file_root)
    store.put_many([(f"objects/{i % 7:02d}/{i}", lambda i=i: b"x" * i) for i in range(50)], in_flight=8)
    store.put("objects/00/0", b"again")  # the write-once path
    all_at_once(lambda i: store.put("objects/race/key", bytes([i]) * 4096), 8)
    assert temp_files(file_root) == []
    assert len(list(store.list(""))) == 51


KILLED_WRITER = """
import os, signal, sys
from pathlib import Path
from hub_assets.store import FileStore
os.link = lambda *args, **kwargs: os.kill(os.getpid(), signal.SIGKILL)
FileStore(Path(sys.argv[1])).put("objects/ab/killed", b"bytes of a writer killed before its link")
"""


def test_a_killed_writers_temp_file_is_removed_by_the_next_put(file_root: Path) -> None:
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_WRITER, str(file_root)], capture_output=True, text=True, timeout=DEADLINE_S
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    (left,) = temp_files(file_root)
    assert (file_root / TEMP_DIR / left).stat().st_size > 0

    store = FileStore(file_root)
    store.put("objects/cd/next", b"x")

    assert temp_files(file_root) == []
    assert [item.key for item in store.list("")] == ["objects/cd/next"]


def test_a_sweep_leaves_a_live_writers_temp_file(file_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    writer, sweeper = FileStore(file_root), FileStore(file_root)
    data = b"written while another store sweeps" * 100
    at_link, release = threading.Event(), threading.Event()
    link = os.link

    def held_link(src: str, dst: str, **kwargs: object) -> None:
        if dst.endswith("/held"):
            at_link.set()
            assert release.wait(DEADLINE_S)
        link(src, dst, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "link", held_link)
    outcome: dict[str, bool] = {}
    thread = threading.Thread(target=lambda: outcome.update(put=writer.put("objects/ab/held", data)), daemon=True)
    thread.start()
    assert at_link.wait(DEADLINE_S)

    sweeper.put("objects/cd/other", b"x")  # its first put sweeps the temp directory

    assert len(temp_files(file_root)) == 1
    release.set()
    thread.join(DEADLINE_S)
    assert outcome == {"put": True}
    assert writer.get("objects/ab/held") == data
    assert temp_files(file_root) == []


def test_a_temp_file_swept_before_its_writer_locked_it_is_replaced(
    file_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer, sweeper = FileStore(file_root), FileStore(file_root)
    writer.put("objects/00/first", b"x")  # the writer's own sweep is behind it
    flock = fcntl.flock
    swept: list[bool] = []

    def sweep_before_lock(fd: int, operation: int) -> None:
        if operation == fcntl.LOCK_EX and not swept:
            swept.append(True)
            sweeper.put("objects/cd/other", b"y")  # finds the writer's new temp file unlocked
        flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", sweep_before_lock)

    assert writer.put("objects/ab/key", b"the writer's bytes") is True

    assert swept == [True]
    assert writer.get("objects/ab/key") == b"the writer's bytes"
    assert temp_files(file_root) == []


@pytest.mark.parametrize("key", ["../x", "a/../../x", "/etc/passwd", "a/..", "..", "a\\..\\x", f"{TEMP_DIR}/x"])
def test_file_store_key_cannot_escape_root(file_store_url: str, key: str) -> None:
    store = open_store(file_store_url)
    with pytest.raises(ValueError):
        store.put(key, b"x")
    with pytest.raises(ValueError):
        store.exists(key)
    with pytest.raises(ValueError):
        store.get(key)
    assert not (store.root.parent / "x").exists()
    assert list(store.list(f"{TEMP_DIR}/")) == []


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


@pytest.mark.parametrize("in_flight", [1, 8])
def test_get_many_is_byte_exact_in_key_order(store: ObjectStore, in_flight: int) -> None:
    keys = [f"many/{i:03d}" for i in range(60)]
    for key in keys:
        store.put(key, key.encode() * 1000)
    assert list(store.get_many(list(reversed(keys)), in_flight=in_flight).items()) == [
        (key, key.encode() * 1000) for key in reversed(keys)
    ]
    assert store.get_many([], in_flight=in_flight) == {}


def test_get_many_of_a_missing_key_names_it(store: ObjectStore) -> None:
    store.put("many/here", b"x")
    with pytest.raises(ObjectNotFound, match="many/gone"):
        store.get_many(["many/here", "many/gone"], in_flight=4)
