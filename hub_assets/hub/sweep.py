"""What killed pushes leave behind, finished or removed (see `hub/push.py` for the steps).

- An accepted push whose bytes were not published (killed after its commit point): its
  `pending_upload` is published to the upload prefix now, whatever its age. Publishing is
  write-once and idempotent, so racing the push that is still finishing it is harmless.
- Quarantine keys no accepted push names: removed once older than `grace`. A live push writes
  its quarantine key only after its bytes are validated and names it in the catalog a
  transaction later, so `grace` must exceed that gap.
- Partial writes under `quarantine/`: a file store drops those whose writer is dead (its lock is
  gone), whatever their age; S3 drops multipart uploads started before `grace`, which must then
  exceed the time a whole upload takes (a multipart upload counts from its start).
"""

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from ..store.layout import QUARANTINE
from .context import Hub
from .push import publish_upload

log = logging.getLogger(__name__)


@dataclass
class SweepReport:
    published: list[str] = field(default_factory=list)  # partition keys whose upload this sweep published
    discarded: list[str] = field(default_factory=list)  # quarantine keys removed
    partial_writes: int = 0  # unfinished writes dropped

    def __str__(self) -> str:
        return (
            f"published {len(self.published)} pending upload(s), removed {len(self.discarded)} quarantine key(s)"
            f" and {self.partial_writes} partial write(s)"
        )


def sweep(hub: Hub, grace: timedelta, now: datetime | None = None) -> SweepReport:
    """Publish the uploads of accepted pushes, then remove what refused or killed pushes left in
    quarantine for longer than `grace`."""
    cutoff = (now or datetime.now(UTC)) - grace
    report = SweepReport()
    named = set()
    for row in hub.catalog.pending_uploads():
        named.add(row.pending_upload)
        publish_upload(hub, row.repo_id, row.bundle_key, row.pending_upload)
        report.published.append(f"{row.repo_id}/{row.bundle_key}")
    for item in hub.store.list(QUARANTINE):
        if item.key not in named and item.last_modified < cutoff:
            hub.store.delete(item.key)
            report.discarded.append(item.key)
    report.partial_writes = hub.store.discard_partial_writes(QUARANTINE, cutoff)
    if report.published or report.discarded or report.partial_writes:
        log.info("push sweep: %s", report)
    return report
