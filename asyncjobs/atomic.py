"""Writing a private file atomically, never through whatever is already at its path."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_private(path: Path, data: bytes) -> None:
    """Write ``path`` atomically as a private (0600) file.

    The data goes to a new temp file next to it (``mkstemp``: ``O_EXCL|O_NOFOLLOW``, 0600, a
    random name), renamed over ``path``: whatever was at ``path`` -- a link included -- is
    replaced, never written through.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
