"""Progress and result rendering for the ``asyncjobs`` command.

Two progress styles, both fed by :meth:`asyncjobs.scheduler.Campaign.progress` snapshots:

- :func:`live_progress`: a rich live display (counts per state, create rate and
  throttles, running against capacity per quota key, elapsed time and ETA), for a
  terminal.
- :func:`line_progress`: one plain line every few seconds, for logs and pipes.

Both run until cancelled and show a last snapshot on the way out. The module also
renders the final summary and the ``status`` and ``check`` tables. It never configures
logging.

Every value that comes from a campaign, a journal or a service (ids, model ids, paths,
error messages) reaches rich as a :class:`~rich.text.Text`, never as a string, which
rich would read as markup: an id of ``[/oops]`` would crash the table, and
``[link=...]`` would become a live link. Such values also have their control characters
escaped (:func:`safe_text`), so they cannot drive the terminal with escape sequences.
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import anyio
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from .model import JobState, StateCounts
from .scheduler import Progress

Snapshot = Callable[[], Progress]

#: The display order of states and the style of each.
STATE_STYLES: Mapping[JobState, str] = {
    JobState.PENDING: "dim",
    JobState.SUBMITTING: "cyan",
    JobState.SUBMITTED: "cyan",
    JobState.RUNNING: "blue",
    JobState.SUCCEEDED: "green",
    JobState.PARTIAL: "yellow",
    JobState.FAILED: "red",
    JobState.STOPPED: "red",
    JobState.EXPIRED: "red",
    JobState.REJECTED: "red",
    JobState.CANCELLED: "magenta",
}


def duration(seconds: float | None) -> str:
    """``1:02:03`` or ``2:03``; ``?`` when unknown, ``-`` when unbounded."""
    if seconds is None:
        return "?"
    if not math.isfinite(seconds):
        return "-"
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def rate_text(rate: float | None) -> str:
    """The create-rate limit: ``unpaced`` until a throttle sets one (or no ceiling was given)."""
    return "unpaced" if rate is None else f"{rate:.1f}/s"


def rates_text(progress: Progress) -> str:
    """The create-rate limit of each service, e.g. ``bedrock 4.2/s, personalize unpaced``."""
    if not progress.create_rates:
        return rate_text(progress.create_rate)
    return ", ".join(f"{name} {rate_text(rate)}" for name, rate in sorted(progress.create_rates.items()))


def safe_text(value: str) -> str:
    """``value`` with non-printable characters escaped (``\\x1b``, ``\\u202e``); newlines kept.

    For text from outside (a campaign, a journal, a service) on its way to a terminal:
    an escape sequence could open a hyperlink or rewrite the screen, a bidi control
    reorder what is shown.
    """
    if value.isprintable():
        return value
    return "".join(c if c.isprintable() or c == "\n" else c.encode("unicode_escape").decode() for c in value)


def plain(value: Any, style: str = "") -> Text:
    """A value as literal text for rich (no markup), with :func:`safe_text` applied."""
    return Text(safe_text(_cell(value)), style=style)


def state_style(name: str) -> str:
    try:
        return STATE_STYLES[JobState(name)]
    except ValueError:
        return ""


def final_count(counts: StateCounts) -> int:
    return sum(n for state, n in counts.counts.items() if state.is_final)


# ------------------------------------------------------------------ progress
class RateMeter:
    """The create calls per second actually achieved over the last ``window`` seconds."""

    def __init__(self, window: float = 5.0) -> None:
        self._window = window
        self._samples: deque[tuple[float, int]] = deque()

    def __call__(self, progress: Progress) -> float | None:
        samples = self._samples
        if samples and progress.elapsed < samples[-1][0]:
            samples.clear()  # a new run
        samples.append((progress.elapsed, progress.creates))
        while len(samples) > 2 and samples[1][0] <= progress.elapsed - self._window:
            samples.popleft()
        (t0, c0), (t1, c1) = samples[0], samples[-1]
        return (c1 - c0) / (t1 - t0) if t1 - t0 >= 0.5 else None


def render_progress(progress: Progress, achieved: float | None = None) -> RenderableType:
    """The live display of one snapshot; ``achieved`` is the measured create rate."""
    counts = progress.counts
    line1 = Text.assemble(
        ("asyncjobs ", "bold"),
        (f"{final_count(counts)}/{counts.total}", "bold"),
        " final   ",
        f"elapsed {duration(progress.elapsed)}   eta {duration(progress.eta)}",
    )
    line2 = Text.assemble(
        f"creates {progress.creates} ({'-' if achieved is None else f'{achieved:.1f}/s'}, "
        f"limit {rates_text(progress)})   ",
        (f"throttled {progress.throttled}", "yellow" if progress.throttled else ""),
        f"   status reads {progress.reads}",
    )
    states = Table(box=None, pad_edge=False, show_header=True, header_style="bold")
    shown = [s for s in JobState if counts[s] or not s.is_final or s is JobState.SUCCEEDED]
    for state in shown:
        states.add_column(str(state), justify="right", style=STATE_STYLES[state])
    states.add_row(*(str(counts[s]) for s in shown))

    keys = Table(box=None, pad_edge=False, header_style="bold")
    keys.add_column("quota key")
    keys.add_column("running / cap", justify="right")
    keys.add_column("", no_wrap=True)
    keys.add_column("pending", justify="right")
    for key in progress.keys:
        keys.add_row(
            plain(key.key), f"{key.running} / {key.cap}", _bar(key.running, key.cap), str(key.pending)
        )
    lines: list[RenderableType] = [line1, line2]
    if progress.uploads:
        lines.append(Text(uploads_text(progress.uploads)))
    return Group(*lines, Text(""), states, Text(""), keys)


def uploads_text(uploads: Mapping[str, int]) -> str:
    """Records shards in S3, and what this run sent: ``shards uploaded 3/4, sent 1,500 records (2.1 MB)``."""
    return (
        f"shards uploaded {uploads.get('shards_uploaded', 0)}/{uploads.get('shards', 0)}, "
        f"sent {uploads.get('records_sent', 0):,} records ({uploads.get('bytes_sent', 0) / 1e6:.1f} MB)"
    )


def _bar(used: int, cap: int, width: int = 20) -> Text:
    filled = 0 if cap <= 0 else min(width, round(width * used / cap))
    return Text.assemble(("█" * filled, "blue"), ("░" * (width - filled), "dim"))


def progress_line(progress: Progress) -> str:
    """One plain line: what :func:`line_progress` prints."""
    counts = progress.counts
    parts = [f"{final_count(counts)}/{counts.total} final"]
    parts += [f"{state} {counts[state]}" for state in JobState if counts[state]]
    parts += [
        f"rate limit {rates_text(progress)}",
        f"creates {progress.creates}",
        f"throttled {progress.throttled}",
        f"reads {progress.reads}",
        f"elapsed {duration(progress.elapsed)}",
        f"eta {duration(progress.eta)}",
    ]
    if progress.uploads:
        parts.append(uploads_text(progress.uploads))
    return "progress: " + ", ".join(parts)


async def live_progress(snapshot: Snapshot, console: Console, *, interval: float = 0.25) -> None:
    """Redraw the live display until cancelled; the last frame stays on screen."""
    meter = RateMeter()

    def frame() -> RenderableType:
        progress = snapshot()
        return render_progress(progress, meter(progress))

    with Live(
        frame(),
        console=console,
        auto_refresh=False,
        transient=False,
        redirect_stderr=True,
        redirect_stdout=False,
    ) as live:
        try:
            while True:
                await anyio.sleep(interval)
                live.update(frame(), refresh=True)
        finally:
            live.update(frame(), refresh=True)


def progress_fields(progress: Progress) -> dict[str, Any]:
    """The snapshot as flat fields, for a structured log event."""
    return {
        "final": final_count(progress.counts),
        "total": progress.counts.total,
        "counts": {str(s): n for s, n in progress.counts.counts.items() if n},
        "create_rate_limit": progress.create_rate,
        "creates": progress.creates,
        "throttled": progress.throttled,
        "reads": progress.reads,
        "elapsed_seconds": round(progress.elapsed, 1),
        "eta_seconds": None
        if progress.eta is None or not math.isfinite(progress.eta)
        else round(progress.eta),
        **({"uploads": dict(progress.uploads)} if progress.uploads else {}),
    }


async def line_progress(
    snapshot: Snapshot, write: Callable[[Progress], None], *, interval: float = 5.0
) -> None:
    """Report a snapshot every ``interval`` seconds until cancelled, and a last one."""
    try:
        while True:
            await anyio.sleep(interval)
            write(snapshot())
    finally:
        write(snapshot())


# ------------------------------------------------------------------- results
def counts_table(counts: Mapping[str, int], title: str | None = None) -> Table:
    """Per-state counts, non-zero states only (all of them if every count is zero)."""
    table = Table(title=None if title is None else plain(title), title_justify="left", header_style="bold")
    table.add_column("state")
    table.add_column("jobs", justify="right")
    rows = [(s, n) for s, n in counts.items() if n] or list(counts.items())
    for state, n in rows:
        table.add_row(plain(state, state_style(state)), str(n))
    table.add_row(Text("total", style="bold"), Text(str(sum(counts.values())), style="bold"))
    return table


def summary_renderable(doc: Mapping[str, Any]) -> RenderableType:
    """The table form of a run/cancel summary document."""
    api = doc.get("api", {})
    lines = Text.assemble(
        ("campaign ", "bold"),
        plain(doc.get("campaign")),
        ("   journal ", "bold"),
        plain(doc.get("journal")),
        "\n",
        f"elapsed {duration(doc.get('elapsed_seconds'))}   creates {api.get('creates', 0)}   "
        f"throttled {api.get('throttled', 0)}   reads {api.get('reads', 0)}",
    )
    if doc.get("uploads"):
        lines.append("\n" + uploads_text(doc["uploads"]))
    return Group(lines, counts_table(doc["counts"]))


JOB_COLUMNS: Sequence[tuple[str, str]] = (
    ("id", "id"),
    ("service", "service"),
    ("state", "state"),
    ("arn", "ARN"),
    ("attempts", "attempts"),
    ("last_error", "last error"),
)


def status_renderable(doc: Mapping[str, Any]) -> RenderableType:
    """The table form of a ``status`` document."""
    head = Text.assemble(
        ("campaign ", "bold"), plain(doc.get("campaign")), ("   journal ", "bold"), plain(doc.get("journal"))
    )
    parts: list[RenderableType] = [head, counts_table(doc["counts"])]
    if doc.get("jobs"):
        jobs = Table(header_style="bold")
        for _, title in JOB_COLUMNS:
            jobs.add_column(title, overflow="fold")
        for job in doc["jobs"]:
            jobs.add_row(
                *(
                    plain(job.get(key), state_style(str(job["state"])) if key == "state" else "")
                    for key, _ in JOB_COLUMNS
                )
            )
        parts.append(jobs)
    return Group(*parts)


def generic_renderable(value: Any) -> RenderableType:
    """Any JSON value (what ``--query`` returns) in table form, like the AWS CLI's ``--output table``."""
    if isinstance(value, Mapping):
        table = Table(show_header=False, header_style="bold")
        table.add_column("key", style="bold")
        table.add_column("value", overflow="fold")
        for key, item in value.items():
            table.add_row(plain(key), plain(item))
        return table
    if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
        columns = _columns(value)
        table = Table(header_style="bold")
        for column in columns:
            table.add_column(plain(column), overflow="fold")
        for row in value:
            table.add_row(*(plain(row.get(c)) for c in columns))
        return table
    if isinstance(value, list):
        return plain("\n".join(_cell(v) for v in value))
    return plain(value)


