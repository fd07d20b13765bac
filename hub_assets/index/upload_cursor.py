"""Which uploads a sensor tick has not seen yet. Pure: a listing and a cursor in, a plan out.

Listing order and S3's one-second LastModified make "after key K" or "after time T" cursors
lose uploads (shared notes, §2). So every tick looks back a window behind the newest
upload seen, and the cursor remembers the keys inside that window to skip them again.
"""

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..store import StoredKey, split_partition_key
from ..store.layout import UPLOADS

LOOKBACK = timedelta(minutes=5)


@dataclass(frozen=True)
class UploadCursor:
    watermark: datetime | None = None
    recent: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, text: str | None) -> "UploadCursor":
        if not text:
            return cls()
        data = json.loads(text)
        watermark = datetime.fromisoformat(data["watermark"]) if data["watermark"] else None
        return cls(watermark, frozenset(data["recent"]))

    def dump(self) -> str:
        watermark = self.watermark.isoformat() if self.watermark else None
        return json.dumps({"watermark": watermark, "recent": sorted(self.recent)})


@dataclass(frozen=True)
class UploadPlan:
    partition_keys: list[str]
    rejected_keys: list[str]
    cursor: UploadCursor


def plan_uploads(listing: Iterable[StoredKey], cursor: UploadCursor, lookback: timedelta = LOOKBACK) -> UploadPlan:
    """New partition keys, oldest upload first, and upload keys that are not `<repo_id>/<64 hex>`."""
    floor = cursor.watermark - lookback if cursor.watermark else None
    window = [item for item in listing if floor is None or item.last_modified >= floor]
    fresh = sorted((item for item in window if item.key not in cursor.recent), key=lambda i: (i.last_modified, i.key))
    partition_keys, rejected = [], []
    for item in fresh:
        key = item.key.removeprefix(UPLOADS)
        if split_partition_key(key):
            partition_keys.append(key)
        else:
            rejected.append(item.key)
    watermark = max((item.last_modified for item in window), default=cursor.watermark)
    new_floor = watermark - lookback if watermark else None
    recent = frozenset(item.key for item in window if new_floor is None or item.last_modified >= new_floor)
    return UploadPlan(partition_keys, rejected, UploadCursor(watermark, recent))
