"""Helpers for driving the real ``asyncjobs`` command as a subprocess.

Tests start the emulator in-process (the ``make_emulator`` fixture) and run the
command with ``asyncio`` subprocesses, so the emulator keeps serving while the
command runs. The command gets dummy credentials and no AWS config files.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import bedrock_job, personalize_job, segment_job

SECRET = "asyncjobs-test-secret-DO-NOT-LOG-0123456789"


def cli_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID="AKIDASYNCJOBSTEST",
        AWS_SECRET_ACCESS_KEY=SECRET,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=str(tmp / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp / "no-aws-credentials"),
        AWS_EC2_METADATA_DISABLED="true",
        PYTHONUNBUFFERED="1",
    )
    env.pop("ASYNCJOBS_OUTPUT", None)
    return env


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def __str__(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


class Cli:
    """``await cli("run", ...)`` runs ``python -m asyncjobs.cli ...`` in ``cwd``."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.env = cli_env(cwd)

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "asyncjobs.cli", *args]

    async def start(self, *args: str, stdin: bytes | None = None) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            *self.argv(*args),
            cwd=self.cwd,
            env=self.env,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )

    async def __call__(self, *args: str, stdin: bytes | None = None, within: float = 90) -> Result:
        process = await self.start(*args, stdin=stdin)
        return await finish(process, stdin=stdin, within=within)


async def finish(
    process: asyncio.subprocess.Process, *, stdin: bytes | None = None, within: float = 90
) -> Result:
    try:
        out, err = await asyncio.wait_for(process.communicate(stdin), within)
    except TimeoutError:
        process.send_signal(signal.SIGKILL)
        out, err = await process.communicate()
        raise AssertionError(f"the command did not finish in {within}s\n{err.decode()}") from None
    assert process.returncode is not None
    return Result(process.returncode, out.decode(), err.decode())


def spec(spec_id: str, service: str, **overrides: Any) -> dict[str, Any]:
    """A campaign line: a valid request of ``service`` without a jobName (the engine derives it)."""
    build = {"bedrock": bedrock_job, "personalize": personalize_job, "personalize-segment": segment_job}[
        service
    ]
    request = build(**overrides)
    request.pop("jobName")
    return {"id": spec_id, "service": service, "request": request}


def mixed_specs(n: int) -> list[dict[str, Any]]:
    """``n`` specs: mostly Bedrock, with Personalize inference and segment jobs mixed in."""
    services = ("bedrock", "bedrock", "personalize", "bedrock", "personalize-segment")
    return [spec(f"job-{i:03d}", services[i % len(services)]) for i in range(n)]


def write_campaign(path: Path, specs: Iterable[Mapping[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(s) + "\n" for s in specs), encoding="utf-8")
    return path


def journal_files(path: Path) -> list[Path]:
    return [p for p in path.parent.iterdir() if p.name.startswith(path.name)]
