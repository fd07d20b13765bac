"""Child process of the crash tests: index partitions as `hub-assets index` does, after arranging
to SIGKILL itself at one point of the run.

    python -m hub_assets_tests.faults.crash_driver [--kill POINT] PARTITION_KEY...

POINT is `<where>:<arg>` (see KILL_POINTS): one library function is wrapped so that the process
dies there, without unwinding, as on an OOM kill or a lost machine. The environment carries the
catalog and store settings (HUB_DATABASE_URL, HUB_OBJECT_STORE_URL, AWS_*) and the instance's
(DAGSTER_HOME and what its dagster.yaml reads). Prints the outcomes as JSON when the run ends
without being killed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NoReturn

import dagster as dg
import obstore

from hub_assets.catalog import Catalog
from hub_assets.catalog import catalog as catalog_module
from hub_assets.environment import open_instance, prepare
from hub_assets.index import assets
from hub_assets.index.run import apply_pool_limits, index_partitions
from hub_assets.settings import OBJECT_STORE_URL
from hub_assets.store import FileStore


def die() -> NoReturn:
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("still alive after SIGKILL")


class Countdown:
    """Dies on the n-th tick, whichever thread ticks."""

    def __init__(self, n: int) -> None:
        self._left = n
        self._lock = threading.Lock()

    def tick(self) -> None:
        with self._lock:
            self._left -= 1
            if self._left == 0:
                die()


def at_asset_start(asset_name: str) -> None:
    """Before the asset reads its bundle: the first thing every asset does."""
    load = assets._load

    def killing_load(context: dg.AssetExecutionContext, *resources: Any) -> Any:
        if context.asset_key.to_user_string() == asset_name:
            die()
        return load(context, *resources)

    assets._load = killing_load


def after_puts(count: str) -> None:
    """After the n-th object put has returned (others may be in flight)."""
    countdown = Countdown(int(count))
    if os.environ[OBJECT_STORE_URL].startswith("s3://"):
        put_async = obstore.put_async

        async def killing_put_async(*args: Any, **kwargs: Any) -> Any:
            result = await put_async(*args, **kwargs)
            countdown.tick()
            return result

        obstore.put_async = killing_put_async
    else:
        put = FileStore.put

        def killing_put(self: FileStore, key: str, data: bytes) -> bool:
            written = put(self, key, data)
            countdown.tick()
            return written

        FileStore.put = killing_put  # type: ignore[method-assign]


def before_link(count: str) -> None:
    """In the n-th file put, its bytes written to a temp file but not yet linked to its key."""
    countdown = Countdown(int(count))
    link = os.link

    def killing_link(src: Any, dst: Any, **kwargs: Any) -> None:
        countdown.tick()
        link(src, dst, **kwargs)

    os.link = killing_link


def in_copy(where: str) -> None:
    """`<table>@end`: after a bulk write's last INSERT, before its transaction commits.
    `<table>@<n>`: when the write asks for its row n+1, i.e. after n / chunk size chunks."""
    table_name, _, at = where.partition("@")
    # Staged writes, new rows COPYed straight in, and keys inserted as one array per chunk: each
    # is called (conn, table, columns or key column, rows or keys, ...).
    for name in ("copy_rows", "copy_new_rows", "insert_keys"):
        setattr(catalog_module, name, _killing_copy(getattr(catalog_module, name), table_name, at))


def _killing_copy(copy: Callable[..., int], table_name: str, at: str) -> Callable[..., int]:
    def killing_copy(conn: Any, table: Any, columns: Any, rows: Iterable[Any], *args: Any, **kwargs: Any) -> int:
        if table.name != table_name:
            return copy(conn, table, columns, rows, *args, **kwargs)
        if at == "end":
            copy(conn, table, columns, rows, *args, **kwargs)
            die()
        return copy(conn, table, columns, _dying_after(rows, int(at)), *args, **kwargs)

    return killing_copy


def _dying_after(rows: Iterable[Any], n: int) -> Iterator[Any]:
    for index, row in enumerate(rows):
        if index == n:
            die()
        yield row


def in_finish_bundle(when: str) -> None:
    """`before` or `after` the bundle's status is set to `indexed`, after its commits are in."""
    finish = Catalog.finish_bundle

    def killing_finish(self: Catalog, *args: Any, **kwargs: Any) -> None:
        if when == "before":
            die()
        finish(self, *args, **kwargs)
        die()

    Catalog.finish_bundle = killing_finish  # type: ignore[method-assign]


KILL_POINTS: dict[str, Callable[[str], None]] = {
    "asset": at_asset_start,
    "puts": after_puts,
    "link": before_link,
    "copy": in_copy,
    "finish": in_finish_bundle,
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kill", help="<where>:<arg>, where is one of " + ", ".join(KILL_POINTS))
    parser.add_argument("partition_keys", nargs="+")
    args = parser.parse_args()
    if args.kill:
        where, _, arg = args.kill.partition(":")
        KILL_POINTS[where](arg)
    with open_instance(prepare()) as instance:
        apply_pool_limits(instance)
        outcomes = index_partitions(instance, args.partition_keys)
    print(json.dumps([dataclasses.asdict(outcome) for outcome in outcomes]))


if __name__ == "__main__":
    main()
