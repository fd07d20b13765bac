"""Push (SPEC §6): the bundle is validated whole, by the decoder the index runs and with the
catalog's view of the repo, before anything of it is visible. Then one transaction moves the
branch by compare-and-swap, makes a small bundle's objects fetchable and records the bundle; only
then do its bytes appear under the upload prefix, where the sensor picks them up.

Where the bytes of a push are, and what a kill (SIGKILL, a lost machine) at each step leaves:

1. Validate: the stream goes through the decoder into a partial write of
   `quarantine/<repo>/<random>`, then that key is committed. Killed here: nothing visible; `sweep`
   discards the partial write or quarantine key once it is older than the grace period.
   A bundle of at most `inline_bundle_max_bytes` is held in memory, and its quarantine key is
   committed on a thread while step 2 runs; the transaction waits for it before committing.
2. The commit point, `Catalog.accept_push` (one transaction): branch moved, inline rows, bundle row
   `pushed` with `pending_upload` = the quarantine key. Killed after it: an accepted push whose
   upload is not published yet, which `sweep` publishes.
3. Publish: the bytes under `uploads/<repo>/<bundle_key>` (write-once link or copy), then at
   once `pending_upload` cleared and the quarantine key removed. Killed here: as after 2 (a
   sweep that finds the quarantine key gone finds the upload). A hub with a `publisher` (the
   HTTP API's) returns from the push at the commit point and publishes on the publisher's
   thread: the pusher does not wait for what only the index needs.

The other order (upload first, then the transaction) would let the sensor index a push that then
loses its compare-and-swap, and a kill between the two would leave an upload no branch names.
A thin push (`hub/thin_push.py`) writes its own bundle to quarantine, then takes steps 2 and 3
through the same `accept_landed`.
"""

import io
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from functools import partial
from typing import IO, TypeVar

from ..bundle import Bundle, BundleError, decode_bundle
from ..bundle.identity import branch_name_problem, is_hex_id, is_repo_id
from ..catalog import AcceptedPush
from ..store import KeyWriter, ObjectNotFound, partition_key, quarantine_key, refused_key, upload_key
from .context import BranchConflict, BundleRefused, Hub, HubError, NotFastForward
from .heads import choose_head, descends_from

log = logging.getLogger(__name__)

Accepted = TypeVar("Accepted")


@dataclass(frozen=True)
class PushResult:
    repo_id: str
    branch: str
    bundle_key: str
    partition_key: str
    head_commit_id: str
    inline_objects: int


def check_names(repo_id: str, branch: str | None = None) -> None:
    if not is_repo_id(repo_id):
        raise HubError(f"repo id {repo_id[:140]!r} must be 1-128 of [A-Za-z0-9._-] without '..'")
    if branch is not None and (problem := branch_name_problem(branch)):
        raise HubError(f"{problem}: {branch[:80]!r}")


def push(
    hub: Hub,
    repo_id: str,
    branch: str,
    bundle: IO[bytes] | bytes | None = None,
    *,
    bundle_key: str | None = None,
    head_commit_id: str | None = None,
    expected_old_head: str | None = None,
    force: bool = False,
) -> PushResult:
    """Push a bundle to `branch` of `repo_id`; what the CLI and the HTTP API call.

    - `bundle`: the wire bytes, as a binary stream read once to its end in 1 MiB reads (a file,
      a request body) or as bytes. None: push the bytes already uploaded under
      `uploads/<repo_id>/<bundle_key>`.
    - `bundle_key`: when given with bytes, their sha256 must equal it.
    - `head_commit_id`: the commit the branch moves to. None: the bundle's
      `branch_heads[branch]`, else the one tip of its commit graph. It must be a commit of the
      bundle or of the repo's catalog.
    - `expected_old_head`: the compare-and-swap: the branch must still point at it (None: the
      branch must not exist yet), and the head must descend from it. `force`: neither.

    Every rule of SPEC §3 is checked first, at any size, in memory bounded by the decoded
    bundle without its objects' bytes. On any refusal nothing is visible: no branch move, no
    rows, no bundle row, no upload for the sensor. A bundle of at most
    `hub.inline_bundle_max_bytes` also gets its objects of at most
    `hub.inline_object_max_bytes` registered inline, fetchable when this returns.

    Raises BundleRefused (the bundle breaks a rule: bundle, record and reason), NotFastForward,
    BranchConflict (the branch is not at `expected_old_head`, or moved meanwhile: exactly one
    of racing pushes wins), HubError (bad names, unknown head, no such upload).
    """
    check_names(repo_id, branch)
    for what, value in (("head commit id", head_commit_id), ("bundle key", bundle_key)):
        if value is not None and not is_hex_id(value):
            raise HubError(f"{what} {value[:80]!r} must be 64 lowercase hex characters")
    accept = partial(
        _accept, hub, repo_id, branch, head=head_commit_id, expected_old_head=expected_old_head, force=force
    )
    if bundle is None:
        if bundle_key is None:
            raise HubError("push needs the bundle bytes or the 64-hex key of an upload")
        return _push_uploaded(hub, repo_id, bundle_key, accept)
    source = io.BytesIO(bundle) if isinstance(bundle, bytes) else bundle
    landing = hub.store.writer(quarantine_key(repo_id))
    with landing, ThreadPoolExecutor(max_workers=1, thread_name_prefix="branch-check") as pool:
        # Beside the reading (a query's round trips, 1-2 ms of a 40 ms push): a push the
        # compare-and-swap must refuse is refused as such whatever its bytes hold, and a large
        # one before they are read past the inline limit. (While both run, a push holds two of
        # the catalog pool's connections.)
        checked = None if force else pool.submit(_check_branch_at, hub, repo_id, branch, expected_old_head)
        read = _read_small(_Tee(source, landing.write), hub.inline_bundle_max_bytes)
        small = isinstance(read, bytes)
        if checked is not None and not small:
            checked.result()
        try:
            decoded = _validate(hub, repo_id, read, bundle_key)
        finally:
            if checked is not None:
                checked.result()
    if small:
        return _accept_small(hub, repo_id, decoded, landing, accept)
    landing.commit()
    return accept_landed(
        hub, repo_id, decoded.bundle_key, landing.key, lambda pending: accept(decoded, False, pending_upload=pending)
    )


