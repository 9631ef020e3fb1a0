"""What the command prints from untrusted values: literal tables, quoted hints, the TLS warning.

- Ids, journal paths and service messages are text, never rich markup: ``[/oops]`` used
  to crash ``status --output table`` (exit 3), and ``[link=...]`` became a live link.
  ``FORCE_COLOR`` makes rich write terminal codes into the pipe, where a link would show
  as ``ESC ]8;``.
- Every command a hint prints is shell-quoted: pasted back, it runs what it says.
- ``--no-verify-ssl`` prints one warning line.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from asyncjobs.journal import open_journal
from asyncjobs.lifecycle import Event
from asyncjobs.model import JobSpec, Service
from tests.conftest import MakeEmulator
from tests.support.cli import Cli
from tests.support.presets import FAST_POLL
from tests.support.specs import mixed_specs, spec, write_campaign

CLOSING = "[/oops]"
LINK = "[link=https://evil.example/]click me[/link]"
#: A service message with markup, and the start of a raw OSC 8 hyperlink (an escape sequence).
ERROR = f"ValidationException: {LINK} {CLOSING} \x1b]8;;https://e.x/\x1b\\raw"
#: How it must be shown, word by word (a long cell wraps between words).
ERROR_WORDS = [*f"ValidationException: {LINK} {CLOSING}".split(), r"\x1b]8;;https://e.x/\x1b\raw"]
#: A journal path that runs commands when pasted unquoted into a shell.
HOSTILE_PATH = "x;touch PWNED $HOME [a].db"


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    cli = Cli(tmp_path)
    cli.env["FORCE_COLOR"] = "1"
    return cli


async def hostile_journal(path: Path) -> None:
    """A journal whose ids are markup, and whose one rejected job's error is too."""
    journal = await open_journal(path, campaign=CLOSING)
    try:
        await journal.add_specs(
            JobSpec(s["id"], Service(s["service"]), s["request"], source=f"test:{n}")
            for n, s in enumerate([spec(CLOSING, "bedrock"), spec(LINK, "personalize")], 1)
        )
        job = await journal.get(CLOSING)
        assert job is not None
        job = await journal.transition(job, Event.CLAIM)
        await journal.transition(job, Event.REJECT, last_error=ERROR)
    finally:
        await journal.aclose()


def assert_literal(output: str, *values: str) -> None:
    assert "\x1b]8;" not in output, "a live hyperlink was written"
    for value in values:
        assert value in output, f"{value!r} is not shown as it is:\n{output}"


@pytest.mark.parametrize(
    "query",
    [None, "jobs", "jobs[0]", "jobs[].last_error", "jobs[].{id: id, error: last_error}"],
    ids=["table", "rows", "mapping", "list", "projection"],
)
async def test_status_table_shows_hostile_ids_and_errors_as_text(
    cli: Cli, tmp_path: Path, query: str | None
) -> None:
    await hostile_journal(tmp_path / "c.db")

    result = await cli(
        "status", "--journal", "c.db", "--output", "table", *(["--query", query] if query else [])
    )

    assert result.code == 0, result
    assert "Traceback" not in result.stderr and "Error" not in result.stderr, result
    assert_literal(result.stdout, *ERROR_WORDS)
    if query != "jobs[].last_error":
        assert_literal(result.stdout, CLOSING)
    if query in (None, "jobs"):
        assert_literal(result.stdout, *LINK.split())


async def test_run_summary_table_and_notes_show_hostile_names_as_text(
    cli: Cli, make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    emu = await make_emulator(fail_rate=1.0)
    write_campaign(tmp_path / "campaign.jsonl", [spec(CLOSING, "bedrock"), spec(LINK, "bedrock")])

    result = await cli(
        "run", "campaign.jsonl", "--journal", "[bold]c.db", "--campaign-name", LINK,
        "--endpoint-url", emu.url, "--output", "table", *FAST_POLL,
    )  # fmt: skip

    assert result.code == 1, result
    assert_literal(result.stdout, LINK, "[bold]c.db")
    assert_literal(result.stderr, "'[bold]c.db'")


def run_hint(hint: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Paste a hint into a shell (with the test's own ``asyncjobs`` first on PATH)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("ASYNCJOBS_OUTPUT", None)
    return subprocess.run(["sh", "-c", hint], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def hint_after(stderr: str, marker: str) -> str:
    [line] = [line for line in stderr.splitlines() if marker in line]
    return line.split(marker, 1)[1].strip().strip("`")


async def test_the_status_hint_of_a_failed_run_is_quoted(
    cli: Cli, make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    emu = await make_emulator(fail_rate=1.0)
    write_campaign(tmp_path / "campaign.jsonl", mixed_specs(2))

    result = await cli(
        "run", "campaign.jsonl", "--journal", HOSTILE_PATH, "--endpoint-url", emu.url, *FAST_POLL
    )

    assert result.code == 1, result
    hint = hint_after(result.stderr, "see: ")
    assert hint == "asyncjobs status --journal 'x;touch PWNED $HOME [a].db' --state failed"
    pasted = run_hint(hint + " --output json", tmp_path)
    assert pasted.returncode == 0, pasted
    assert not (tmp_path / "PWNED").exists()


async def test_the_track_hint_of_cancel_is_quoted_and_says_where_to_connect(
    cli: Cli, make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    emu = await make_emulator(job_seconds=(60.0, 60.0))
    write_campaign(tmp_path / "campaign.jsonl", [spec("p", "personalize")])
    args = ("--journal", HOSTILE_PATH, "--endpoint-url", emu.url, "--output", "json")
    submitted = await cli("run", "campaign.jsonl", *args, "--no-wait", *FAST_POLL)
    assert submitted.code == 0, submitted

    result = await cli("cancel", *args)

    assert result.code == 0, result
    hint = hint_after(result.stderr, "track them with: ")
    assert shlex.split(hint) == ["asyncjobs", "--endpoint-url", emu.url, "run", "--journal", HOSTILE_PATH]
    assert hint.endswith(" run --journal 'x;touch PWNED $HOME [a].db'")


async def test_the_demo_hints_are_quoted(cli: Cli, tmp_path: Path) -> None:
    directory = "d;touch PWNED $HOME"

    result = await cli("demo", "--dir", directory, "--jobs", "4", "--output", "json")

    assert result.code == 0, result
    hint = hint_after(result.stderr, "inspect it with: ")
    assert hint == "asyncjobs status --journal 'd;touch PWNED $HOME/journal.db'"
    pasted = run_hint(hint + " --output json", tmp_path)
    assert pasted.returncode == 0, pasted
    assert not (tmp_path / "PWNED").exists()


async def test_no_verify_ssl_prints_one_warning(
    cli: Cli, make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    emu = await make_emulator()
    write_campaign(tmp_path / "campaign.jsonl", mixed_specs(2))
    args = ("--journal", "c.db", "--endpoint-url", emu.url, "--output", "json")
    warning = "asyncjobs: warning: TLS certificate verification is off (--no-verify-ssl)"

    unverified = await cli("run", "campaign.jsonl", *args, "--no-verify-ssl", *FAST_POLL)
    verified = await cli("run", *args, *FAST_POLL)
    cancelled = await cli("--no-verify-ssl", "cancel", *args)

    assert unverified.code == 0, unverified
    assert unverified.stderr.splitlines().count(warning) == 1, unverified
    assert verified.code == 0, verified
    assert "warning" not in verified.stderr, verified
    assert cancelled.code == 0, cancelled
    assert cancelled.stderr.splitlines().count(warning) == 1, cancelled
