"""``S3Store``: objects in an S3-compatible bucket (AWS, MinIO, Ceph) via boto3 (``[s3]``)."""

from __future__ import annotations

from typing import Any

from sketch2face.errors import ConfigError
from sketch2face.storage.base import ObjectNotFoundError, StorageError, check_key

_MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound"})


class S3Store:
    """Store under ``s3://bucket/prefix``; one PUT is atomic on S3, so no temp objects."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        client: Any | None = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        if client is None:
            try:
                import boto3
                from botocore.config import Config
            except ModuleNotFoundError as exc:
                raise ConfigError(
                    "S3 storage needs boto3; install it with `pip install 'sketch2face[s3]'`."
                ) from exc
            client = boto3.client(
                "s3",
                endpoint_url=endpoint_url or None,
                region_name=region or None,
                aws_access_key_id=access_key_id or None,
                aws_secret_access_key=secret_access_key or None,
                config=Config(retries={"max_attempts": 3, "mode": "standard"}),
            )
        self._client = client

    def _key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _error(self, action: str, key: str, exc: Exception) -> StorageError:
        return StorageError(
            f"S3 {action} of {key!r} in {self.url} failed: {exc}; check the bucket, endpoint "
            "(SKETCH2FACE_S3_ENDPOINT_URL) and credentials."
        )

    def put(self, key: str, data: bytes, *, content_type: str = "application/octet-stream") -> None:
        """Upload ``data`` in one PUT."""
        full_key = self._key(key)
        try:
            self._client.put_object(
                Bucket=self.bucket, Key=full_key, Body=data, ContentType=content_type
            )
        except Exception as exc:  # botocore raises many unrelated classes; wrap them all
            raise self._error("put", key, exc) from exc

    def get(self, key: str) -> bytes:
        """Download the object's bytes."""
        from botocore.exceptions import ClientError

        full_key = self._key(key)
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=full_key)
            return bytes(response["Body"].read())
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING_CODES:
                raise ObjectNotFoundError(f"no object {key!r} in {self.url}") from exc
            raise self._error("get", key, exc) from exc
        except Exception as exc:
            raise self._error("get", key, exc) from exc

    def delete(self, key: str) -> None:
        """Delete the object (S3 treats a missing key as success)."""
        full_key = self._key(key)
        try:
            self._client.delete_object(Bucket=self.bucket, Key=full_key)
        except Exception as exc:
            raise self._error("delete", key, exc) from exc

    def exists(self, key: str) -> bool:
        """HEAD the object."""
        from botocore.exceptions import ClientError

        full_key = self._key(key)
        try:
            self._client.head_object(Bucket=self.bucket, Key=full_key)
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING_CODES:
                return False
            raise self._error("head", key, exc) from exc
        except Exception as exc:
            raise self._error("head", key, exc) from exc

    def __repr__(self) -> str:
        return f"S3Store({self.url!r})"
