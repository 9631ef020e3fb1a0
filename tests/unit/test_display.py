"""asyncjobs.display: values from a campaign, a journal or a service are shown as literal text.

rich reads a plain string as markup: an id of ``[/oops]`` raises MarkupError, and
``[link=...]...[/link]`` becomes a live hyperlink (OSC 8). Every renderer is fed such
values here and rendered on a forced terminal, where a link would show as ``ESC ]8;``.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.console import Console, RenderableType

from asyncjobs import display
from asyncjobs.model import JobState, StateCounts
from asyncjobs.scheduler import KeyProgress, Progress

CLOSING = "[/oops]"
LINK = "[link=https://evil.example/]click me[/link]"
STYLED = "[bold red]alarm[/bold red]"
#: A raw OSC 8 hyperlink and a right-to-left override, as a service message might carry them.
RAW_LINK = "\x1b]8;;https://evil.example/\x1b\\raw\x1b]8;;\x1b\\ \u202eevil"
HOSTILE = (CLOSING, LINK, STYLED)


def rendered(renderable: RenderableType) -> str:
    """What a colour terminal would receive (hyperlinks enabled), wide enough not to wrap."""
    out = io.StringIO()
    console = Console(
        file=out, force_terminal=True, color_system="truecolor", width=400, legacy_windows=False
    )
    console.print(renderable)
    return out.getvalue()


def assert_literal(output: str, *values: str) -> None:
    assert "\x1b]8;" not in output, "a live hyperlink was written"
    assert "\u202e" not in output, "a bidi control was written"
    for value in values:
        assert value in output, f"{value!r} is not shown as it is"


def status_doc(ids: tuple[str, ...], last_error: str) -> dict[str, Any]:
    return {
        "campaign": LINK,
        "journal": CLOSING,
        "total": len(ids),
        "counts": {"failed": len(ids), "pending": 0},
        "jobs": [
            {
                "id": job_id,
                "service": "bedrock",
                "state": "failed",
                "arn": STYLED,
                "attempts": 1,
                "last_error": last_error,
            }
            for job_id in ids
        ],
    }


def test_the_test_would_see_markup() -> None:
    # the premise: a plain string is markup to rich, and a link reaches the terminal
    assert "\x1b]8;" in rendered(LINK)
    with pytest.raises(Exception, match="closing tag"):
        rendered(CLOSING)


def test_status_table_shows_hostile_ids_and_errors_literally() -> None:
    output = rendered(display.status_renderable(status_doc(HOSTILE, LINK + " " + CLOSING)))
    assert_literal(output, *HOSTILE, f"{LINK} {CLOSING}")


def test_raw_escape_sequences_are_shown_escaped() -> None:
    output = rendered(display.status_renderable(status_doc(("a",), RAW_LINK)))
    assert_literal(output, r"\x1b]8;;https://evil.example/\x1b\raw", r"\u202eevil")


@pytest.mark.parametrize(
    "value",
    [
        status_doc(HOSTILE, LINK),  # a mapping: key/value rows
        status_doc(HOSTILE, LINK)["jobs"],  # a list of mappings: one column per key
        list(HOSTILE),  # a list of strings
        LINK,  # one string
        {LINK: CLOSING},  # a hostile key
        [{CLOSING: LINK}],  # a hostile column name
    ],
    ids=["mapping", "rows", "list", "scalar", "key", "column"],
)
def test_query_results_in_table_form_are_literal(value: Any) -> None:
    output = rendered(display.generic_renderable(value))
    assert_literal(output, LINK)


def test_summary_shows_a_hostile_campaign_and_journal_literally() -> None:
    doc = {
        "campaign": LINK,
        "journal": CLOSING,
        "counts": {"succeeded": 1},
        "elapsed_seconds": 1.0,
        "api": {"creates": 1, "throttled": 0, "reads": 1},
    }
    assert_literal(rendered(display.summary_renderable(doc)), LINK, CLOSING)


def test_counts_table_title_is_literal() -> None:
    assert_literal(rendered(display.counts_table({"failed": 1}, title=CLOSING)), CLOSING)


def test_live_display_shows_a_hostile_quota_key_literally() -> None:
    progress = Progress(
        counts=StateCounts({JobState.PENDING: 3}),
        keys=[KeyProgress(LINK, 0, 2, 1), KeyProgress(CLOSING, 1, 2, 1), KeyProgress(STYLED, 0, 1, 1)],
        create_rate=None,
        creates=0,
        throttled=0,
        reads=0,
        elapsed=1.0,
        eta=None,
    )
    assert_literal(rendered(display.render_progress(progress)), *HOSTILE)


def test_check_summary_shows_hostile_names_literally() -> None:
    doc = {"campaign": CLOSING, "jobs": 2, "services": {"bedrock": 2}, "quota_keys": {LINK: 2}}
    assert_literal(rendered(display.check_renderable(doc)), CLOSING, LINK)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain [text]", "plain [text]"),
        ("two\nlines", "two\nlines"),
        ("bell\x07 esc\x1b[31m", r"bell\x07 esc\x1b[31m"),
        ("tab\tcr\r", r"tab\tcr\r"),
        ("c1\x9b rlo\u202e", r"c1\x9b rlo\u202e"),
        ("naïve 東京", "naïve 東京"),
    ],
)
def test_safe_text_escapes_what_is_not_printable(text: str, shown: str) -> None:
    assert display.safe_text(text) == shown
