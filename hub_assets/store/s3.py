"""The object store on S3 or any S3-compatible server: s3://bucket[/prefix]."""

import asyncio
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import IO, Any

import boto3
import obstore
from botocore.config import Config
from botocore.exceptions import ClientError
from dagster_aws.s3 import S3Resource
from obstore.exceptions import AlreadyExistsError, PreconditionError
from obstore.store import S3Store as ObstoreS3

from ..settings import s3_timeout_s
from .base import KeyWriter, ObjectNotFound, ObjectStore, StoredKey

_MISSING = {"NoSuchKey", "404", "NotFound"}
_TAKEN = ("PreconditionFailed", "412", "ConditionalRequestConflict", "409")
# Parts of a streamed write: S3's minimum part is 5 MiB (but the last); 16 MiB parts keep a
# 10 GB bundle within the 10,000-part limit, at 16 MiB of memory per writer.
PART_BYTES = 16 * 1024 * 1024


def s3_client(settings: S3Resource, max_connections: int) -> Any:
    """A boto3 client from the S3Resource's settings, with a connection pool sized for the
    puts in flight (S3Resource's own client is fixed at 10 connections). Endpoint, region
    and credentials left unset come from the standard AWS_* variables."""
    session = boto3.session.Session(profile_name=settings.profile_name)
    return session.client(
        "s3",
        region_name=settings.region_name,
        endpoint_url=settings.endpoint_url,
        use_ssl=settings.use_ssl,
        verify=settings.verify,
        aws_access_key_id=settings.aws_access_key_id,
        aws_secret_access_key=settings.aws_secret_access_key,
        aws_session_token=settings.aws_session_token,
        config=Config(
            max_pool_connections=max_connections,
            connect_timeout=s3_timeout_s(),
            read_timeout=s3_timeout_s(),
            retries={"max_attempts": settings.max_attempts, "mode": "standard"},
        ),
    )


def bulk_client(settings: S3Resource, bucket: str, prefix: str) -> ObstoreS3:
    """The client of the bulk put path. boto3 spends ~2 ms of CPU per PUT, so under the GIL
    of a 2-core machine 100 threads do no better than 6; obstore's Rust client keeps 100
    requests in flight for a fraction of that (benchmarks/RESULTS.md). Settings as boto3's:
    the S3Resource's fields, else the standard AWS_* variables."""
    endpoint = settings.endpoint_url or os.environ.get("AWS_ENDPOINT_URL")
    explicit = {
        "endpoint": endpoint,
        "region": settings.region_name or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
        "access_key_id": settings.aws_access_key_id,
        "secret_access_key": settings.aws_secret_access_key,
        "token": settings.aws_session_token,
    }
    return ObstoreS3(
        bucket,
        prefix=prefix.strip("/") or None,
        client_options={
            "allow_http": bool(endpoint and endpoint.startswith("http://")),
            "timeout": f"{s3_timeout_s()}s",
        },
        retry_config={"max_retries": settings.max_attempts, "retry_timeout": timedelta(seconds=120)},
        **{key: value for key, value in explicit.items() if value},
    )


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


