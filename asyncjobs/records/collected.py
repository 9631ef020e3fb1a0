"""A campaign's results, from its journal: one ``DIR/<id>.jsonl`` per records line.

The journal knows every records line's shards, retry shards included, and where the
outputs of those whose job ended well are (:mod:`asyncjobs.records.stage` collected them).
:func:`write_journal_results` joins them back with :func:`write_results`, a line at a
time; :func:`campaign_results` does the same from a journal's path, opening a read-only
snapshot of the journal and the S3 client itself (the Python form of ``asyncjobs results``).
Nothing is written to the journal, so results can be written beside a run that holds it: they
are what the journal had collected when the snapshot was taken.

A shard whose job did not end well (failed, stopped, or not yet ended) contributes its
records as failed (``missing from the job's output``): a results file always holds one
line per input record.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from typing import Any, Protocol

from asyncjobs.errors import JournalError
from asyncjobs.journal.shards import ShardRow
from asyncjobs.records.results import ResultSummary, write_results
from asyncjobs.records.s3 import open_s3
from asyncjobs.records.stage import shard_outputs


class ShardReader(Protocol):
    """What results are read from: a journal (or a read-only snapshot of one) that keeps shards."""

    async def shards(self, line_id: str | None = None) -> list[ShardRow]: ...


async def write_journal_results(
    journal: ShardReader,
    s3: Any,
    out_dir: str | os.PathLike[str],
    *,
    ids: Iterable[str] | None = None,
) -> list[ResultSummary]:
    """Write ``DIR/<id>.jsonl`` for each records line of ``journal`` (or those in ``ids``);
    ``s3`` is an aioboto3 S3 client. Raises ``KeyError`` naming an id that is no records line."""
    rows = await journal.shards()
    lines: dict[str, list[Any]] = {}
    for row in rows:
        lines.setdefault(row.line_id, []).append(row)
    wanted = list(lines) if ids is None else list(dict.fromkeys(ids))
    for line_id in wanted:
        if line_id not in lines:
            raise KeyError(line_id)
    return [await write_results(s3, line_id, shard_outputs(lines[line_id]), out_dir) for line_id in wanted]


async def campaign_results(
    journal_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    ids: Iterable[str] | None = None,
    campaign: str | None = None,
    session: Any = None,
    region: str | None = None,
    endpoint_url: str | None = None,
    verify: bool | str | None = None,
) -> list[ResultSummary]:
    """:func:`write_journal_results` for the journal at ``journal_path`` (which must exist; it is
    read as a read-only snapshot, so a run may hold it meanwhile), with an S3 client from
    ``session`` (an ``aioboto3.Session``; the default credential chain if None). ``journal_path``
    may be a ``postgresql://`` URI; ``campaign`` names the campaign in it (needed when it holds
    several)."""
    from asyncjobs.journal import open_journal

    async with contextlib.AsyncExitStack() as stack:
        journal = await open_journal(journal_path, campaign=campaign, readonly=True)
        stack.push_async_callback(journal.aclose)
        if journal.loading is not None:  # a SQLite bulk load keeps its rows out of reach until done
            raise JournalError(
                f"{journal.path}: the campaign is still being loaded into the journal;"
                " write its results once the load is done"
            )
        s3 = await open_s3(stack, session, region=region, endpoint_url=endpoint_url, verify=verify)
        return await write_journal_results(journal, s3, out_dir, ids=ids)
