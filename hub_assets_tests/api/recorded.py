"""The real client's recorded requests (fixtures/mwp, README there), as the tests send them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import msgpack

from hub_assets_tests.conftest import FIXTURES_DIR

MWP = FIXTURES_DIR / "mwp"
TOKEN_PLACEHOLDER = "<token>"


@dataclass(frozen=True)
class Recorded:
    seq: int
    method: str
    path: str
    file: str | None
    headers: dict[str, str]

    @property
    def body(self) -> bytes | None:
        return (MWP / self.file).read_bytes() if self.file else None

    @property
    def content(self) -> Any:
        return msgpack.unpackb(self.body, raw=False) if self.file else None

    def headers_with(self, token: str) -> dict[str, str]:
        """The recorded headers, the placeholder replaced by a real token."""
        return {name: value.replace(TOKEN_PLACEHOLDER, token) for name, value in self.headers.items()}


def recorded_session() -> list[Recorded]:
    lines = (MWP / "index.jsonl").read_text().splitlines()
    return [Recorded(**json.loads(line)) for line in lines if line.strip()]


def recorded(seq: int) -> Recorded:
    (found,) = [r for r in recorded_session() if r.seq == seq]
    return found


def recorded_objects(seq: int) -> dict[str, bytes]:
    """object id -> bytes of a recorded /push/objects."""
    return {o["object_id"]: o["content"] for o in recorded(seq).content["objects"]}
