"""S3 for the emulator: moto's S3, run in this process, behind the emulator's one endpoint.

A request whose SigV4 credential scope names ``s3`` (``Credential=AKID/DATE/REGION/s3/aws4_request``)
is handed to moto's S3 through moto's own request dispatch (the one ``mock_aws`` uses), as if it had
been sent to ``s3.amazonaws.com``; the ``Host`` header still names the emulator, so moto reads the
bucket from the path (path-style addressing, which botocore uses with a custom ``endpoint_url`` on
127.0.0.1 or localhost). Nothing about S3 is written here: buckets, objects, multipart uploads,
checksums and error responses are all moto's.

moto is optional (``pip install 'asyncjobs[emulator]'``). Without it, S3 requests get a clear
``NotImplemented`` error and everything else works.

**Process-wide.** moto keeps S3 in module state, one store per process. So every emulator in one
process shares it; :class:`S3Store` empties it when the first emulator of the process starts and when
the last one stops (so it lives as long as the emulator), and on ``reset``. moto is imported on the
first S3 request: until then no bucket can exist, and a process that never uses S3 never imports it
(importing moto adds an inert ``before-send`` hook to botocore clients created afterwards).

moto is not documented as thread-safe; every call into it holds one lock. Requests run in a worker
thread, so a large upload does not stall the event loop.

**Saving.** :meth:`S3Store.snapshot` reads every bucket and the current version of every object into
:class:`~asyncjobs.emulator.saved_s3.SavedBucket` values, and :meth:`S3Store.restore` puts them back
(the saved form and its JSON are :mod:`.saved_s3`'s).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

from .saved_s3 import SavedBucket, SavedChecksum, SavedObject

#: Shown when an S3 request arrives and moto is not installed.
MOTO_MISSING = (
    "The emulator serves S3 through moto, which is not installed: pip install 'asyncjobs[emulator]' "
    "(or 'moto[s3]>=5')"
)
#: moto serves S3 for requests that look as if they were sent to S3 itself.
_S3_URL = "https://s3.amazonaws.com"


@dataclass(frozen=True, slots=True)
class S3Reply:
    """An HTTP response from S3."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


class _Moto:
    """The few moto entry points the emulator uses, imported together (ImportError if absent)."""

    def __init__(self) -> None:
        from botocore.awsrequest import AWSPreparedRequest
        from botocore.compat import HTTPHeaders
        from moto.core.botocore_stubber import BotocoreStubber
        from moto.core.models import DEFAULT_ACCOUNT_ID
        from moto.s3.exceptions import MissingBucket
        from moto.s3.models import FakeKey, s3_backends

        self.prepared_request = AWSPreparedRequest
        self.http_headers = HTTPHeaders
        self.dispatcher = BotocoreStubber()
        self.backends: Any = s3_backends
        self.missing_bucket: type[Exception] = MissingBucket
        #: An object version (a versioned bucket's delete marker is not one).
        self.object_version: type[Any] = FakeKey
        self.account_id: str = DEFAULT_ACCOUNT_ID

    @property
    def backend(self) -> Any:
        return self.backends[self.account_id]["aws"]


class _Shared:
    """The process's moto (once imported), its lock, and how many emulators are serving."""

    lock = threading.RLock()
    moto: _Moto | None = None
    serving = 0


