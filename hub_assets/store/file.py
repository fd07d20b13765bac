"""The object store on a local (or mounted) filesystem: file:///absolute/path."""

import contextlib
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from .base import KeyWriter, ObjectNotFound, ObjectStore, StoredKey

_TEMP = ".tmp-"


class FileStore(ObjectStore):
    max_parallel_puts = 2

    def __init__(self, root: Path) -> None:
        if not root.is_absolute():
            raise ValueError(f"file store root must be an absolute path, got {root}")
        self.root = root
        self.url = f"file://{root}"
        self._made_dirs: set[str] = set()

    def _path(self, key: str) -> str:
        # String checks, not Path.resolve(): resolving costs several syscalls per put.
        if key.startswith("/") or "\\" in key or ".." in key.split("/"):
            raise ValueError(f"key {key!r} escapes the store root")
        return f"{self.root}/{key}"

    def _directory_of(self, path: str) -> str:
        directory = os.path.dirname(path)
        if directory not in self._made_dirs:
            os.makedirs(directory, exist_ok=True)
            self._made_dirs.add(directory)
        return directory

    def put(self, key: str, data: bytes) -> bool:
        path = self._path(key)
        if os.path.exists(path):
            return False
        directory = self._directory_of(path)
        # Write beside the target, then hard-link into place: a reader or a crash never sees
        # a torn file, and unlike rename, link refuses to replace a key that appeared meanwhile.
        temp = f"{directory}/.tmp-{uuid.uuid4().hex}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        try:
            os.link(temp, path)
            return True
        except FileExistsError:
            return False
        finally:
            os.unlink(temp)

    def close(self) -> None:
        self._made_dirs.clear()

    def open(self, key: str) -> IO[bytes]:
        try:
            return open(self._path(key), "rb")
        except FileNotFoundError:
            raise ObjectNotFound(key) from None

    def exists(self, key: str) -> bool:
        return os.path.isfile(self._path(key))

    def list(self, prefix: str, start_after: str | None = None) -> Iterator[StoredKey]:
        base = self.root / prefix.rstrip("/") if prefix.endswith("/") else self.root
        keys = []
        for directory, _, files in os.walk(base):
            for name in files:
                if name.startswith(".tmp-"):
                    continue
                key = os.path.relpath(os.path.join(directory, name), self.root)
                if key.startswith(prefix) and (start_after is None or key > start_after):
                    keys.append(key)
        for key in sorted(keys):
            stat = (self.root / key).stat()
            yield StoredKey(key, stat.st_size, datetime.fromtimestamp(stat.st_mtime, UTC))

    def writer(self, key: str) -> KeyWriter:
        path = self._path(key)
        return _FileWriter(key, path, f"{self._directory_of(path)}/{_TEMP}{uuid.uuid4().hex}")

    def publish(self, source: str, key: str) -> bool:
        # A hard link: atomic, no copy of the bytes, and refused if the key exists.
        path = self._path(key)
        self._directory_of(path)
        try:
            os.link(self._path(source), path)
        except FileExistsError:
            return False
        except FileNotFoundError:
            raise ObjectNotFound(source) from None
        return True

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(key))

    def discard_partial_writes(self, prefix: str, older_than: datetime) -> int:
        """The temp files writers left under `prefix` (a directory prefix: it ends with '/')."""
        discarded = 0
        cutoff = older_than.timestamp()
        for directory, _, names in os.walk(self._path(prefix.rstrip("/"))):
            for name in names:
                path = os.path.join(directory, name)
                if name.startswith(_TEMP) and os.stat(path).st_mtime < cutoff:
                    os.unlink(path)
                    discarded += 1
        return discarded


class _FileWriter(KeyWriter):
    """Writes a temp file beside the key, hard-linked into place on commit (as `put`)."""

    def __init__(self, key: str, path: str, temp: str) -> None:
        self.key = key
        self._path = path
        self._temp = temp
        self._file: IO[bytes] | None = open(temp, "xb")  # noqa: SIM115 - closed by commit or abort

    def write(self, data: bytes) -> None:
        assert self._file is not None, "write after commit or abort"
        self._file.write(data)

    def commit(self) -> None:
        assert self._file is not None, "commit after commit or abort"
        self._file.close()
        self._file = None
        try:
            os.link(self._temp, self._path)
        except FileExistsError:
            pass  # write-once: the key keeps the bytes it has
        finally:
            os.unlink(self._temp)

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._temp)
