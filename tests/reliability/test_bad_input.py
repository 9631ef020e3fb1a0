"""Bad input, through the real command: exit 2, one line naming file:line and the field, nothing sent.

Each case is a campaign file that is valid except for one thing (or no file at all).
``asyncjobs run`` must exit 2 with exactly one line on stderr that names where and
what is wrong, send no request to the service (the emulator counts none), and leave
no journal behind. ``test_existing_journal_is_left_unchanged`` feeds every case to
a journal that already holds a campaign and checks that its content did not change.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from asyncjobs.emulator.process import EmulatorProcess, emulator_process_sync
from tests.reliability.harness import read_journal
from tests.support.cli import Result, cli_env, run_cli
from tests.support.specs import distinct_specs, named, spec, write_campaign

GOOD = distinct_specs(3)


def lines(*extra: Any) -> bytes:
    """The three good specs, then ``extra`` lines (dicts are JSON-encoded, bytes kept as they are)."""
    out = [json.dumps(s).encode() for s in GOOD]
    out += [x if isinstance(x, bytes) else json.dumps(x).encode() for x in extra]
    return b"".join(line + b"\n" for line in out)


def without(key: str) -> dict[str, Any]:
    line = spec("new", "bedrock")
    del line[key]
    return line


def bedrock(**overrides: Any) -> dict[str, Any]:
    return spec("new", "bedrock", **overrides)


def personalize(**overrides: Any) -> dict[str, Any]:
    return spec("new", "personalize", **overrides)


@dataclass(frozen=True)
class Case:
    content: bytes | None  # None: the file does not exist
    where: str  # "campaign.jsonl:4" (or just the file name when no line applies)
    field: str | None  # the field the message must name
    words: str  # a word of the reason


CASES: dict[str, Case] = {
    "malformed-json": Case(lines(b'{"id": "new", "service": '), "campaign.jsonl:4", None, "malformed JSON"),
    "not-an-object": Case(lines([1, 2, 3]), "campaign.jsonl:4", None, "JSON object"),
    "missing-id": Case(lines(without("id")), "campaign.jsonl:4", "id", "required"),
    "missing-service": Case(lines(without("service")), "campaign.jsonl:4", "service", "required"),
    "missing-request": Case(lines(without("request")), "campaign.jsonl:4", "request", "required"),
    "unknown-service": Case(
        lines({**spec("new", "bedrock"), "service": "lambda"}), "campaign.jsonl:4", "service", "lambda"
    ),
    "duplicate-id": Case(
        lines({**spec("x", "bedrock"), "id": GOOD[0]["id"]}), "campaign.jsonl:4", "id", "duplicate"
    ),
    "duplicate-jobName": Case(
        lines(named("a", "same-name"), named("b", "same-name")),
        "campaign.jsonl:5",
        "request.jobName",
        "duplicate",
    ),
    "jobName-pattern": Case(
        lines(named("a", "no spaces allowed!")), "campaign.jsonl:4", "request.jobName", "must"
    ),
    "jobName-length": Case(lines(named("a", "n" * 64)), "campaign.jsonl:4", "request.jobName", "63"),
    "malformed-arn": Case(
        lines(bedrock(roleArn="role/BatchRole")), "campaign.jsonl:4", "request.roleArn", "must"
    ),
    "negative-numResults": Case(
        lines(personalize(numResults=-1)), "campaign.jsonl:4", "request.numResults", "at least"
    ),
    # json.loads reads any size of integer; AWS's integer members are 32-bit, and the journal
    # (orjson) stores at most 64 bits: 10**30 used to crash the journal write (exit 3)
    "huge-numResults": Case(
        lines(personalize(numResults=10**30)), "campaign.jsonl:4", "request.numResults", "2147483647"
    ),
    "numResults-2**63": Case(
        lines(personalize(numResults=2**63)), "campaign.jsonl:4", "request.numResults", "9223372036854775808"
    ),
    "numResults-2**31": Case(
        lines(personalize(numResults=2**31)), "campaign.jsonl:4", "request.numResults", "32-bit"
    ),
    "timeout-2**64": Case(
        lines(bedrock(timeoutDurationInHours=2**64)),
        "campaign.jsonl:4",
        "request.timeoutDurationInHours",
        "18446744073709551616",
    ),
    "timeout-too-long": Case(
        lines(bedrock(timeoutDurationInHours=169)),
        "campaign.jsonl:4",
        "request.timeoutDurationInHours",
        "169",
    ),
    "timeout-too-short": Case(
        lines(bedrock(timeoutDurationInHours=23)), "campaign.jsonl:4", "request.timeoutDurationInHours", "23"
    ),
    "unknown-member": Case(
        lines(bedrock(modelIdentifier="x")), "campaign.jsonl:4", "request.modelIdentifier", ""
    ),
    "missing-file": Case(None, "campaign.jsonl", None, "no such file"),
    "empty-file": Case(b"", "campaign.jsonl", None, "no job specs"),
    "not-utf8": Case(
        lines(b'{"id": "caf\xe9", "service": "bedrock", "request": {}}'), "campaign.jsonl:4", None, "UTF-8"
    ),
    "10MB-line": Case(
        lines(b'{"id": "big", "service": "bedrock", "request": {"jobName": "' + b"x" * (10 << 20) + b'"}}'),
        "campaign.jsonl:4",
        None,
        "limit",
    ),
}


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorProcess]:
    with emulator_process_sync("--seed", "1") as process:
        yield process


def write_case(directory: Path, case: Case) -> Path:
    path = directory / "campaign.jsonl"
    if case.content is not None:
        path.write_bytes(case.content)
    return path


def check_message(result: Result, case: Case) -> None:
    assert result.code == 2, result
    assert len(result.error_lines) == 1, result
    line = result.error_lines[0]
    assert line.startswith("asyncjobs: error: "), line
    assert "Traceback" not in result.stderr
    assert f"{case.where}:" in line or line.endswith(case.where), line
    if case.field is not None:
        assert f"{case.where}: {case.field}: " in line, line
    assert case.words in line, line
    assert len(line) < 500, "a one-line message, not a dump of the input"


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_exits_2_and_sends_nothing(emulator: EmulatorProcess, tmp_path: Path, name: str) -> None:
    case = CASES[name]
    campaign = write_case(tmp_path, case)

    result = run_cli(
        "run", campaign.name, "--journal", "c.db", "--endpoint-url", emulator.url, "--log-format", "json",
        cwd=tmp_path,
    )  # fmt: skip

    check_message(result, case)
    assert emulator.stats()["requests"] == {}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("c.db")] == []


#: One case of each kind of check (line syntax, request validation, ingest, the file itself).
ON_EXISTING = (
    "malformed-json",
    "timeout-too-long",
    "huge-numResults",
    "duplicate-id",
    "duplicate-jobName",
    "missing-file",
    "10MB-line",
)


def test_existing_journal_is_left_unchanged(emulator: EmulatorProcess, tmp_path: Path) -> None:
    """Cases again, each against a copy of a journal that already holds a submitted campaign."""
    base = tmp_path / "base"
    base.mkdir()
    write_campaign(base / "campaign.jsonl", GOOD)
    submitted = run_cli(
        "run", "campaign.jsonl", "--journal", "c.db", "--endpoint-url", emulator.url, "--no-wait", cwd=base
    )
    assert submitted.code == 0, submitted
    before = read_journal(base / "c.db")
    requests = emulator.stats()["requests"]

    def attempt(name: str) -> Callable[[], tuple[str, Result, Path]]:
        def go() -> tuple[str, Result, Path]:
            directory = tmp_path / name
            directory.mkdir()
            for file in base.iterdir():
                if file.name.startswith("c.db") and not file.name.endswith(".lock"):
                    shutil.copy2(file, directory / file.name)
            write_case(directory, CASES[name])
            result = run_cli(
                "run", "campaign.jsonl", "--journal", "c.db", "--endpoint-url", emulator.url,
                cwd=directory, env=cli_env(directory),
            )  # fmt: skip
            return name, result, directory

        return go

    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(pool.map(lambda go: go(), [attempt(name) for name in ON_EXISTING]))

    for name, result, directory in outcomes:
        case = CASES[name]
        # the three good lines are already journaled, so a bad one is still reported where it is
        check_message(result, case)
        after = read_journal(directory / "c.db")
        assert (after.jobs, after.events) == (before.jobs, before.events), name
    assert emulator.stats()["requests"] == requests
