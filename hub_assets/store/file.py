"""The object store on a local (or mounted) filesystem: file:///absolute/path.

Every write (a put, or a streamed `writer`) goes to a temp file under `<root>/.tmp/`, then is
hard-linked to its key. The writer holds an exclusive `flock` on its temp file from creation to
removal, and the lock dies with the process, so an unlocked temp file is one a killed writer left:
the first put of every store instance removes those, as does `discard_partial_writes`. A sweep may
catch a temp file in the instant between its creation and its lock; the writer then finds its file
gone and starts a new one, having written nothing.
"""

import contextlib
import fcntl
import os
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from .base import KeyWriter, ObjectNotFound, ObjectStore, StoredKey

TEMP_DIR = ".tmp"


class FileStore(ObjectStore):
    max_parallel_puts = 2

    def __init__(self, root: Path) -> None:
        if not root.is_absolute():
            raise ValueError(f"file store root must be an absolute path, got {root}")
        self.root = root
        self.url = f"file://{root}"
        self._temp_dir = f"{root}/{TEMP_DIR}"
        self._made_dirs: set[str] = set()
        self._swept = False
        self._sweeping = threading.Lock()

    def _path(self, key: str) -> str:
        # String checks, not Path.resolve(): resolving costs several syscalls per put.
        if key.startswith("/") or "\\" in key or ".." in key.split("/"):
            raise ValueError(f"key {key!r} escapes the store root")
        if _under_temp_dir(key):
            raise ValueError(f"key {key!r} is under {TEMP_DIR}/, the store's own temp files")
        return f"{self.root}/{key}"

    def _ensure_dir(self, directory: str) -> None:
        if directory not in self._made_dirs:
            os.makedirs(directory, exist_ok=True)
            self._made_dirs.add(directory)

    def put(self, key: str, data: bytes) -> bool:
        path = self._path(key)
        self._sweep_once()
        if os.path.exists(path):
            return False
        self._ensure_dir(os.path.dirname(path))
        # A reader or a crash never sees a torn file, and unlike rename, link refuses to replace
        # a key that appeared meanwhile.
        temp, fd = self._locked_temp_file()
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.link(temp, path)
            return True
        except FileExistsError:
            return False
        finally:
            os.unlink(temp)
            os.close(fd)  # only now: the lock guards the temp file until its name is gone

    def _locked_temp_file(self) -> tuple[str, int]:
        """A new temp file, created and locked: (path, descriptor open for writing)."""
        self._ensure_dir(self._temp_dir)
        while True:
            temp = f"{self._temp_dir}/{uuid.uuid4().hex}"
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)
            with contextlib.suppress(FileNotFoundError):
                if os.stat(temp).st_ino == os.fstat(fd).st_ino:
                    return temp, fd
            os.close(fd)  # a sweep removed it before the lock was taken

    def _sweep_once(self) -> None:
        if self._swept:
            return
        with self._sweeping:
            if not self._swept:
                self._remove_abandoned_temp_files()
                self._swept = True

    def _remove_abandoned_temp_files(self) -> int:
        """Remove the temp files no writer holds a lock on: their writers were killed."""
        try:
            names = os.listdir(self._temp_dir)
        except FileNotFoundError:
            return 0
        removed = 0
        for name in names:
            temp = f"{self._temp_dir}/{name}"
            try:
                fd = os.open(temp, os.O_RDONLY)
            except FileNotFoundError:
                continue  # its writer finished meanwhile
            try:
                # Shared: it conflicts with a writer's exclusive lock, and needs only read access.
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)  # a live writer's
                continue
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
                removed += 1
            os.close(fd)
        return removed

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
        if _under_temp_dir(prefix):
            return
        base = self.root / prefix.rstrip("/") if prefix.endswith("/") else self.root
        keys = []
        for directory, subdirectories, files in os.walk(base):
            if directory == str(self.root) and TEMP_DIR in subdirectories:
                subdirectories.remove(TEMP_DIR)
            for name in files:
                key = os.path.relpath(os.path.join(directory, name), self.root)
                if key.startswith(prefix) and (start_after is None or key > start_after):
                    keys.append(key)
        for key in sorted(keys):
            stat = (self.root / key).stat()
            yield StoredKey(key, stat.st_size, datetime.fromtimestamp(stat.st_mtime, UTC))

    def writer(self, key: str) -> KeyWriter:
        path = self._path(key)
        self._ensure_dir(os.path.dirname(path))
        temp, fd = self._locked_temp_file()
        return _FileWriter(key, path, temp, fd)

    def publish(self, source: str, key: str) -> bool:
        # A hard link: atomic, no copy of the bytes, and refused if the key exists.
        path = self._path(key)
        self._ensure_dir(os.path.dirname(path))
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
        """The temp files killed writers left, whatever their key or age: a temp file's lock tells
        a live writer's from a dead one's, so no grace period is needed here."""
        return self._remove_abandoned_temp_files()


class _FileWriter(KeyWriter):
    """Writes a locked temp file, hard-linked to the key on commit (as `put`)."""

    def __init__(self, key: str, path: str, temp: str, fd: int) -> None:
        self.key = key
        self._path = path
        self._temp = temp
        self._file: IO[bytes] | None = os.fdopen(fd, "wb")

    def write(self, data: bytes) -> None:
        assert self._file is not None, "write after commit or abort"
        self._file.write(data)

    def commit(self) -> None:
        assert self._file is not None, "commit after commit or abort"
        self._file.flush()
        try:
            os.link(self._temp, self._path)
        except FileExistsError:
            pass  # write-once: the key keeps the bytes it has
        finally:
            self._release()

    def abort(self) -> None:
        if self._file is not None:
            self._release()

    def _release(self) -> None:
        """Remove the temp file, then close it: the lock guards it until its name is gone."""
        assert self._file is not None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._temp)
        self._file.close()
        self._file = None


def _under_temp_dir(key: str) -> bool:
    return key.split("/", 1)[0] == TEMP_DIR