class S3Store(ObjectStore):
    def __init__(self, bucket: str, prefix: str, client: Any, bulk: ObstoreS3) -> None:
        self.bucket = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self.url = f"s3://{bucket}" + (f"/{self.prefix.rstrip('/')}" if self.prefix else "")
        self._client = client
        self._bulk = bulk

    def put_many(self, items: Iterable[tuple[str, Callable[[], bytes]]], in_flight: int) -> int:
        """As ObjectStore.put_many, on one event loop: each conditional PUT (PutMode create,
        i.e. If-None-Match) that finds the key taken counts as not written."""

        pending = iter(items)

        # `in_flight` workers draining one iterator, not a task per object: 52k pending tasks
        # held ~100 MB at 10x the reference push.
        async def drain() -> int:
            written = 0
            for key, produce in pending:
                try:
                    await obstore.put_async(self._bulk, key, produce(), mode="create")
                except (AlreadyExistsError, PreconditionError):
                    continue
                written += 1
            return written

        async def put_all() -> int:
            return sum(await asyncio.gather(*(drain() for _ in range(max(1, in_flight)))))

        return asyncio.run(put_all())

    def presign_put(self, key: str, expires_in: timedelta) -> str:
        # Signed locally (SigV4 query string) by the client that holds the credentials: no request.
        return obstore.sign(self._bulk, "PUT", key, expires_in)

    def get_many(self, keys: Sequence[str], in_flight: int) -> dict[str, bytes]:
        """As ObjectStore.get_many, on one event loop like put_many: the reference push's 5,556
        objects (93 MB) from s3rver in 2.6 s, where boto3 on 100 threads took 6.5 s."""
        pending = iter(keys)
        contents: dict[str, bytes] = {}

        async def drain() -> None:
            for key in pending:
                try:
                    result = await obstore.get_async(self._bulk, key)
                except FileNotFoundError:  # how obstore reports a missing key
                    raise ObjectNotFound(key) from None
                contents[key] = bytes(await result.bytes_async())

        async def get_all() -> None:
            await asyncio.gather(*(drain() for _ in range(max(1, min(in_flight, len(keys))))))

        asyncio.run(get_all())
        return {key: contents[key] for key in keys}

    def put(self, key: str, data: bytes) -> bool:
        try:
            # If-None-Match makes the write-once check part of the PUT itself: one request,
            # and no window between a check and a write.
            self._client.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=data, IfNoneMatch="*")
        except ClientError as error:
            if _code(error) in _TAKEN:
                return False
            raise
        return True

    def open(self, key: str) -> IO[bytes]:
        try:
            return self._client.get_object(Bucket=self.bucket, Key=self.prefix + key)["Body"]
        except ClientError as error:
            if _code(error) in _MISSING:
                raise ObjectNotFound(key) from None
            raise

    def exists(self, key: str) -> bool:
        try:
            self._client.head_object(Bucket=self.bucket, Key=self.prefix + key)
        except ClientError as error:
            if _code(error) in _MISSING:
                return False
            raise
        return True

    def list(self, prefix: str, start_after: str | None = None) -> Iterator[StoredKey]:
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix + prefix, StartAfter=self.prefix + (start_after or "")
        )
        for page in pages:
            for item in page.get("Contents", []):
                yield StoredKey(item["Key"][len(self.prefix) :], item["Size"], item["LastModified"])

    def writer(self, key: str) -> KeyWriter:
        return _S3Writer(self._client, self.bucket, self.prefix, key)

    def publish(self, source: str, key: str) -> bool:
        """A server-side copy. If-None-Match makes it write-once where the server supports it on
        CopyObject (AWS does; moto 5.2 and s3rver ignore it), so the key is looked up first too:
        between the two a racing publisher may copy as well, which is harmless for the keys this
        is used for, named by the sha256 of their bytes."""
        if self.exists(key):
            return False
        try:
            self._client.copy_object(
                Bucket=self.bucket,
                Key=self.prefix + key,
                CopySource={"Bucket": self.bucket, "Key": self.prefix + source},
                IfNoneMatch="*",
            )
        except ClientError as error:
            if _code(error) in _TAKEN:
                return False
            if _code(error) in _MISSING:
                raise ObjectNotFound(source) from None
            raise
        return True

    def delete(self, key: str) -> None:
        self._client.delete_object(Bucket=self.bucket, Key=self.prefix + key)

    def discard_partial_writes(self, prefix: str, older_than: datetime) -> int:
        """Multipart uploads under `prefix` started before `older_than` and never completed."""
        discarded = 0
        pages = self._client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=self.prefix + prefix
        )
        for page in pages:
            for upload in page.get("Uploads", []):
                if upload["Initiated"] < older_than:
                    self._client.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
                    discarded += 1
        return discarded

    def close(self) -> None:
        self._client.close()


class _S3Writer(KeyWriter):
    """One PutObject when the bytes fit in a part, else a multipart upload of PART_BYTES parts,
    which S3 shows under the key only once it is completed."""

    def __init__(self, client: Any, bucket: str, prefix: str, key: str) -> None:
        self.key = key
        self._client = client
        self._target = {"Bucket": bucket, "Key": prefix + key}
        # What is written, as the chunks written (bytes), joined only to make a part or the
        # body: a body written in one chunk is sent as it is, not copied.
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []

    def write(self, data: bytes) -> None:
        chunk = data if type(data) is bytes else bytes(data)  # a caller's buffer may be reused
        self._pending.append(chunk)
        self._pending_bytes += len(chunk)
        if self._pending_bytes < PART_BYTES:
            return
        pending = b"".join(self._pending)
        whole = len(pending) - len(pending) % PART_BYTES
        for start in range(0, whole, PART_BYTES):
            self._upload_part(pending[start : start + PART_BYTES])
        self._pending = [pending[whole:]] if whole < len(pending) else []
        self._pending_bytes = len(pending) - whole

    def _upload_part(self, part: bytes) -> None:
        if self._upload_id is None:
            self._upload_id = self._client.create_multipart_upload(**self._target)["UploadId"]
        number = len(self._parts) + 1
        answer = self._client.upload_part(Body=part, PartNumber=number, UploadId=self._upload_id, **self._target)
        self._parts.append({"PartNumber": number, "ETag": answer["ETag"]})

    def commit(self) -> None:
        body = b"".join(self._pending)
        self._pending, self._pending_bytes = [], 0
        if self._upload_id is None:
            self._client.put_object(Body=body, **self._target)
        else:
            if body:
                self._upload_part(body)
            self._client.complete_multipart_upload(
                UploadId=self._upload_id, MultipartUpload={"Parts": self._parts}, **self._target
            )
            self._upload_id = None

    def abort(self) -> None:
        self._pending, self._pending_bytes = [], 0
        if self._upload_id is not None:
            upload_id, self._upload_id = self._upload_id, None
            self._client.abort_multipart_upload(UploadId=upload_id, **self._target)
