"""The object store on S3 or any S3-compatible server: s3://bucket[/prefix]."""

from collections.abc import Iterator
from typing import IO, Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from dagster_aws.s3 import S3Resource

from .base import ObjectNotFound, ObjectStore, StoredKey

_MISSING = {"NoSuchKey", "404", "NotFound"}


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
            retries={"max_attempts": settings.max_attempts, "mode": "standard"},
        ),
    )


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


class S3Store(ObjectStore):
    def __init__(self, bucket: str, prefix: str, client: Any) -> None:
        self.bucket = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self.url = f"s3://{bucket}" + (f"/{self.prefix.rstrip('/')}" if self.prefix else "")
        self._client = client

    def put(self, key: str, data: bytes) -> bool:
        try:
            # If-None-Match makes the write-once check part of the PUT itself: one request,
            # and no window between a check and a write.
            self._client.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=data, IfNoneMatch="*")
        except ClientError as error:
            if _code(error) in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
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

    def close(self) -> None:
        self._client.close()