def _accept_small(
    hub: Hub, repo_id: str, decoded: Bundle, landing: KeyWriter, accept: partial[PushResult]
) -> PushResult:
    """Steps 2 and 3 for a bundle held in memory, its quarantine write committed on a thread of
    its own meanwhile: the commit point's transaction waits for it before committing, so the
    key it names holds the bytes whenever the push is accepted (S3: the PUT of a few MB takes
    about as long as the transaction, which now runs alongside)."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="landing") as pool:
        committing = pool.submit(landing.commit)

        def accept_after_landing(pending: str) -> PushResult:
            try:
                return accept(decoded, True, pending_upload=pending, before_commit=committing.result)
            except BaseException:
                wait([committing])  # a refused push's key is removed only once it is written
                landing.abort()
                raise

        return accept_landed(hub, repo_id, decoded.bundle_key, landing.key, accept_after_landing)


def accept_landed(
    hub: Hub,
    repo_id: str,
    bundle_key: str,
    landed: str,
    accept: Callable[[str], Accepted],
) -> Accepted:
    """Steps 2 and 3 for bytes committed under the quarantine key `landed`: the commit point
    (`accept`, handed `landed` as the pending upload), then publishing. Refused at the commit
    point, the push leaves nothing: its quarantine key goes too."""
    try:
        result = accept(landed)
    except BaseException:
        hub.store.delete(landed)
        raise
    if hub.publisher is None:
        _publish_or_leave_to_sweep(hub, repo_id, bundle_key, landed)
    else:
        hub.publisher.submit(_publish_or_leave_to_sweep, hub, repo_id, bundle_key, landed)
    return result


def _publish_or_leave_to_sweep(hub: Hub, repo_id: str, bundle_key: str, landed: str) -> None:
    try:
        publish_upload(hub, repo_id, bundle_key, landed)
    except Exception:
        # Past the commit point the push stands; what is left of publishing, `sweep` finishes.
        log.exception(
            "push %s accepted; its upload is left for the sweep to publish", partition_key(repo_id, bundle_key)
        )


def _push_uploaded(hub: Hub, repo_id: str, bundle_key: str, accept: partial[PushResult]) -> PushResult:
    """Bytes already in the upload prefix: validated there. Refused for any reason (a rule of
    SPEC §3, an unknown head, not a fast-forward, a lost compare-and-swap), they move to
    `refused/`, out of the sensor's sight (a sensor tick that saw them first runs an index that
    fails alike, or indexes history no branch names)."""
    key = partition_key(repo_id, bundle_key)
    try:
        stream = hub.store.open(upload_key(key))
    except ObjectNotFound:
        raise HubError(f"no upload at {upload_key(key)}") from None
    try:
        with stream:
            read = _read_small(stream, hub.inline_bundle_max_bytes)
            decoded = _validate(hub, repo_id, read, bundle_key)
        return accept(decoded, isinstance(read, bytes), pending_upload=None)
    except HubError:
        hub.store.publish(upload_key(key), refused_key(key))
        hub.store.delete(upload_key(key))
        raise


def _validate(hub: Hub, repo_id: str, read: IO[bytes] | bytes, bundle_key: str | None) -> Bundle:
    """The decoded bundle (`read`: `_read_small`'s answer): a small one, in memory, with its
    objects' content, to register them inline; a large one, a stream, without."""
    try:
        decoded = decode_bundle(
            read,
            bundle_key=bundle_key,
            # Named by the key the pusher gave, else by the hash of what arrived.
            name=partition_key(repo_id, bundle_key) if bundle_key else partial(partition_key, repo_id),
            limits=hub.limits,
            catalog=hub.catalog.view(repo_id),
            object_content=isinstance(read, bytes),
        )
    except BundleError as error:
        raise BundleRefused(str(error)) from None
    return decoded


def _accept(
    hub: Hub,
    repo_id: str,
    branch: str,
    decoded: Bundle,
    small: bool,
    *,
    head: str | None,
    expected_old_head: str | None,
    force: bool,
    pending_upload: str | None,
    before_commit: Callable[[], None] = lambda: None,
) -> PushResult:
    """The head checks, then the commit point (`before_commit`: see Catalog.accept_push)."""
    commits = decoded.commits
    pushed = partition_key(repo_id, decoded.bundle_key)
    try:
        head = choose_head(commits, decoded.branch_heads, branch, head)
    except HubError as error:
        raise HubError(f"bundle {pushed}: {error}") from None
    if all(c.commit_id != head for c in commits) and head not in hub.catalog.known_commits(repo_id, [head]):
        raise HubError(f"bundle {pushed}: head {head} is a commit of neither the bundle nor repo {repo_id}")
    if (
        expected_old_head is not None
        and not force
        and not descends_from(hub, repo_id, commits, head, expected_old_head)
    ):
        raise NotFastForward(
            f"bundle {pushed}: {head} does not descend from the head of {branch!r}, {expected_old_head}"
            " (force moves the branch anyway)"
        )
    inline = [o for o in decoded.objects if small and o.size_bytes <= hub.inline_object_max_bytes]
    accepted = AcceptedPush(
        repo_id=repo_id,
        branch=branch,
        head=head,
        expected_old_head=expected_old_head,
        force=force,
        bundle_key=decoded.bundle_key,
        size_bytes=decoded.size_bytes,
        inline_objects=inline,
        pending_upload=pending_upload,
    )
    if not hub.catalog.accept_push(accepted, before_commit):
        _check_branch_at(hub, repo_id, branch, expected_old_head)
        raise BranchConflict(f"branch {branch!r} of {repo_id} moved while the push was validated")
    return PushResult(repo_id, branch, decoded.bundle_key, pushed, head, len(inline))


def _check_branch_at(hub: Hub, repo_id: str, branch: str, expected: str | None) -> None:
    current = hub.catalog.branch_head(repo_id, branch)
    if current != expected:
        raise BranchConflict(
            f"branch {branch!r} of {repo_id} is at {current or 'nothing'}, not {expected or 'nothing'}"
        )


def publish_upload(hub: Hub, repo_id: str, bundle_key: str, pending: str) -> None:
    """An accepted push's bytes, from `pending` to the upload prefix (write-once), then `pending`
    removed while the catalog stops naming it. Safe
    to run twice and concurrently: by the push and by a sweep, and in any order once published
    (a sweep that finds `pending` gone finds the upload)."""
    upload = upload_key(partition_key(repo_id, bundle_key))
    try:
        hub.store.publish(pending, upload)
    except ObjectNotFound:
        if not hub.store.exists(upload):
            raise
        # Another publisher (a sweep) got there first and removed `pending`.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="unlanding") as pool:
        removed = pool.submit(hub.store.delete, pending)
        hub.catalog.upload_published(repo_id, bundle_key)
        removed.result()


def _read_small(stream: IO[bytes], limit: int) -> IO[bytes] | bytes:
    """All the stream's bytes if it holds at most `limit`, else a stream of all its bytes. Reads
    at most `limit` + 1 bytes ahead, so a stream of unknown length is told apart too. Bytes
    read whole in one read (pushed as bytes, or a short file) are not copied: joining one chunk
    gives it back (3 ms of a 2.8 MB push were two copies)."""
    chunks: list[bytes] = []
    size = 0
    while size <= limit and (chunk := stream.read(limit + 1 - size)):
        chunks.append(chunk)
        size += len(chunk)
    head = b"".join(chunks)
    return head if size <= limit else _Chained(head, stream)


class _Chained(io.RawIOBase):
    """`first`, then the rest of `rest`."""

    def __init__(self, first: bytes, rest: IO[bytes]) -> None:
        self._first = io.BytesIO(first)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            return self._first.read() + self._rest.read()
        return self._first.read(size) or self._rest.read(size)


class _Tee(io.RawIOBase):
    """A stream that hands every byte read through it to `sink` too."""

    def __init__(self, source: IO[bytes], sink: Callable[[bytes], None]) -> None:
        self._source = source
        self._sink = sink

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        self._sink(data)
        return data
