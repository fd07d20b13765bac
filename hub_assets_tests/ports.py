"""Loopback ports for the servers tests start, never one port for two servers.

A server that takes a socket gets one already bound and listening (`listening_socket`), or binds
port 0 itself and says which port it got (moto, the fault proxy). A server that only takes a port
number (`dagster dev`) is started through `start_on_free_port`: a port is free when chosen, but
another process may bind it first, so a start that finds it taken is retried on another port, and
a server is only taken as started once the listening socket is its own (`listened_by_descendant`),
never a stranger's answering on the same port.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
START_ATTEMPTS = 5
_LISTEN = "0A"  # TCP state in /proc/net/tcp*


class PortTaken(Exception):
    """The server could not bind its port: another process had taken it."""


def listening_socket() -> socket.socket:
    """A socket bound to a free loopback port and listening, for a server that accepts one."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def free_port() -> int:
    """A loopback port that was free a moment ago; start the server on it with `start_on_free_port`."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_on_free_port(start: Callable[[int], T], attempts: int = START_ATTEMPTS) -> T:
    """`start(port)` on a free port; on another one each time it raises PortTaken."""
    taken = []
    for _ in range(attempts):
        port = free_port()
        try:
            return start(port)
        except PortTaken:
            taken.append(port)
    raise AssertionError(f"every port tried was taken by another process first: {taken}")


def listened_by_descendant(port: int, ancestor: int) -> bool:
    """Whether process `ancestor` or one of its descendants holds a socket listening on `port`."""
    sockets = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    if not sockets:
        return False
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if any(os.readlink(fd) in sockets for fd in (entry / "fd").iterdir()):
                return ancestor in _ancestry(int(entry.name))
        except OSError:
            continue  # the process ended meanwhile
    return False


def _ancestry(pid: int) -> list[int]:
    """`pid` and its parents, up to init."""
    chain = [pid]
    while pid > 1:
        pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[1])
        chain.append(pid)
    return chain


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                if fields[3] == _LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(fields[9])
    return inodes
