"""Objects uploaded on their own, before the thin push that names them: each checked against its id."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from hub_assets.catalog import schema
from hub_assets.hub import Hub, HubError, upload_objects
from hub_assets.store import object_key

from ..bundle.builders import sha256_hex
from .helpers import object_rows

REPO = "repo-a"


def test_upload_objects_refuses_bytes_not_matching_their_id(hub: Hub) -> None:
    good, bad = b"good\n", b"bad\n"
    claimed = sha256_hex(b"something else")
    with pytest.raises(HubError, match="bytes do not hash to its id"):
        upload_objects(hub, REPO, [(sha256_hex(good), good), (claimed, bad)])
    # Nothing of the batch is stored or registered, not even the honest object.
    ids = [sha256_hex(good), claimed]
    assert object_rows(hub, ids) == {}
    assert not any(hub.store.exists(object_key(i)) for i in ids)
    with hub.catalog.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.object_refs)).scalar_one() == 0
