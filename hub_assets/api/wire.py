"""Request bodies of the Muse Wire Protocol (SPEC §10), decoded and type-checked; no I/O.

Only the request's envelope is checked here (types, ids, counts). What a push's commits and
snapshots must satisfy is the bundle decoder's to say (SPEC §3), through the sync path.
"""

from dataclasses import dataclass
from typing import Any

import msgpack

from ..bundle.identity import branch_name_problem, is_hex_id


class BadRequest(Exception):
    """The request cannot be read; the message names what and where, on one line."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def decode_map(body: bytes) -> dict[str, Any]:
    """The body as a msgpack map (strings as str, bytes as bin)."""
    if not body:
        raise BadRequest("empty body: the request must be a msgpack map")
    try:
        value = msgpack.unpackb(body, raw=False)
    except UnicodeDecodeError:
        raise BadRequest("a string of the body is not valid UTF-8") from None
    except (ValueError, TypeError, msgpack.UnpackException) as error:
        raise BadRequest(f"body is not msgpack: {one_line(error)}") from None
    if not isinstance(value, dict):
        raise BadRequest(f"body must be a msgpack map, not {_type(value)}")
    return value


def id_list(body: dict[str, Any], key: str, *, required: bool = True, max_items: int | None = None) -> list[str]:
    """`body[key]` as a list of 64-hex ids, duplicates dropped, order kept."""
    if key not in body and not required:
        return []
    value = body.get(key)
    if not isinstance(value, list):
        raise BadRequest(f"{key} must be an array of ids, not {_type(value)}")
    if max_items is not None and len(value) > max_items:
        raise BadRequest(f"{key}: {len(value)} ids, more than the limit of {max_items}")
    for index, item in enumerate(value):
        check_id(f"{key}[{index}]", item)
    return list(dict.fromkeys(value))


def check_id(where: str, value: object) -> str:
    if not is_hex_id(value):
        raise BadRequest(f"{where}: {_shown(value)} is not 64 lowercase hex characters")
    return value  # type: ignore[return-value]  # is_hex_id proved it a str


def objects_list(body: dict[str, Any], max_objects: int) -> list[tuple[str, bytes]]:
    """`body["objects"]`: (object_id, content) of each `{object_id, content: bin}`."""
    objects = body.get("objects")
    if not isinstance(objects, list):
        raise BadRequest(f"objects must be an array, not {_type(objects)}")
    if len(objects) > max_objects:
        raise BadRequest(f"objects: {len(objects)} objects, more than the limit of {max_objects} per request")
    parsed = []
    for index, item in enumerate(objects):
        where = f"objects[{index}]"
        if not isinstance(item, dict):
            raise BadRequest(f"{where} must be a map, not {_type(item)}")
        object_id = check_id(f"{where}.object_id", item.get("object_id"))
        content = item.get("content")
        if not isinstance(content, bytes):
            raise BadRequest(f"{where}.content must be bin, not {_type(content)}")
        parsed.append((object_id, content))
    return parsed


@dataclass(frozen=True)
class PushRequest:
    branch: str
    force: bool
    commits: list[dict[str, Any]]
    snapshots: list[dict[str, Any]]


def push_request(body: dict[str, Any]) -> PushRequest:
    """`{bundle: {commits, snapshots, objects: []}, branch, force}`. Objects in the bundle are
    refused: a thin push uploads them first, each verified against its id."""
    bundle = body.get("bundle")
    if not isinstance(bundle, dict):
        raise BadRequest(f"bundle must be a map, not {_type(bundle)}")
    branch = body.get("branch")
    if problem := branch_name_problem(branch):
        raise BadRequest(f"branch: {problem}")
    force = body.get("force", False)
    if not isinstance(force, bool):
        raise BadRequest(f"force must be a boolean, not {_type(force)}")
    if bundle.get("objects"):
        raise BadRequest("bundle.objects must be empty: upload objects through /push/objects first")
    return PushRequest(branch, force, _maps(bundle, "commits"), _maps(bundle, "snapshots"))


def _maps(bundle: dict[str, Any], key: str) -> list[dict[str, Any]]:
    records = bundle.get(key, [])
    if not isinstance(records, list):
        raise BadRequest(f"bundle.{key} must be an array, not {_type(records)}")
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise BadRequest(f"bundle.{key}[{index}] must be a map, not {_type(record)}")
    return records


def presign_request(body: dict[str, Any]) -> list[str]:
    direction = body.get("direction", "put")
    if direction != "put":
        raise BadRequest(f"direction {_shown(direction)}: only 'put' is presigned")
    return id_list(body, "object_ids")


def _type(value: object) -> str:
    names = {dict: "map", list: "array", bytes: "bin", str: "string", type(None): "nil", bool: "boolean"}
    return names.get(type(value), type(value).__name__)


def _shown(value: object) -> str:
    return repr(value)[:80]


def one_line(error: Exception) -> str:
    """The first line of an error's message (its type's name when it has none): every answer
    the client prints is one line."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
