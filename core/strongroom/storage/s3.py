"""S3 specifics: reading a bucket's object lock configuration.

Object lock is a property of the bucket, set when it is created (it also turns
versioning on) and completed by an optional default retention (COMPLIANCE or
GOVERNANCE, for some days or years) that every new object version gets.  The vault
reads it with ``GetObjectLockConfiguration``; a bucket without object lock answers
with the error ``ObjectLockConfigurationNotFoundError``, which means "none" here.
Any other failure (no permission to read the configuration, for example) raises
:class:`~strongroom.errors.StorageError`: whether objects are protected must not be
guessed.

Only the bucket-level facts are read.  Per-object retention and legal holds are set
by whoever writes an object; they are not part of this report.
"""

from __future__ import annotations

from typing import Any

from ..errors import StorageError
from .base import map_error
from .capabilities import ObjectLock

__all__ = ["bucket_object_lock", "parse_object_lock", "root_object_lock"]

_NOT_CONFIGURED = "ObjectLockConfigurationNotFound"


def parse_object_lock(answer: dict[str, Any]) -> ObjectLock:
    """An :class:`ObjectLock` from a ``GetObjectLockConfiguration`` answer."""
    config = answer.get("ObjectLockConfiguration") or {}
    enabled = config.get("ObjectLockEnabled") == "Enabled"
    retention = (config.get("Rule") or {}).get("DefaultRetention") or {}
    mode = retention.get("Mode")
    return ObjectLock(
        enabled=enabled,
        mode=mode if enabled and mode in ("COMPLIANCE", "GOVERNANCE") else None,
        days=(retention.get("Days") or None) if enabled else None,  # some servers send 0 for "unset"
        years=(retention.get("Years") or None) if enabled else None,
    )


def _not_configured(exc: BaseException) -> bool:
    while exc is not None:
        if _NOT_CONFIGURED in str(exc) or _NOT_CONFIGURED in type(exc).__name__:
            return True
        exc = exc.__cause__ or exc.__context__  # s3fs wraps botocore's ClientError
    return False


def bucket_object_lock(fs: Any, bucket: str) -> ObjectLock:
    """The object lock of ``bucket`` through an ``s3fs.S3FileSystem``."""
    try:
        answer = fs.call_s3("get_object_lock_configuration", Bucket=bucket)
    except Exception as exc:
        if _not_configured(exc):
            return ObjectLock()
        mapped = map_error(exc, f"object lock configuration of bucket {bucket}")
        if isinstance(mapped, StorageError):
            raise mapped from exc
        raise
    return parse_object_lock(answer)


def root_object_lock(fs: Any, root: str) -> ObjectLock:
    """The object lock of the bucket that holds ``root`` (``bucket/prefix``)."""
    return bucket_object_lock(fs, root.split("/", 1)[0])
