"""The saved emulator state: one JSON file holding the settings, every job and counter, and S3.

:meth:`Emulator.save_state <asyncjobs.emulator.server.Emulator.save_state>` writes it and
:meth:`~asyncjobs.emulator.server.Emulator.load_state` reads it back into a new emulator (a restarted
process), which takes over the jobs and their files. The file is
``{"format", "version", "config", "state", "s3"}``; a file of another format or version, or saved
under other settings, is refused whole (:class:`EmulatorStateError`), and so is a corrupt one, before
anything is changed.

Apart from the live state (:mod:`.state`) and the saved S3 (:mod:`.saved_s3`) because this is the
one place the file's shape and version are decided.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..atomic import write_private
from .config import EmulatorConfig
from .jobs import EmuJob
from .s3 import MOTO_MISSING, S3Store
from .saved_s3 import buckets_from_json
from .state import EmulatorState
from .stats import Stats

#: The ``format`` and ``version`` of a file written by :func:`save`.
STATE_FORMAT = "asyncjobs-emulator-state"
#: 3: the file keeps S3 (``"s3"``: every bucket and object) beside the jobs.
STATE_VERSION = 3


class EmulatorStateError(ValueError):
    """A saved emulator state cannot be loaded: unreadable, corrupt, or saved under other settings."""


def save(path: str | os.PathLike[str], config: EmulatorConfig, state: EmulatorState, s3: S3Store) -> None:
    """Write ``state`` and ``s3`` under ``config`` to ``path``, atomically and privately (mode 0600)."""
    target = Path(path)
    document = {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "config": config.as_json(),
        "state": state_to_json(state),
        # after the jobs: a job saved with its outputs written has them in this S3 too
        "s3": s3.snapshot(),
    }
    text = json.dumps(document, separators=(",", ":"))  # one C call: json.dump writes in pieces
    write_private(target, text.encode())


def load(path: str | os.PathLike[str], config: EmulatorConfig, s3: S3Store) -> EmulatorState:
    """The state :func:`save` wrote to ``path``, with ``s3`` restored to the saved buckets.

    Raises :class:`EmulatorStateError`, and changes nothing, if the file cannot be read, is not a
    saved state of this version, was saved under other settings than ``config``, or holds S3
    objects and moto is not installed.
    """
    try:
        with Path(path).open(encoding="utf-8") as src:
            document = json.load(src)
    # ValueError: not JSON, not UTF-8, or an integer too long to read; RecursionError:
    # nested deeper than the parser can recurse
    except (OSError, ValueError, RecursionError) as exc:
        raise EmulatorStateError(f"{path}: cannot read the emulator state: {exc}") from exc
    if not isinstance(document, dict) or document.get("format") != STATE_FORMAT:
        raise EmulatorStateError(f"{path}: not an emulator state file")
    if document.get("version") != STATE_VERSION:
        raise EmulatorStateError(
            f"{path}: emulator state version {document.get('version')!r}, not {STATE_VERSION}"
        )
    if document.get("config") != config.as_json():
        raise EmulatorStateError(f"{path}: the emulator state was saved under other settings")
    try:
        state = state_from_json(config, document["state"], s3)
        buckets = buckets_from_json(document["s3"])
    except (KeyError, TypeError, ValueError) as exc:
        raise EmulatorStateError(f"{path}: corrupt emulator state: {exc!r}") from exc
    try:
        s3.restore(buckets)
    except ImportError as exc:
        raise EmulatorStateError(f"{path}: the emulator state holds S3 objects. {MOTO_MISSING}") from exc
    return state


def state_to_json(state: EmulatorState) -> dict[str, Any]:
    """The jobs and counters as JSON-ready values; every index is rebuilt from the jobs."""
    return {
        "seq": state.last_seq,
        "stats": state.stats.to_json(),
        "jobs": [job.to_json() for job in state.jobs()],
    }


def state_from_json(
    config: EmulatorConfig, data: Mapping[str, Any], s3: S3Store | None = None
) -> EmulatorState:
    """The state :func:`state_to_json` wrote, under ``config``; ValueError/TypeError/KeyError if not one."""
    if (
        not isinstance(data, Mapping)
        or not isinstance(data["seq"], int)
        or not isinstance(data["jobs"], list)
    ):
        raise ValueError("not an emulator state")
    stats = Stats.from_json(data["stats"])
    jobs = sorted((EmuJob.from_json(record) for record in data["jobs"]), key=_seq)
    if len({job.arn for job in jobs}) != len(jobs) or len({job.seq for job in jobs}) != len(jobs):
        raise ValueError("two jobs share an ARN or a sequence number")
    if jobs and jobs[-1].seq > data["seq"]:
        raise ValueError("a job is newer than the state's sequence number")
    return EmulatorState.restored(config, s3, stats, jobs, data["seq"])


def _seq(job: EmuJob) -> int:
    return job.seq
