"""Uploading a shard: streamed from the records file, checksummed, and at most once.

:func:`upload_shard` first asks S3 for the object (``HeadObject``). An object that is
there with the shard's SHA-256 in its metadata (``x-amz-meta-asyncjobs-sha256``) and its
size is the shard already uploaded, by this run or an earlier one: nothing is sent.
Otherwise the shard's bytes are read back from the records file (in a worker thread, a
chunk at a time, never the whole shard) and sent through aioboto3's managed transfer
(``upload_fileobj``): one ``PutObject`` below :data:`MULTIPART_THRESHOLD`, a multipart
upload above it. S3 verifies the bytes: a single ``PutObject`` carries the whole
object's ``ChecksumSHA256``, and a multipart upload asks for SHA-256 on every part
(S3's multipart checksum is a checksum of part checksums, which is why the whole
object's SHA-256 is kept in the metadata too). The bytes read are hashed on the way, and
a file that no longer matches the shard aborts the upload before it completes.

Memory is bounded by the transfer's buffers: at most ``max_io_queue`` parts waiting plus
``max_concurrency`` in flight, of :data:`PART_SIZE` each (48 MiB with the defaults).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
import structlog
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from asyncjobs.errors import CampaignError
from asyncjobs.model import Service
from asyncjobs.records.shards import Shard, shard_bytes

#: Shards smaller than this go up in one PutObject.
MULTIPART_THRESHOLD = 16 << 20
PART_SIZE = 8 << 20
#: The metadata key holding the whole object's SHA-256 (hex).
SHA256_METADATA = "asyncjobs-sha256"
RECORDS_METADATA = "asyncjobs-records"

#: Called with (bytes, records) newly uploaded: bytes as parts complete, records once
#: the shard is complete. A shard found already uploaded reports nothing.
ProgressCallback = Callable[[int, int], None]

_log = structlog.get_logger("asyncjobs.records")


@dataclass(frozen=True, slots=True)
class UploadResult:
    """What :func:`upload_shard` did for one shard."""

    uri: str
    #: False when the object was already there with the shard's checksum.
    uploaded: bool
    size: int
    records: int


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` as (bucket, key)."""
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key


def transfer_config() -> TransferConfig:
    """The managed transfer's settings: parts of :data:`PART_SIZE`, few buffered."""
    return TransferConfig(
        multipart_threshold=MULTIPART_THRESHOLD,
        multipart_chunksize=PART_SIZE,
        max_concurrency=4,
        max_io_queue=2,
    )


async def is_uploaded(s3: Any, shard: Shard, uri: str) -> bool:
    """Whether ``uri`` already holds ``shard`` (same SHA-256 and size)."""
    bucket, key = split_s3_uri(uri)
    try:
        head = await s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    metadata = head.get("Metadata") or {}
    return bool(metadata.get(SHA256_METADATA) == shard.sha256 and head.get("ContentLength") == shard.size)


async def upload_shard(
    s3: Any,
    shard: Shard,
    service: Service,
    uri: str,
    *,
    on_progress: ProgressCallback | None = None,
    config: TransferConfig | None = None,
) -> UploadResult:
    """Put ``shard`` at ``uri`` unless it is there already; ``s3`` is an aioboto3 S3 client.

    Raises :class:`CampaignError` if the records file no longer holds the shard, and
    botocore's errors as S3 gives them.
    """
    if await is_uploaded(s3, shard, uri):
        _log.info("asyncjobs.records.upload_skipped", uri=uri, records=shard.records, size=shard.size)
        return UploadResult(uri, uploaded=False, size=shard.size, records=shard.records)
    config = config or transfer_config()
    bucket, key = split_s3_uri(uri)
    extra: dict[str, Any] = {
        "Metadata": {SHA256_METADATA: shard.sha256, RECORDS_METADATA: str(shard.records)},
        "ContentType": "application/jsonl",
    }
    if shard.size < config.multipart_threshold:
        extra["ChecksumSHA256"] = base64.b64encode(bytes.fromhex(shard.sha256)).decode()
    else:
        extra["ChecksumAlgorithm"] = "SHA256"
    reader = _ShardReader(shard, service)

    def sent(count: int) -> None:
        if on_progress is not None:
            on_progress(count, 0)

    await s3.upload_fileobj(reader, bucket, key, ExtraArgs=extra, Callback=sent, Config=config)
    if on_progress is not None:
        on_progress(0, shard.records)
    _log.info("asyncjobs.records.uploaded", uri=uri, records=shard.records, size=shard.size)
    return UploadResult(uri, uploaded=True, size=shard.size, records=shard.records)


class _ShardReader:
    """A file-like view of a shard's upload bytes, read in a worker thread, checked at its end."""

    def __init__(self, shard: Shard, service: Service) -> None:
        self._shard = shard
        self._records: Iterator[bytes] = (r.data for r in shard_bytes(shard, service))
        self._pending = b""
        self._digest = hashlib.sha256()
        self._count = 0
        self._done = False

    async def read(self, size: int = -1) -> bytes:
        return await anyio.to_thread.run_sync(self._read, size)

    def _read(self, size: int) -> bytes:
        parts = [self._pending]
        have = len(self._pending)
        while not self._done and (size < 0 or have < size):
            data = next(self._records, None)
            if data is None:
                self._finish()
                break
            self._digest.update(data)
            self._count += 1
            parts.append(data)
            have += len(data)
        joined = b"".join(parts)
        if size < 0:
            self._pending = b""
            return joined
        self._pending = joined[size:]
        return joined[:size]

    def _finish(self) -> None:
        self._done = True
        shard = self._shard
        if self._count != shard.records or self._digest.hexdigest() != shard.sha256:
            raise CampaignError(
                f"lines {shard.first_line}-{shard.last_line} changed since shard {shard.number} was made; "
                "nothing of it was uploaded",
                source=shard.path,
            )
