"""The saved form of S3: buckets and objects as values, and their JSON in a saved emulator state.

:meth:`S3Store.snapshot <asyncjobs.emulator.s3.S3Store.snapshot>` reads every bucket and the current
version of every object (bytes, metadata, ETag, last-modified time and checksum) into
:class:`SavedBucket` values and :meth:`~S3Store.restore` puts them back, so a saved emulator state
(``Emulator.save_state``) keeps its S3. Not kept: older versions of objects in a versioned bucket,
unfinished multipart uploads, and object tags, ACLs, storage classes and bucket configuration other
than versioning.

Apart from :mod:`.s3` because the format is plain data: reading a saved state checks every field
here, without moto (which may not be installed) and before anything is changed.
"""

from __future__ import annotations

import base64
import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class SavedChecksum:
    """The checksum an upload asked S3 to keep, as moto keeps it (``type`` and ``parts`` are set
    for a multipart upload's composite checksum)."""

    algorithm: str
    value: str
    type: str | None
    parts: int | None


@dataclass(frozen=True, slots=True)
class SavedObject:
    """One object: its bytes and what a HeadObject shows of it."""

    key: str
    data: bytes
    #: Content type and the other stored headers, user metadata (``x-amz-meta-*``) included.
    metadata: dict[str, str]
    #: Without quotes; a multipart upload's is ``<md5 of the parts' md5s>-<parts>``.
    etag: str
    last_modified: datetime.datetime
    checksum: SavedChecksum | None

    def to_json(self) -> dict[str, Any]:
        checksum = self.checksum
        return {
            "key": self.key,
            "data": base64.b64encode(self.data).decode("ascii"),
            "metadata": self.metadata,
            "etag": self.etag,
            "last_modified": self.last_modified.isoformat(),
            "checksum": None
            if checksum is None
            else {
                "algorithm": checksum.algorithm,
                "value": checksum.value,
                "type": checksum.type,
                "parts": checksum.parts,
            },
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SavedObject:
        """What :meth:`to_json` wrote; ValueError/TypeError/KeyError naming the field if not."""
        checksum = data["checksum"]
        metadata = data["metadata"]
        if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
        ):
            raise ValueError(f"object {data.get('key')!r}: metadata is not a map of strings")
        return cls(
            key=_string(data, "key"),
            data=base64.b64decode(_string(data, "data"), validate=True),
            metadata=dict(metadata),
            etag=_string(data, "etag"),
            last_modified=datetime.datetime.fromisoformat(_string(data, "last_modified")),
            checksum=None
            if checksum is None
            else SavedChecksum(
                algorithm=_string(checksum, "algorithm"),
                value=_string(checksum, "value"),
                type=_optional(checksum, "type", str),
                parts=_optional(checksum, "parts", int),
            ),
        )


@dataclass(frozen=True, slots=True)
class SavedBucket:
    """One bucket and its objects (the current version of each)."""

    name: str
    region: str
    #: ``Enabled``, ``Suspended``, or None for a bucket never versioned.
    versioning: str | None
    objects: tuple[SavedObject, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "region": self.region,
            "versioning": self.versioning,
            "objects": [item.to_json() for item in self.objects],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SavedBucket:
        """What :meth:`to_json` wrote; ValueError/TypeError/KeyError naming the field if not."""
        name = _string(data, "name")
        if not 3 <= len(name) <= 63:  # S3's rule: moto would refuse to create it
            raise ValueError(f"bucket name {name!r} is not 3 to 63 characters long")
        objects = data["objects"]
        if not isinstance(objects, list):
            raise TypeError(f"bucket {name!r}: objects is not a list")
        saved = tuple(SavedObject.from_json(item) for item in objects)
        if len({item.key for item in saved}) != len(saved):
            raise ValueError(f"bucket {name!r}: two objects share a key")
        return cls(name, _string(data, "region"), _optional(data, "versioning", str), saved)


def buckets_from_json(data: Any) -> tuple[SavedBucket, ...]:
    """The buckets :meth:`S3Store.snapshot` saved (as JSON); ValueError/TypeError/KeyError if not."""
    if not isinstance(data, list):
        raise TypeError("the saved S3 is not a list of buckets")
    buckets = tuple(SavedBucket.from_json(item) for item in data)
    if len({bucket.name for bucket in buckets}) != len(buckets):
        raise ValueError("two saved buckets share a name")
    return buckets


def _string(data: Mapping[str, Any], field: str) -> str:
    value = data[field]
    if not isinstance(value, str):
        raise TypeError(f"{field} is not a string: {value!r}")
    return value


def _optional(data: Mapping[str, Any], field: str, kind: type[Any]) -> Any:
    value = data[field]
    if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
        raise TypeError(f"{field} is not a {kind.__name__} or null: {value!r}")
    return value
