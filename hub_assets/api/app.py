"""The hub's HTTP API: the Muse Wire Protocol (SPEC §10) as a Starlette app under uvicorn.

Starlette and uvicorn already come with dagster-webserver, so the API adds no dependency (FastAPI
would). The app is thin: it reads and checks the request, authorizes it, and calls the same sync
paths as the CLI (hub_assets/hub/) on a worker thread. It keeps no state between requests but its
connection pools, so any number of processes and machines can serve one catalog and store.

Every response is msgpack, errors included (`{ok: false, message, detail}`, one line): the
client decodes nothing else. Client input never makes a 500; an unexpected exception does, and
is logged. A request body is read in full even when it is refused early, so the client gets
the answer rather than a reset connection, but never held beyond the size cap.
"""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .. import settings
from ..hub import Hub
from .http import ApiLimits, error_response, repo_endpoint
from .routes import ROUTES


async def _http_error(request: Request, error: Exception) -> Response:
    """Starlette's own refusals (no such route, wrong method) in msgpack too."""
    assert isinstance(error, HTTPException)
    return error_response(error.status_code, f"{request.method} {request.url.path}: {error.detail}")


def create_app(hub: Hub | None = None, limits: ApiLimits | None = None) -> Starlette:
    """The API on `hub` (kept open: the caller owns it), or on a Hub of its own from
    HUB_DATABASE_URL and HUB_OBJECT_STORE_URL, opened at start-up and closed at shutdown. Its own
    Hub answers a push at the commit point and publishes the upload after the answer; shutdown
    waits for those publishes."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.limits = limits or ApiLimits()
        if hub is not None:
            app.state.hub = hub
            yield
            return
        app.state.hub = await run_in_threadpool(
            partial(
                Hub.connect,
                os.environ[settings.DATABASE_URL],
                os.environ[settings.OBJECT_STORE_URL],
                publish_in_background=True,
            )
        )
        try:
            yield
        finally:
            app.state.hub.close()

    routes = [Route(path, repo_endpoint(handler), methods=[method]) for method, path, handler in ROUTES]
    return Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: _http_error})


def app_from_environment() -> Starlette:
    """What `hub-assets serve` runs in each worker process (a uvicorn factory)."""
    return create_app()