def check_renderable(doc: Mapping[str, Any]) -> RenderableType:
    """The table form of a ``check`` document: the jobs per service and per quota key."""
    head = Text.assemble(
        ("campaign ", "bold"), plain(doc.get("campaign")), f"   {doc.get('jobs', 0)} jobs, all valid"
    )
    parts: list[RenderableType] = [head]
    for key, title in (("services", "service"), ("quota_keys", "quota key")):
        table = Table(header_style="bold")
        table.add_column(title)
        table.add_column("jobs", justify="right")
        for name, n in doc.get(key, {}).items():
            table.add_row(plain(name), str(n))
        parts.append(table)
    return Group(*parts)


def _columns(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    return list(seen)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (Mapping, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def results_renderable(doc: Mapping[str, Any]) -> RenderableType:
    """The table form of a ``results`` document: records succeeded and failed, and tokens, per id."""
    table = Table(header_style="bold")
    for title in ("id", "records", "succeeded", "failed", "input tokens", "output tokens", "file"):
        table.add_column(title, justify="left" if title in ("id", "file") else "right")
    for line in doc.get("lines", []):
        tokens = line.get("tokens") or {}
        table.add_row(
            plain(line["id"]),
            str(line["records"]),
            str(line["succeeded"]),
            str(line["failed"]),
            str(tokens.get("inputTokenCount", "")),
            str(tokens.get("outputTokenCount", "")),
            plain(line["path"]),
        )
    return table
