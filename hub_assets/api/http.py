"""The API's request and response plumbing: msgpack always, bodies under a cap, every failure
answered in one msgpack line (hub errors mapped to their HTTP status)."""

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgpack
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from .. import settings
from ..hub import BranchConflict, Hub, HubError, NotFound
from ..hub.repos import name_problem
from .wire import BadRequest, one_line

log = logging.getLogger(__name__)

MSGPACK = "application/x-msgpack"


@dataclass(frozen=True)
class ApiLimits:
    max_body_bytes: int = field(default_factory=settings.api_max_body_bytes)
    max_read_body_bytes: int = field(default_factory=settings.api_max_read_body_bytes)
    max_objects_per_request: int = field(default_factory=settings.api_max_objects_per_request)
    max_response_bytes: int = field(default_factory=settings.api_max_response_bytes)
    presign_expires_s: int = field(default_factory=settings.presign_expires_s)


def msgpack_response(content: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(msgpack.packb(content, use_bin_type=True), status, headers, media_type=MSGPACK)


def error_response(status: int, message: str) -> Response:
    # Both spellings: `message` is what the client prints of a refused push, `detail` is the
    # usual name elsewhere.
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return msgpack_response({"ok": False, "message": message, "detail": message}, status, headers)


def status_of(error: HubError) -> int:
    if isinstance(error, NotFound):
        return 404
    if isinstance(error, BranchConflict):
        return 409
    return 400


@dataclass(frozen=True)
class Call:
    """One request to a repo's endpoint, as a handler sees it."""

    request: Request
    hub: Hub
    limits: ApiLimits
    owner: str
    slug: str

    async def run(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A sync path, on a worker thread: the event loop keeps serving meanwhile."""
        return await run_in_threadpool(function, *args, **kwargs)

    async def body(self, cap: int) -> bytes:
        """The whole body, at most `cap` bytes (413 beyond: the rest is read and dropped)."""
        declared = self.request.headers.get("content-length", "")
        over = declared.isdigit() and int(declared) > cap
        body = bytearray()
        received = 0
        async for chunk in self.request.stream():
            received += len(chunk)
            if not over:
                body += chunk
                over = received > cap
        self.request.state.body_read = True
        if over:
            raise BadRequest(f"body of {declared or received} bytes is over the limit of {cap} bytes", 413)
        return bytes(body)


Handler = Callable[[Call], Awaitable[Response]]


def repo_endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """`handler` for `/<owner>/<slug>/...`, with the names checked and every failure answered
    as msgpack."""

    async def endpoint(request: Request) -> Response:
        app = request.app.state
        try:
            owner, slug = request.path_params["owner"], request.path_params["slug"]
            if problem := name_problem("owner", owner) or name_problem("slug", slug):
                raise BadRequest(problem)
            response = await handler(Call(request, app.hub, app.limits, owner, slug))
        except BadRequest as error:
            response = error_response(error.status, str(error))
        except HubError as error:
            response = error_response(status_of(error), one_line(error))
        except Exception:
            log.exception("%s %s failed", request.method, request.url.path)
            response = error_response(500, "internal error (logged by the hub)")
        if not getattr(request.state, "body_read", False):
            async for _ in request.stream():
                pass
        return response

    return endpoint