class S3Store:
    """The emulator's view of the process's S3: HTTP dispatch, object I/O for emulated jobs, and
    saving and restoring it."""

    def __init__(self) -> None:
        #: Whether this store's emulator is serving (between :meth:`opened` and :meth:`closed`).
        self._serving = False
        #: Buckets :meth:`restore` was given before the emulator started: put back when it starts.
        self._pending: tuple[SavedBucket, ...] | None = None

    @staticmethod
    def available() -> bool:
        """Whether moto can be imported (S3 requests can be served)."""
        try:
            return _load() is not None
        except ImportError:
            return False

    # -- lifetime

    def opened(self) -> None:
        """An emulator starts serving; the first of the process finds S3 empty."""
        with _Shared.lock:
            _Shared.serving += 1
            if _Shared.serving == 1:
                _empty()
            self._serving = True
            pending, self._pending = self._pending, None
            if pending is not None:
                _replace(pending)

    def closed(self) -> None:
        """An emulator stops serving; after the last one, S3 is emptied."""
        with _Shared.lock:
            self._serving = False
            _Shared.serving = max(0, _Shared.serving - 1)
            if _Shared.serving == 0:
                _empty()

    def reset(self) -> None:
        """Forget every bucket and object (of every emulator in this process)."""
        with _Shared.lock:
            self._pending = None
            _empty()

    # -- saving and restoring

    def snapshot(self) -> list[dict[str, Any]]:
        """Every bucket and the current version of every object, as JSON-ready values.

        One pass under the lock: each object's bytes are read once and base64-encoded (4/3 of
        their size). Before the emulator starts, the buckets a :meth:`restore` is holding.
        """
        with _Shared.lock:
            if self._pending is not None:
                return [bucket.to_json() for bucket in self._pending]
            moto = _Shared.moto
            if moto is None:
                return []
            return [_saved_bucket(moto, bucket).to_json() for bucket in list(moto.backend.buckets.values())]

    def restore(self, buckets: Sequence[SavedBucket]) -> None:
        """Replace the process's S3 with ``buckets`` (every emulator of the process shares it).

        While the emulator is not serving, they are kept and put back when it starts (the first
        emulator of a process empties S3 then). ImportError, changing nothing, if there are
        buckets and moto is not installed.
        """
        if buckets:
            _load()
        with _Shared.lock:
            if self._serving:
                _replace(tuple(buckets))
            else:
                self._pending = tuple(buckets)

    # -- HTTP

    def dispatch(
        self, method: str, raw_path: str, headers: Iterable[tuple[str, str]], body: bytes
    ) -> S3Reply:
        """Serve one S3 request (``raw_path`` as sent: percent-encoded, with the query string)."""
        with _Shared.lock:
            try:
                moto = _load()
            except ImportError:
                return _error_reply(501, "NotImplemented", MOTO_MISSING)
            prepared_headers = moto.http_headers()
            for name, value in headers:
                prepared_headers[name] = value
            request = moto.prepared_request(
                method=method,
                url=f"{_S3_URL}{raw_path}",
                headers=prepared_headers,
                body=body,
                stream_output=False,
            )
            result = moto.dispatcher.process_request(request)
        if result is None:  # moto matched no S3 route (it matches every path, so this is unexpected)
            return _error_reply(400, "InvalidRequest", f"S3 does not serve {method} {raw_path}")
        status, reply_headers, reply_body = result
        data = reply_body.encode() if isinstance(reply_body, str) else bytes(reply_body or b"")
        return S3Reply(status, _header_pairs(reply_headers), data)

    # -- object I/O for emulated jobs (no-ops before the first S3 request: nothing exists yet)

    def bucket_exists(self, bucket: str) -> bool:
        with _Shared.lock:
            moto = _Shared.moto
            if moto is None:
                return False
            try:
                moto.backend.get_bucket(bucket)
            except moto.missing_bucket:
                return False
            return True

    def keys(self, bucket: str, prefix: str) -> list[str]:
        """The keys under ``prefix`` in ``bucket`` (sorted); none if the bucket is missing."""
        with _Shared.lock:
            moto = _Shared.moto
            if moto is None:
                return []
            backend = moto.backend
            try:
                found = backend.list_objects(backend.get_bucket(bucket), prefix or None, None, None, None)
            except moto.missing_bucket:
                return []
            return sorted(key.name for key in found[0])

    def read(self, bucket: str, key: str) -> bytes | None:
        """The object's bytes, or None if it (or its bucket) does not exist."""
        with _Shared.lock:
            moto = _Shared.moto
            if moto is None:
                return None
            try:
                found = moto.backend.get_object(bucket, key)
            except moto.missing_bucket:
                return None
            return None if found is None else bytes(found.value)

    def write(self, bucket: str, key: str, data: bytes) -> bool:
        """Store an object; False if the bucket does not exist."""
        with _Shared.lock:
            moto = _Shared.moto
            if moto is None:
                return False
            try:
                moto.backend.put_object(bucket, key, data)
            except moto.missing_bucket:
                return False
            return True


def _load() -> _Moto:
    """moto, imported on first use (ImportError if it is not installed)."""
    with _Shared.lock:
        if _Shared.moto is None:
            _Shared.moto = _Moto()
        return _Shared.moto


def _empty() -> None:
    """Drop every bucket (and close the temporary files moto keeps objects in)."""
    moto = _Shared.moto
    if moto is None:
        return
    backends = moto.backends
    for account_id in list(backends):
        backends[account_id].reset()
    backends.bucket_accounts.clear()


def _replace(buckets: tuple[SavedBucket, ...]) -> None:
    """Empty S3 and create ``buckets`` with their objects, through moto's backend (lock held)."""
    _empty()
    if not buckets:
        return
    moto = _load()
    backend = moto.backend
    for bucket in buckets:
        backend.create_bucket(bucket.name, bucket.region)
        if bucket.versioning is not None:
            backend.put_bucket_versioning(bucket.name, bucket.versioning)
        for saved in bucket.objects:
            checksum = saved.checksum
            key = backend.put_object(
                bucket.name,
                saved.key,
                saved.data,
                etag=saved.etag,
                checksum_value=None if checksum is None else checksum.value,
                disable_notification=True,
            )
            key.set_metadata(dict(saved.metadata))
            key.last_modified = saved.last_modified
            if checksum is not None:
                key.checksum_algorithm = checksum.algorithm
                key.checksum_type = checksum.type
                key.checksum_parts = checksum.parts


def _saved_bucket(moto: _Moto, bucket: Any) -> SavedBucket:
    """``bucket`` (a moto FakeBucket) and the current version of each object in it (lock held)."""
    objects = []
    for name, key in bucket.keys.items():
        if not isinstance(key, moto.object_version):  # a delete marker: the object is deleted
            continue
        checksum = None
        if key.checksum_algorithm and key.checksum_value:
            checksum = SavedChecksum(
                key.checksum_algorithm, key.checksum_value, key.checksum_type, key.checksum_parts
            )
        objects.append(
            SavedObject(
                key=name,
                data=bytes(key.value),
                metadata={str(k): str(v) for k, v in key.metadata.items()},
                etag=key.etag.strip('"'),
                last_modified=key.last_modified,
                checksum=checksum,
            )
        )
    return SavedBucket(bucket.name, bucket.region_name, bucket.versioning_status, tuple(objects))


def _header_pairs(headers: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    return [(str(name), str(value)) for name, value in (headers or {}).items() if value is not None]


def _error_reply(status: int, code: str, message: str) -> S3Reply:
    """An S3 error document, which botocore's S3 parser reads into ``Error.Code``/``Message``."""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error>"
    ).encode()
    return S3Reply(status, [("Content-Type", "application/xml")], body)
