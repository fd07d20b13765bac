"""The endpoints of the Muse Wire Protocol (SPEC §10), each under `/<owner>/<slug>/`.

Reads (refs, negotiate, fetch) need no token; every write (filter-objects too: its answer tells
which objects exist) needs the owner's. A write to a repo that does not exist yet makes it: the
first `muse push` to a new remote uploads objects before it pushes commits. A `/push` makes it
only if the push is accepted (hub/repos.py `push_to_repo`): a refused one leaves no repo.

A push refused for what it carries (a rule of SPEC §3, the ghost guard, a bad presigned upload)
is answered 200 `{ok: false, message}`, which the client prints as `Push rejected by remote:
<message>`; a 4xx would reach the user as `HTTP 4xx: <raw msgpack>`. A request that cannot be
read is a 400, a branch that moved or does not fast-forward a 409.
"""

from datetime import timedelta

from starlette.responses import Response

from ..catalog import RepoRow
from ..hub import BranchConflict, HubError
from ..hub import fetch as hub_fetch  # module: the route handlers below share its functions' names
from ..hub.presigned import presign_uploads
from ..hub.repos import DEFAULT_DOMAIN, find_repo, push_to_repo, repo_for_write
from ..hub.stream import upload_objects, verify_objects
from .auth import authorize_write
from .http import MSGPACK, Call, error_response, msgpack_response
from .wire import (
    BadRequest,
    decode_map,
    id_list,
    objects_list,
    one_line,
    presign_request,
    push_request,
)


def _existing_repo(call: Call) -> RepoRow:
    repo = find_repo(call.hub, call.owner, call.slug)
    if repo is None:
        raise BadRequest(f"repo {call.owner}/{call.slug} not found", 404)
    return repo


async def _authorized_body(call: Call) -> dict:
    await call.run(authorize_write, call.hub, call.request.headers.get("authorization"), call.owner)
    return decode_map(await call.body(call.limits.max_body_bytes))


async def refs(call: Call) -> Response:
    def answer() -> dict:
        repo = _existing_repo(call)
        return {
            "repo_id": repo.repo_id,
            # The client writes the domain into the clone (a missing one makes it `midi`).
            "domain": repo.domain or DEFAULT_DOMAIN,
            "default_branch": repo.default_branch,
            "branch_heads": call.hub.catalog.branch_heads(repo.repo_id),
        }

    return msgpack_response(await call.run(answer))


async def filter_objects(call: Call) -> Response:
    object_ids = id_list(await _authorized_body(call), "object_ids")

    def missing() -> list[str]:
        repo = find_repo(call.hub, call.owner, call.slug)
        registered = call.hub.catalog.registered_objects(repo.repo_id, object_ids) if repo else set()
        return [object_id for object_id in object_ids if object_id not in registered]

    return msgpack_response({"missing": await call.run(missing)})


async def presign(call: Call) -> Response:
    object_ids = presign_request(await _authorized_body(call))

    def urls() -> dict[str, str]:
        repo = repo_for_write(call.hub, call.owner, call.slug)
        return presign_uploads(call.hub, repo.repo_id, object_ids, timedelta(seconds=call.limits.presign_expires_s))

    presigned = await call.run(urls)
    inline = [object_id for object_id in object_ids if object_id not in presigned]
    return msgpack_response({"presigned": presigned, "inline": inline})


async def push_objects(call: Call) -> Response:
    objects = objects_list(await _authorized_body(call), call.limits.max_objects_per_request)

    def upload() -> dict:
        verified = verify_objects(objects)  # before the repo is made: a refused upload writes nothing
        repo = repo_for_write(call.hub, call.owner, call.slug)
        uploaded = upload_objects(call.hub, repo.repo_id, verified, inline_small=True)
        return {"stored": uploaded.stored, "skipped": uploaded.skipped}

    return msgpack_response(await call.run(upload))


async def push(call: Call) -> Response:
    request = push_request(await _authorized_body(call))

    def accept() -> dict:
        result = push_to_repo(
            call.hub, call.owner, call.slug, request.branch, request.commits, request.snapshots, force=request.force
        )
        return {"ok": True, "message": result.message, "branch_heads": result.branch_heads}

    try:
        return msgpack_response(await call.run(accept))
    except BranchConflict:
        raise
    except HubError as error:
        return error_response(200, one_line(error))


async def negotiate(call: Call) -> Response:
    body = decode_map(await call.body(call.limits.max_read_body_bytes))
    want, have = id_list(body, "want"), id_list(body, "have")

    def answer() -> dict:
        repo = _existing_repo(call)
        result = hub_fetch.negotiate(call.hub, repo.repo_id, want, have)
        return {"ack": result.ack, "common_base": result.common_base, "ready": result.ready}

    return msgpack_response(await call.run(answer))


async def fetch(call: Call) -> Response:
    body = decode_map(await call.body(call.limits.max_read_body_bytes))
    want, have = id_list(body, "want"), id_list(body, "have", required=False)

    def pack() -> bytes:
        repo = _existing_repo(call)
        return hub_fetch.fetch_pack(call.hub, repo.repo_id, want, have, max_bytes=call.limits.max_response_bytes)

    return Response(await call.run(pack), media_type=MSGPACK)


ROUTES = [
    ("GET", "/{owner}/{slug}/refs", refs),
    ("POST", "/{owner}/{slug}/filter-objects", filter_objects),
    ("POST", "/{owner}/{slug}/presign", presign),
    ("POST", "/{owner}/{slug}/push/objects", push_objects),
    ("POST", "/{owner}/{slug}/push", push),
    ("POST", "/{owner}/{slug}/negotiate", negotiate),
    ("POST", "/{owner}/{slug}/fetch", fetch),
]
