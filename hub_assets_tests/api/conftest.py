"""The hub API under test: uvicorn on a free loopback port, in a thread of the test process (so
the test reads the same catalog and store), and a plain HTTP client that sends exact bytes."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import msgpack
import pytest
import uvicorn

from hub_assets.api import ApiLimits, create_app
from hub_assets.hub import Hub
from hub_assets.hub.repos import create_token
from hub_assets_tests.hub.conftest import file_index, open_hub
from hub_assets_tests.polling import wait_until
from hub_assets_tests.ports import listening_socket

START_TIMEOUT_S = 30
REQUEST_TIMEOUT_S = 60  # the client's own


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    raw: bytes

    @property
    def body(self) -> Any:
        """The body decoded as msgpack, as the client decodes it (anything else fails here)."""
        return msgpack.unpackb(self.raw, raw=False)


@dataclass
class ApiServer:
    hub: Hub
    port: int
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def token(self, owner: str) -> str:
        if owner not in self.tokens:
            self.tokens[owner] = create_token(self.hub, owner)
        return self.tokens[owner]

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """Exactly `body` and `headers` (plus Host and, with a body, Content-Length)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=REQUEST_TIMEOUT_S)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return Reply(response.status, dict(response.getheaders()), response.read())
        finally:
            connection.close()

    def call(self, method: str, path: str, content: Any = None, *, owner: str | None = None) -> Reply:
        """As the client calls: `content` packed as msgpack, with a token of `owner` if given."""
        headers = {"Accept": "application/x-msgpack, application/json"}
        body = None
        if content is not None:
            body = msgpack.packb(content, use_bin_type=True)
            headers["Content-Type"] = "application/x-msgpack"
        if owner is not None:
            headers["Authorization"] = f"Bearer {self.token(owner)}"
        return self.request(method, path, body, headers)


def serve(hub: Hub, limits: ApiLimits | None = None) -> Iterator[ApiServer]:
    sock = listening_socket()
    server = uvicorn.Server(uvicorn.Config(create_app(hub, limits), log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="api-server", daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started or not thread.is_alive(), START_TIMEOUT_S, what="the API server to start")
        assert thread.is_alive(), "the API server stopped at start-up"
        yield ApiServer(hub, sock.getsockname()[1])
    finally:
        server.should_exit = True
        thread.join(START_TIMEOUT_S)
        sock.close()


@pytest.fixture
def file_api(pg_url: str, file_store_url: str) -> Iterator[ApiServer]:
    """The API on a fresh catalog and a file store."""
    for hub in open_hub(pg_url, file_store_url, publish_in_background=True):
        yield from serve(hub)


@pytest.fixture
def s3_api(pg_url: str, s3_store_url: str) -> Iterator[ApiServer]:
    """The API on a fresh catalog and an S3 store (moto)."""
    for hub in open_hub(pg_url, s3_store_url, publish_in_background=True):
        yield from serve(hub)


@pytest.fixture
def api_with_limits(pg_url: str, file_store_url: str) -> Callable[[ApiLimits], Iterator[ApiServer]]:
    """`serve(limits)`: the API on a fresh catalog and a file store, with limits of the test's."""

    def start(limits: ApiLimits) -> Iterator[ApiServer]:
        for hub in open_hub(pg_url, file_store_url, publish_in_background=True):
            yield from serve(hub, limits)

    return start


__all__ = ["file_index"]  # the indexer of hub_assets_tests/hub, for the tests that index pushes
