"""A hub with a publisher (the HTTP API's) answers a push at its commit point and publishes the
upload after: the push is fetchable at once, the upload follows, and closing the hub waits for it."""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from hub_assets.hub import Hub, read_object, sweep
from hub_assets.store import upload_key

from .helpers import one_commit_bundle, push_new

REPO = "repo-bg"


@pytest.fixture
def held_publisher() -> Iterator[tuple[ThreadPoolExecutor, threading.Event]]:
    """A one-thread publisher kept busy until the event is set: what a push queues waits."""
    publisher = ThreadPoolExecutor(1, "held-publish")
    release = threading.Event()
    publisher.submit(release.wait, 30)
    yield publisher, release
    release.set()
    publisher.shutdown(wait=True)


def pending(hub: Hub) -> list[str]:
    return [row.bundle_key for row in hub.catalog.pending_uploads()]


def test_push_returns_fetchable_before_its_upload_is_published_and_close_finishes_it(
    hub: Hub, held_publisher: tuple[ThreadPoolExecutor, threading.Event]
) -> None:
    publisher, release = held_publisher
    background = dataclasses.replace(hub, publisher=publisher)
    data, head = one_commit_bundle({"a.txt": b"notes"}, "first")

    result = push_new(background, REPO, data, head)

    # Fetchable now; the upload is still queued behind the held thread, named as pending.
    assert hub.catalog.branch_head(REPO, "main") == head
    assert read_object(hub, REPO, hashlib.sha256(b"notes").hexdigest()) == b"notes"
    assert not hub.store.exists(upload_key(result.partition_key))
    assert pending(hub) == [result.bundle_key]

    release.set()
    publisher.shutdown(wait=True)  # what Hub.close() does first
    assert hub.store.exists(upload_key(result.partition_key))
    assert pending(hub) == []


def test_a_publish_racing_the_sweep_publishes_once(
    hub: Hub, held_publisher: tuple[ThreadPoolExecutor, threading.Event]
) -> None:
    """A sweep may run while a server's publish is still queued (the sensor sweeps every minute):
    it publishes the upload, and the queued publish then finds it done."""
    publisher, release = held_publisher
    background = dataclasses.replace(hub, publisher=publisher)
    data, head = one_commit_bundle({"b.txt": b"more notes"}, "second")
    result = push_new(background, REPO, data, head)

    report = sweep(hub, timedelta(hours=1))
    assert report.published == [result.partition_key]
    assert hub.store.exists(upload_key(result.partition_key))
    release.set()
    publisher.submit(lambda: None).result(timeout=30)  # one thread, in order: the queued publish ran
    assert hub.store.exists(upload_key(result.partition_key))
    assert pending(hub) == []
    assert hub.store.get(upload_key(result.partition_key)) == data


def test_hub_connect_with_background_publishing_drains_on_close(pg_url: str, store_url: str) -> None:
    hub = Hub.connect(pg_url, store_url, publish_in_background=True)
    data, head = one_commit_bundle({"c.txt": b"c"}, "third")
    try:
        result = push_new(hub, REPO, data, head)
    finally:
        hub.close()
    reopened = Hub.connect(pg_url, store_url)
    try:
        assert reopened.store.exists(upload_key(result.partition_key))
        assert pending(reopened) == []
    finally:
        reopened.close()
