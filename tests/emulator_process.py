"""Run the emulator command as a subprocess (for crash tests, CLI tests and chaos runs).

``python -m asyncjobs.emulator --port 0 ...`` is started with the current interpreter;
the helper reads the one ``asyncjobs emulator listening on URL`` line from its stdout
and, at the end, sends SIGINT (then SIGKILL if it lingers). Logs go to a temporary
file, shown in the error if the process fails to start.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass
from typing import IO, Any

LISTENING = re.compile(r"^asyncjobs emulator listening on (http://\S+)$")


def emulator_command(*args: str) -> list[str]:
    """The argv that starts the emulator on a free port, with ``args`` appended."""
    return [sys.executable, "-m", "asyncjobs.emulator", "--port", "0", "--log-level", "warning", *args]


@dataclass
class EmulatorProcess:
    url: str
    pid: int
    log: IO[bytes]

    def get(self, path: str) -> Any:
        """GET ``/_emulator/<path>`` as JSON (blocking; use from sync code or a thread)."""
        with urllib.request.urlopen(f"{self.url}/_emulator/{path}", timeout=10) as response:
            return json.load(response)

    def stats(self) -> dict[str, Any]:
        return dict(self.get("stats"))

    def jobs(self) -> list[dict[str, Any]]:
        return list(self.get("jobs"))

    def log_text(self) -> str:
        self.log.flush()
        return _read(self.log.name)


def _read(path: str) -> str:
    with open(path, "rb") as handle:
        return handle.read().decode(errors="replace")


@asynccontextmanager
async def emulator_process(*args: str, startup_timeout: float = 20.0) -> AsyncIterator[EmulatorProcess]:
    """Start the emulator command; yields once it listens; stops it (SIGINT, then SIGKILL) at exit."""
    with tempfile.NamedTemporaryFile(prefix="emulator-", suffix=".log") as log:
        process = await asyncio.create_subprocess_exec(
            *emulator_command(*args), stdout=asyncio.subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL
        )
        assert process.stdout is not None
        try:
            try:
                line = await asyncio.wait_for(process.stdout.readline(), startup_timeout)
            except TimeoutError:
                line = b""
            match = LISTENING.match(line.decode().strip())
            if match is None:
                log.flush()
                raise RuntimeError(f"emulator did not start: {line!r}\n{_read(log.name)}")
            yield EmulatorProcess(url=match.group(1), pid=process.pid, log=log)
        finally:
            if process.returncode is None:
                with suppress(ProcessLookupError):
                    process.send_signal(signal.SIGINT)
                try:
                    await asyncio.wait_for(process.wait(), 10)
                except TimeoutError:
                    with suppress(ProcessLookupError):
                        process.kill()
                    await process.wait()


@contextmanager
def emulator_process_sync(*args: str, startup_timeout: float = 20.0) -> Iterator[EmulatorProcess]:
    """The blocking twin of :func:`emulator_process`, for code without an event loop."""
    with tempfile.NamedTemporaryFile(prefix="emulator-", suffix=".log") as log:
        process = subprocess.Popen(
            emulator_command(*args),
            stdout=subprocess.PIPE,
            stderr=log,
            stdin=subprocess.DEVNULL,
            env=os.environ,
        )
        assert process.stdout is not None
        try:
            line = process.stdout.readline()  # the command prints this line first, or exits
            match = LISTENING.match(line.decode().strip())
            if match is None:
                process.wait(startup_timeout)
                log.flush()
                raise RuntimeError(f"emulator did not start: {line!r}\n{_read(log.name)}")
            yield EmulatorProcess(url=match.group(1), pid=process.pid, log=log)
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            process.stdout.close()
