"""S3-compatible object storage (AWS S3, SeaweedFS, MinIO, Ceph...) through boto3.

boto3 is chosen over obstore for the credential chain users already rely on (env vars,
profiles, SSO, instance roles, `AWS_ENDPOINT_URL`) and botocore's standard retry mode,
which retries 500/503/SlowDown, timeouts and dropped connections with backoff.
Conditional writes map to `IfNoneMatch='*'` and `IfMatch=<etag>` on PutObject.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import botocore.exceptions
from botocore.config import Config

from debops_ci.errors import StorageError
from debops_ci.storage.base import (
    Blob,
    Capabilities,
    DeferredWrite,
    NotFound,
    ObjectInfo,
    OperationObserver,
    PreconditionFailed,
    S3Tuning,
    Staged,
    content_type_for,
    describe_condition,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_PRECONDITION_CODES = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}
_NOT_FOUND_CODES = {"NoSuchKey", "404", "NotFound"}
# Failures while reading a GET's body, after botocore's own retries are over.
_BODY_ERRORS = (
    botocore.exceptions.ResponseStreamingError,
    botocore.exceptions.IncompleteReadError,
    botocore.exceptions.ReadTimeoutError,
)


class S3Store:
    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        profile: str | None = None,
        observer: OperationObserver | None = None,
        tuning: S3Tuning | None = None,
    ) -> None:
        tuning = tuning or S3Tuning()
        max_attempts = tuning.max_attempts
        connect_timeout, read_timeout = tuning.connect_timeout, tuning.read_timeout
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.endpoint_url = endpoint_url
        self._observer = observer
        self._max_attempts = max_attempts
        config = Config(
            # total_max_attempts counts the first try; botocore's max_attempts would not.
            retries={"total_max_attempts": max_attempts, "mode": "standard"},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_pool_connections=32,
            # Path-style works with every S3-compatible server; virtual-host style
            # needs wildcard DNS that local servers do not have.
            s3={"addressing_style": "path" if self.endpoint_url else "auto"},
            # Checksums on every request cost a pass over each .deb; S3 already
            # checks Content-MD5-free uploads by the TLS layer and we verify hashes.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        try:
            session = boto3.session.Session(profile_name=profile, region_name=region)
        except botocore.exceptions.ProfileNotFound:
            raise StorageError(f"AWS profile {profile!r} not found: check AWS_PROFILE") from None
        self.region = session.region_name or "us-east-1"
        self._client: S3Client = session.client(
            "s3", endpoint_url=self.endpoint_url, region_name=self.region, config=config
        )

    # -- naming -----------------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(probe_conditional_writes=True)

    def exists(self) -> bool:
        return self.bucket_exists()

    def prepare_writes(self) -> None:
        """Nothing to create: the bucket must exist (a write then says so if not)."""

    def describe(self) -> str:
        where = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        return f"{where} at {self.endpoint_url}" if self.endpoint_url else where

    def public_url(self) -> str | None:
        if self.endpoint_url:
            return f"{self.endpoint_url.rstrip('/')}/{self.bucket}/{self.prefix}".rstrip("/")
        return f"https://{self.bucket}.s3.{self.region}.amazonaws.com/{self.prefix}".rstrip("/")

    def _key(self, key: str) -> str:
        return self.prefix + key

    def _note(self, verb: str, key: str, detail: str = "") -> None:
        if self._observer is not None:
            self._observer(verb, key, detail)

    # -- error mapping ----------------------------------------------------------

    def _error(self, exc: Exception, action: str, key: str) -> Exception:
        """Turn a botocore failure into one actionable line, never echoing credentials."""
        if isinstance(exc, botocore.exceptions.NoCredentialsError):
            return StorageError(
                "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                "(or AWS_PROFILE)"
            )
        if isinstance(exc, botocore.exceptions.EndpointConnectionError | ConnectionError):
            return StorageError(
                f"cannot reach the S3 endpoint {self.endpoint_url or 'of AWS'}: "
                "check --endpoint-url / AWS_ENDPOINT_URL and the network"
            )
        if isinstance(exc, botocore.exceptions.ClientError):
            err = exc.response.get("Error", {})
            code = str(err.get("Code", ""))
            status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
            if code in _PRECONDITION_CODES or status == "412":
                return PreconditionFailed(f"{key}: precondition failed")
            if code in _NOT_FOUND_CODES:
                return NotFound(f"{key} not found in s3://{self.bucket}")
            if code == "NoSuchBucket":
                return StorageError(
                    f"bucket {self.bucket!r} does not exist at {self.endpoint_url or 'AWS'}: "
                    "create it or check --archive/--bucket-name"
                )
            if code in {"InvalidAccessKeyId", "SignatureDoesNotMatch"}:
                return StorageError(
                    f"the S3 server rejected the credentials ({code}): check "
                    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
                )
            if code in {"AccessDenied", "403", "Forbidden"}:
                return StorageError(
                    f"access denied to {action} s3://{self.bucket}/{self._key(key)}: "
                    "check the credentials' permissions"
                )
            return StorageError(
                f"S3 {action} of {self._key(key)} failed: {code or status} "
                f"{err.get('Message', '')}".rstrip()
            )
        if isinstance(exc, botocore.exceptions.BotoCoreError):
            return StorageError(f"S3 {action} of {self._key(key)} failed: {type(exc).__name__}")
        return exc

    # -- operations -------------------------------------------------------------

    def get(self, key: str) -> Blob:
        self._note("GET", key)
        # botocore retries a request until its answer's headers arrive; a body cut short
        # or stalled after that is only seen while reading it, so fetch it again here.
        for attempt in range(1, self._max_attempts + 1):
            try:
                resp = self._client.get_object(Bucket=self.bucket, Key=self._key(key))
            except Exception as exc:
                raise self._error(exc, "read", key) from None
            try:
                return Blob(resp["Body"].read(), resp["ETag"])
            except _BODY_ERRORS as exc:
                if attempt == self._max_attempts:
                    raise self._error(exc, "read", key) from None
                time.sleep(min(0.1 * 2**attempt, 2.0) * random.random())
        raise AssertionError("unreachable")

    def head(self, key: str) -> ObjectInfo | None:
        self._note("HEAD", key)
        try:
            resp = self._client.head_object(Bucket=self.bucket, Key=self._key(key))
        except botocore.exceptions.ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status == 404:
                return None
            raise self._error(exc, "inspect", key) from None
        except Exception as exc:
            raise self._error(exc, "inspect", key) from None
        return ObjectInfo(
            key,
            resp["ContentLength"],
            resp["ETag"],
            resp["LastModified"].timestamp(),
            dict(resp.get("Metadata", {})),
        )

    def _put(
        self,
        key: str,
        body: Any,
        create_only: bool,
        if_match: str | None,
        content_type: str | None,
        metadata: dict[str, str] | None,
    ) -> str:
        args: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": self._key(key),
            "Body": body,
            "ContentType": content_type or content_type_for(key),
        }
        if create_only:
            args["IfNoneMatch"] = "*"
        if if_match is not None:
            args["IfMatch"] = if_match
        if metadata:
            args["Metadata"] = metadata
        try:
            resp = self._client.put_object(**args)
        except Exception as exc:
            raise self._error(exc, "write", key) from None
        return resp["ETag"]

    def put(
        self,
        key: str,
        data: bytes,
        *,
        create_only: bool = False,
        if_match: str | None = None,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> str:
        self._note("PUT", key, describe_condition(create_only, if_match))
        return self._put(key, data, create_only, if_match, content_type, metadata)

    def put_file(
        self,
        key: str,
        path: Path,
        *,
        create_only: bool = False,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> str:
        self._note("PUT", key, describe_condition(create_only, None))
        with open(path, "rb") as fh:
            return self._put(key, fh, create_only, None, content_type, metadata)

    def stage(self, key: str, data: bytes | None = None, *, copy_of: str | None = None) -> Staged:
        return DeferredWrite(self, key, data, copy_of)

    def copy(self, source: str, target: str) -> str:
        self._note("COPY", target, f"from {source}")
        try:
            resp = self._client.copy_object(
                Bucket=self.bucket,
                Key=self._key(target),
                CopySource={"Bucket": self.bucket, "Key": self._key(source)},
                ContentType=content_type_for(target),
                MetadataDirective="REPLACE",
            )
        except Exception as exc:
            raise self._error(exc, "copy", target) from None
        return resp["CopyObjectResult"].get("ETag", "")

    def delete(self, key: str) -> None:
        self._note("DELETE", key)
        try:
            self._client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:
            error = self._error(exc, "delete", key)
            if not isinstance(error, NotFound):
                raise error from None

    def list_objects(self, prefix: str) -> Iterator[ObjectInfo]:
        self._note("LIST", prefix)
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
                for item in page.get("Contents", []):
                    yield ObjectInfo(
                        item["Key"][len(self.prefix) :],
                        item["Size"],
                        item["ETag"],
                        item["LastModified"].timestamp(),
                        {},
                    )
        except Exception as exc:
            raise self._error(exc, "list", prefix) from None

    def list_dirs(self, prefix: str) -> list[str]:
        self._note("LIST", prefix, "directories")
        paginator = self._client.get_paginator("list_objects_v2")
        found: list[str] = []
        full = self._key(prefix)
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full, Delimiter="/"):
                for item in page.get("CommonPrefixes", []):
                    found.append(item["Prefix"][len(full) :].rstrip("/"))
        except Exception as exc:
            raise self._error(exc, "list", prefix) from None
        return sorted(found)

    def bucket_exists(self) -> bool:
        self._note("HEAD", "", "bucket")
        try:
            self._client.head_bucket(Bucket=self.bucket)
            return True
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return False
            raise self._error(exc, "inspect bucket", "") from None
        except Exception as exc:
            raise self._error(exc, "inspect bucket", "") from None
