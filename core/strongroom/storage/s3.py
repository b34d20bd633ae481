"""S3 specifics: reading a bucket's object lock configuration.

Object lock is a property of the bucket, set when it is created (it also turns
versioning on) and completed by an optional default retention (COMPLIANCE or
GOVERNANCE, for some days or years) that every new object version gets.  The vault
reads it with ``GetObjectLockConfiguration``; a bucket without object lock answers
with the error ``ObjectLockConfigurationNotFoundError``, which means "none" here.
Any other failure (no permission to read the configuration, for example) raises
:class:`~strongroom.errors.StorageError`: whether objects are protected must not be
guessed.

Per-object facts (used by :mod:`strongroom.storage.locking` through
:class:`~strongroom.storage.fsspec_store.FsspecStore`), each a function of an
``s3fs.S3FileSystem`` and a ``bucket/key`` path:

- :func:`object_retention` (``GetObjectRetention``): the retention of the current
  version, None when it has none.  SeaweedFS answers an unlocked object with
  ``ObjectLockConfigurationNotFoundError``; that means "none" too.
- :func:`set_retention` (``PutObjectRetention``): a retain-until date that only moves
  forward.  An identity without ``BypassGovernanceRetention`` may lengthen a
  retention but not shorten it nor change its mode (SeaweedFS, as AWS, counts
  GOVERNANCE -> COMPLIANCE as a change that needs the bypass): the mode is then kept,
  the date still moved forward, and the retention in force returned, so the caller can
  say so.  A date already later than the one asked for is left alone.
- :func:`delete_versions`: strongroom's own delete on a versioned bucket.  A plain
  ``DeleteObject`` there frees nothing and leaves a delete marker; this removes every
  version of the key, oldest first (so the newest stays readable until the last), and
  the delete markers after them.  A version whose removal is refused while its
  retention (or a legal hold) holds raises :class:`~strongroom.errors.ObjectLocked`;
  the object is still readable.  A refusal of an unlocked version is a plain
  StorageError (a missing permission).
- :func:`hidden_keys` / :func:`remove_delete_markers`: keys whose newest version is a
  delete marker (left by a raw ``DeleteObject`` without a version id: the object looks
  gone but every version is still there), and bringing one back by deleting the
  markers above its newest version.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ..errors import ObjectLocked, ObjectNotFound, StorageError
from .base import map_error
from .capabilities import ObjectLock
from .locking import HiddenObject, Retention

__all__ = [
    "bucket_object_lock",
    "delete_versions",
    "hidden_keys",
    "object_retention",
    "parse_object_lock",
    "remove_delete_markers",
    "root_object_lock",
    "set_retention",
]

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


# --- per-object retention and versions ----------------------------------------------------

_NO_RETENTION = ("ObjectLockConfigurationNotFound", "NoSuchObjectLockConfiguration")


def error_code(exc: BaseException | None) -> str:
    """The S3 error code behind ``exc`` (s3fs keeps botocore's ClientError as the cause)."""
    seen = 0
    while exc is not None and seen < 8:
        response = getattr(exc, "response", None)
        if isinstance(response, dict):
            code = (response.get("Error") or {}).get("Code")
            if code:
                return str(code)
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return ""


def _raise_mapped(exc: Exception, what: str) -> None:
    mapped = map_error(exc, what)
    if mapped is exc:
        raise exc
    raise mapped from exc


def _utc(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.timezone.utc) if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def _versions(fs: Any, bucket: str, key: str) -> tuple[list[dict], list[dict]]:
    """The versions and delete markers of exactly ``key``, newest first."""
    versions: list[dict] = []
    markers: list[dict] = []
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": key}
    while True:
        answer = fs.call_s3("list_object_versions", **kwargs)
        versions += [v for v in answer.get("Versions") or () if v.get("Key") == key]
        markers += [m for m in answer.get("DeleteMarkers") or () if m.get("Key") == key]
        if not answer.get("IsTruncated"):
            break
        kwargs.update(KeyMarker=answer.get("NextKeyMarker"), VersionIdMarker=answer.get("NextVersionIdMarker"))
    newest_first = lambda entries: sorted(entries, key=lambda e: e.get("LastModified") or 0, reverse=True)  # noqa: E731
    return newest_first(versions), newest_first(markers)


def object_retention(fs: Any, path: str, version: str | None = None) -> Retention | None:
    """The retention of the object at ``path`` (its current version, or ``version``);
    None without one; ObjectNotFound when there is no such object."""
    bucket, key, _ = fs.split_path(path)
    kwargs = {"Bucket": bucket, "Key": key, **({"VersionId": version} if version else {})}
    try:
        answer = fs.call_s3("get_object_retention", **kwargs)
    except Exception as exc:
        if error_code(exc) in _NO_RETENTION or any(c in str(exc) for c in _NO_RETENTION):
            return None
        _raise_mapped(exc, path)
    found = answer.get("Retention") or {}
    until = found.get("RetainUntilDate")
    if not found.get("Mode") or until is None:
        return None
    if isinstance(until, str):
        until = dt.datetime.fromisoformat(until.replace("Z", "+00:00"))
    return Retention(found["Mode"], _utc(until))


def _put_retention(fs: Any, bucket: str, key: str, mode: str, until: dt.datetime, bypass: bool = False) -> None:
    fs.call_s3("put_object_retention", Bucket=bucket, Key=key,
               Retention={"Mode": mode, "RetainUntilDate": until},
               **({"BypassGovernanceRetention": True} if bypass else {}))


def set_retention(fs: Any, path: str, mode: str, until: dt.datetime) -> Retention:
    """Lock the current version of ``path`` in ``mode`` until ``until`` (see the module
    docstring); the retention in force afterwards."""
    bucket, key, _ = fs.split_path(path)
    until = _utc(until).replace(microsecond=0)
    try:
        _put_retention(fs, bucket, key, mode, until)
        return Retention(mode, until)
    except Exception as exc:
        if error_code(exc) != "AccessDenied" and not isinstance(exc, PermissionError):
            _raise_mapped(exc, path)
        refused = exc
    current = object_retention(fs, path)
    if current is None:  # not a lock that refused: a missing permission
        _raise_mapped(refused, path)
    if current.until >= until and (current.mode == mode or current.mode == "COMPLIANCE"):
        return current  # already as long and as strong
    if current.mode == "GOVERNANCE" and mode == "COMPLIANCE":
        try:  # a mode change needs the bypass, which an admin's credentials may have
            _put_retention(fs, bucket, key, mode, max(until, current.until), bypass=True)
            return Retention(mode, max(until, current.until))
        except Exception as exc:
            if error_code(exc) != "AccessDenied" and not isinstance(exc, PermissionError):
                _raise_mapped(exc, path)
    if current.until >= until:
        return current
    try:  # lengthen in the mode it has
        _put_retention(fs, bucket, key, current.mode, until)
    except Exception as exc:
        _raise_mapped(exc, path)
    return Retention(current.mode, until)


def _legal_hold(fs: Any, bucket: str, key: str, version: str) -> bool:
    try:
        answer = fs.call_s3("get_object_legal_hold", Bucket=bucket, Key=key, VersionId=version)
    except Exception:
        return False
    return (answer.get("LegalHold") or {}).get("Status") == "ON"


def delete_versions(fs: Any, path: str, name: str, now: dt.datetime) -> None:
    """Remove every version and delete marker of ``path`` (see the module docstring);
    ``name`` is the object's name in messages, ``now`` tells a lock from a refusal."""
    bucket, key, _ = fs.split_path(path)
    try:
        versions, markers = _versions(fs, bucket, key)
    except Exception as exc:
        _raise_mapped(exc, name)
    for entry in [*reversed(versions), *markers]:
        version = entry["VersionId"]
        try:
            fs.call_s3("delete_object", Bucket=bucket, Key=key, VersionId=version)
        except Exception as exc:
            if error_code(exc) == "NoSuchVersion" or isinstance(exc, FileNotFoundError):
                continue
            if error_code(exc) == "AccessDenied" or isinstance(exc, PermissionError):
                held = object_retention(fs, path, version)
                if held is not None and held.until > now:
                    raise ObjectLocked(name=name, until=held.until.isoformat(timespec="seconds"),
                                       mode=held.mode) from None
                if _legal_hold(fs, bucket, key, version):
                    raise ObjectLocked(name=name, until="its legal hold is lifted", mode="legal hold") from None
            _raise_mapped(exc, name)


def hidden_keys(fs: Any, root: str, prefix: str) -> list[HiddenObject]:
    """The keys under ``root/prefix`` whose newest version is a delete marker and which
    have a version under it, as names relative to ``root``."""
    bucket, base, _ = fs.split_path(root)
    base = f"{base}/" if base else ""
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": base + prefix}
    newest: dict[str, tuple[Any, bool, str]] = {}
    has_data: set[str] = set()
    while True:
        try:
            answer = fs.call_s3("list_object_versions", **kwargs)
        except Exception as exc:
            _raise_mapped(exc, f"versions under {root}/{prefix}")
        for marker, entries in ((False, answer.get("Versions") or ()), (True, answer.get("DeleteMarkers") or ())):
            for entry in entries:
                key = entry["Key"]
                if not marker:
                    has_data.add(key)
                if entry.get("IsLatest"):
                    newest[key] = (entry.get("LastModified"), marker, entry["VersionId"])
        if not answer.get("IsTruncated"):
            break
        kwargs.update(KeyMarker=answer.get("NextKeyMarker"), VersionIdMarker=answer.get("NextVersionIdMarker"))
    hidden = []
    for key, (when, marker, version) in sorted(newest.items()):
        if marker and key in has_data and key.startswith(base):
            stamp = _utc(when).isoformat(timespec="seconds") if isinstance(when, dt.datetime) else str(when or "")
            hidden.append(HiddenObject(key[len(base):], version, stamp))
    return hidden


def remove_delete_markers(fs: Any, path: str, name: str) -> int:
    """Delete the delete markers newer than the newest version of ``path``: the object
    is back.  The number removed (0: it was not hidden); ObjectNotFound when no version
    is left under the markers."""
    bucket, key, _ = fs.split_path(path)
    try:
        versions, markers = _versions(fs, bucket, key)
    except Exception as exc:
        _raise_mapped(exc, name)
    if not markers:
        return 0
    if not versions:
        raise ObjectNotFound(name=name)
    newest = versions[0].get("LastModified")
    above = [m for m in markers if newest is None or (m.get("LastModified") or newest) >= newest]
    for marker in above:
        try:
            fs.call_s3("delete_object", Bucket=bucket, Key=key, VersionId=marker["VersionId"])
        except Exception as exc:
            _raise_mapped(exc, name)
    return len(above)
