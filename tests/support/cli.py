"""The real ``asyncjobs`` command as a subprocess, with fake credentials and no AWS config.

- :func:`cli_env`: the environment: credentials that are easy to grep for (:data:`SECRET`,
  :data:`SESSION_TOKEN`: a leak anywhere is found by a plain substring search), no AWS config
  files, no metadata service, no ``ASYNCJOBS_*`` settings of the caller's.
- Blocking (reliability tests, ``make chaos``): :func:`start_cli`, :func:`run_cli`,
  :func:`finish`, and :func:`run_at_point` (the command killed or signalled at a chosen point).
- Async (acceptance tests, whose emulator runs in the test's own event loop):
  :class:`Cli` and :func:`finish_async`.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ACCESS_KEY = "AKIDRELIABILITYTEST0"
SECRET = "rel-SECRET-d0d9f3b1c2a84e7f-never-log-me"
SESSION_TOKEN = "rel-SESSIONTOKEN-5e8a1c7b9d2f4a60-never-log-me"
REPO = Path(__file__).resolve().parents[2]


def cli_env(home: Path, *, session_token: bool = True) -> dict[str, str]:
    """Environment for ``asyncjobs``: fake credentials, no AWS config files, no metadata service."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ASYNCJOBS_"))}
    env.update(
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=str(home / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(home / "no-aws-credentials"),
        AWS_EC2_METADATA_DISABLED="true",
        PYTHONUNBUFFERED="1",
    )
    if session_token:
        env["AWS_SESSION_TOKEN"] = SESSION_TOKEN
    return env


def cli_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "asyncjobs.cli", *args]


@dataclass
class Result:
    """How the command ended: its exit code and what it wrote."""

    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]

    def __str__(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.stdout[-4000:]}\n--- stderr\n{self.stderr[-4000:]}"


def journal_files(path: Path) -> list[Path]:
    """The journal at ``path`` and every file next to it whose name starts with its name."""
    return [p for p in path.parent.iterdir() if p.name.startswith(path.name)]


# ----------------------------------------------------------------------------- blocking
def start_cli(
    *args: str, cwd: Path, env: Mapping[str, str] | None = None, umask: int | None = None
) -> subprocess.Popen[bytes]:
    """Start ``asyncjobs ARGS`` in ``cwd``; stdout and stderr are pipes."""
    return subprocess.Popen(
        cli_argv(*args),
        cwd=cwd,
        env=dict(env if env is not None else cli_env(cwd)),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        umask=-1 if umask is None else umask,
    )


def finish(process: subprocess.Popen[bytes], timeout: float = 90) -> Result:
    """Wait for ``process``; SIGKILL it and fail if it takes longer than ``timeout``."""
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        raise AssertionError(
            f"asyncjobs did not finish within {timeout}s\n{err.decode(errors='replace')[-4000:]}"
        ) from None
    return Result(process.returncode, out.decode(errors="replace"), err.decode(errors="replace"))


def run_cli(
    *args: str,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 90,
    umask: int | None = None,
) -> Result:
    return finish(start_cli(*args, cwd=cwd, env=env, umask=umask), timeout)


def run_at_point(point: str, *args: str, cwd: Path, signum: str | None = None) -> Result:
    """``asyncjobs ARGS``, which SIGKILLs itself at ``point`` or, given ``signum`` (TERM, INT),
    sends itself that signal there and carries on (see :mod:`tests.reliability.killpoint`)."""
    env = cli_env(cwd)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    signalled = ["--signal", signum] if signum else []
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.killpoint", *signalled, point, "--", *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    return finish(process, 90)


# ----------------------------------------------------------------------------- async
class Cli:
    """``await cli("run", ...)`` runs ``python -m asyncjobs.cli ...`` in ``cwd`` (no session token)."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.env = cli_env(cwd, session_token=False)

    def argv(self, *args: str) -> list[str]:
        return cli_argv(*args)

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
        return await finish_async(process, stdin=stdin, within=within)


async def finish_async(
    process: asyncio.subprocess.Process, *, stdin: bytes | None = None, within: float = 90
) -> Result:
    """Wait for ``process`` (feeding it ``stdin``); SIGKILL it and fail if it takes longer than ``within``."""
    try:
        out, err = await asyncio.wait_for(process.communicate(stdin), within)
    except TimeoutError:
        process.send_signal(signal.SIGKILL)
        out, err = await process.communicate()
        raise AssertionError(f"the command did not finish in {within}s\n{err.decode()}") from None
    assert process.returncode is not None
    return Result(process.returncode, out.decode(), err.decode())
