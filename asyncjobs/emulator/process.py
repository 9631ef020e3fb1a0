"""The emulator as a separate process, for tests, benchmarks and chaos runs that need one.

A separate process keeps its counters while the runner under test is killed, and does not
share an event loop or CPU time with it. :func:`emulator_process` (async) and
:func:`emulator_process_sync` (blocking) start ``python -m asyncjobs.emulator --port 0`` with
the current interpreter, read the one ``asyncjobs emulator listening on URL`` line it prints, and
yield an :class:`EmulatorProcess` once it listens there; at exit they send SIGINT (then SIGKILL
if it lingers). Its log goes to a temporary file, shown in the error if it fails to start::

    async with emulator_process("--seed", "7", job_seconds=(2.0, 4.0)) as emu:
        session.client("bedrock", endpoint_url=emu.url, ...)

Settings are given as command options (``args``) or as :class:`~.config.EmulatorConfig` field
names (``settings``): those with an option go on the command line, the others through
``POST /_emulator/config`` before the emulator is yielded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any

__all__ = ["LISTENING", "EmulatorProcess", "emulator_command", "emulator_process", "emulator_process_sync"]

#: The line the emulator command prints once it listens.
LISTENING = re.compile(r"^asyncjobs emulator listening on (http://\S+)$")

#: The emulator command's options, by EmulatorConfig field name.
_OPTIONS = {
    "seed": "--seed",
    "create_rate": "--create-rate",
    "get_rate": "--get-rate",
    "list_rate": "--list-rate",
    "bedrock_max_running": "--bedrock-max-running",
    "personalize_max_running": "--personalize-max-running",
    "job_seconds": "--job-seconds",
}
_STARTUP_SECONDS = 30.0
_STOP_SECONDS = 10.0
#: Introspection answers can be large (every job of a benchmark): give them time.
_REQUEST_SECONDS = 120.0


@dataclass
class EmulatorProcess:
    """A running emulator: its URL, its pid, its log, and its ``/_emulator/`` routes (blocking
    calls: from async code, run them in a thread)."""

    url: str
    pid: int
    log: IO[bytes]

    def call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        """``METHOD /_emulator/<path>`` with a JSON body; its JSON answer."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}/_emulator/{path}", data=data, method=method)
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=_REQUEST_SECONDS) as response:
            return json.load(response)

    def get(self, path: str) -> Any:
        """``GET /_emulator/<path>`` as JSON."""
        return self.call("GET", path)

    def stats(self) -> dict[str, Any]:
        return dict(self.get("stats"))

    def jobs(self) -> list[dict[str, Any]]:
        return list(self.get("jobs"))

    def configure(self, **settings: Any) -> None:
        """Change the running emulator's config (EmulatorConfig field names)."""
        self.call("POST", "config", settings)

    def log_text(self) -> str:
        self.log.flush()
        with open(self.log.name, "rb") as handle:
            return handle.read().decode(errors="replace")


def emulator_command(*args: str, **settings: Any) -> list[str]:
    """The argv that starts the emulator on a free port: ``args``, then the ``settings`` that
    have a command option."""
    argv = [sys.executable, "-m", "asyncjobs.emulator", "--port", "0", "--log-level", "warning", *args]
    for name, value in settings.items():
        if name in _OPTIONS:
            text = ",".join(map(str, value)) if isinstance(value, tuple | list) else str(value)
            argv += [_OPTIONS[name], text]
    return argv


def _posted(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The settings that have no command option, as ``POST /_emulator/config`` takes them."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items() if k not in _OPTIONS}


def _started(line: bytes, pid: int, log: IO[bytes]) -> EmulatorProcess:
    """The emulator that printed ``line``, or RuntimeError with its log if it did not start."""
    match = LISTENING.match(line.decode(errors="replace").strip())
    if match is None:
        emulator = EmulatorProcess("", pid, log)
        raise RuntimeError(f"emulator did not start: {line!r}\n{emulator.log_text()}")
    return EmulatorProcess(url=match.group(1), pid=pid, log=log)


@contextlib.asynccontextmanager
async def emulator_process(
    *args: str, startup_timeout: float = _STARTUP_SECONDS, **settings: Any
) -> AsyncIterator[EmulatorProcess]:
    """Start the emulator command; yields once it listens; stops it (SIGINT, then SIGKILL) at exit."""
    with tempfile.NamedTemporaryFile(prefix="emulator-", suffix=".log") as log:
        process = await asyncio.create_subprocess_exec(
            *emulator_command(*args, **settings),
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
        assert process.stdout is not None
        try:
            try:
                line = await asyncio.wait_for(process.stdout.readline(), startup_timeout)
            except TimeoutError:
                line = b""
            emulator = _started(line, process.pid, log)
            if extra := _posted(settings):
                await asyncio.to_thread(emulator.configure, **extra)
            yield emulator
        finally:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGINT)
                try:
                    await asyncio.wait_for(process.wait(), _STOP_SECONDS)
                except TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
                    await process.wait()


@contextlib.contextmanager
def emulator_process_sync(
    *args: str, startup_timeout: float = _STARTUP_SECONDS, **settings: Any
) -> Iterator[EmulatorProcess]:
    """The blocking twin of :func:`emulator_process`, for code without an event loop."""
    with tempfile.NamedTemporaryFile(prefix="emulator-", suffix=".log") as log:
        process = subprocess.Popen(
            emulator_command(*args, **settings), stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL
        )
        assert process.stdout is not None
        try:
            line = process.stdout.readline()  # the command prints this line first, or exits
            if not LISTENING.match(line.decode(errors="replace").strip()):
                process.wait(startup_timeout)
            emulator = _started(line, process.pid, log)
            if extra := _posted(settings):
                emulator.configure(**extra)
            yield emulator
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(_STOP_SECONDS)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            process.stdout.close()
