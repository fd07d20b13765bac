"""Child process of the push crash tests: push a bundle file as `hub-assets push` does, after
arranging to SIGKILL itself at one point of the push.

    python -m hub_assets_tests.hub.push_driver --kill POINT FILE REPO BRANCH

POINT is `read:<n>` (validating: once n MiB of the stream have been read, bytes partly written to
quarantine), `landed` (validated and its quarantine key written, before the commit point) or
`accepted` (right after the commit point, before the upload is published). The environment
carries HUB_DATABASE_URL, HUB_OBJECT_STORE_URL and AWS_*.
"""

from __future__ import annotations

import argparse
import importlib
import os
from pathlib import Path
from typing import Any

from hub_assets.bundle.limits import MIB
from hub_assets.catalog import Catalog
from hub_assets.hub import Hub, push
from hub_assets.settings import DATABASE_URL, OBJECT_STORE_URL
from hub_assets_tests.faults.crash_driver import die


def after_mib_read(mib: str) -> None:
    # Counted in bytes, not reads: how much the decoder asks for at a time is its own business.
    # The package re-exports the function `push`, which hides the module of the same name.
    tee = importlib.import_module("hub_assets.hub.push")._Tee
    left = int(mib) * MIB
    read = tee.read

    def killing_read(self: Any, size: int = -1) -> bytes:
        nonlocal left
        data = read(self, size)
        left -= len(data)
        if left <= 0:
            die()
        return data

    tee.read = killing_read


def at_commit_point(when: str) -> None:
    accept = Catalog.accept_push

    def killing_accept(self: Catalog, *args: Any) -> bool:
        if when == "landed":
            die()
        accepted = accept(self, *args)
        die()
        return accepted

    Catalog.accept_push = killing_accept  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kill", required=True, help="read:<n>, landed or accepted")
    parser.add_argument("file", type=Path)
    parser.add_argument("repo")
    parser.add_argument("branch")
    args = parser.parse_args()
    where, _, arg = args.kill.partition(":")
    if where == "read":
        after_mib_read(arg)
    else:
        at_commit_point(where)
    hub = Hub.connect(os.environ[DATABASE_URL], os.environ[OBJECT_STORE_URL])
    with args.file.open("rb") as stream:
        push(hub, args.repo, args.branch, stream)


if __name__ == "__main__":
    main()
