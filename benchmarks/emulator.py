"""The emulator as a separate process: one fresh instance per scenario and contender.

``python -m asyncjobs.emulator --port 0 ...`` is started with the current interpreter; the
helper reads its ``asyncjobs emulator listening on URL`` line, applies settings the command
has no option for through ``POST /_emulator/config``, and stops the process at the end
(SIGINT, then SIGKILL). Every request stays on the loopback interface.
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
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

LISTENING = re.compile(r"^asyncjobs emulator listening on (http://127\.0\.0\.1:\d+)$")

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

CREATE_OPERATIONS = frozenset(
    {"CreateModelInvocationJob", "CreateBatchInferenceJob", "CreateBatchSegmentJob"}
)
READ_OPERATIONS = frozenset(
    {
        "GetModelInvocationJob",
        "ListModelInvocationJobs",
        "DescribeBatchInferenceJob",
        "DescribeBatchSegmentJob",
        "ListBatchInferenceJobs",
        "ListBatchSegmentJobs",
    }
)


@dataclass
class EmulatorProcess:
    """A running emulator: its URL, its pid, and its introspection routes."""

    url: str
    pid: int

    def _call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}/_emulator/{path}", data=data, method=method)
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.load(response)

    async def stats(self) -> dict[str, Any]:
        return dict(await asyncio.to_thread(self._call, "GET", "stats"))

    async def jobs(self) -> list[dict[str, Any]]:
        return list(await asyncio.to_thread(self._call, "GET", "jobs"))

    async def configure(self, **settings: Any) -> None:
        await asyncio.to_thread(self._call, "POST", "config", settings)


def _argv(settings: Mapping[str, Any]) -> list[str]:
    argv = [sys.executable, "-m", "asyncjobs.emulator", "--host", "127.0.0.1", "--port", "0"]
    argv += ["--log-level", "warning"]
    for name, value in settings.items():
        if name in _OPTIONS:
            text = ",".join(map(str, value)) if isinstance(value, tuple | list) else str(value)
            argv += [_OPTIONS[name], text]
    return argv


@contextlib.asynccontextmanager
async def emulator(**settings: Any) -> AsyncIterator[EmulatorProcess]:
    """Start a fresh emulator with ``settings`` (EmulatorConfig field names); stop it at exit."""
    with tempfile.TemporaryFile() as log:
        process = await asyncio.create_subprocess_exec(
            *_argv(settings), stdout=asyncio.subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL
        )
        assert process.stdout is not None
        try:
            try:
                line = await asyncio.wait_for(process.stdout.readline(), 30)
            except TimeoutError:
                line = b""
            match = LISTENING.match(line.decode().strip())
            if match is None:
                log.seek(0)
                raise RuntimeError(f"emulator did not start: {line!r}\n{log.read().decode(errors='replace')}")
            emu = EmulatorProcess(url=match.group(1), pid=process.pid)
            extra = {
                k: list(v) if isinstance(v, tuple) else v for k, v in settings.items() if k not in _OPTIONS
            }
            if extra:
                await emu.configure(**extra)
            yield emu
        finally:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGINT)
                try:
                    await asyncio.wait_for(process.wait(), 10)
                except TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
                    await process.wait()


def create_calls(stats: Mapping[str, Any]) -> int:
    return sum(n for op, n in stats["requests"].items() if op in CREATE_OPERATIONS)


def read_calls(stats: Mapping[str, Any]) -> int:
    return sum(n for op, n in stats["requests"].items() if op in READ_OPERATIONS)


def create_throttles(stats: Mapping[str, Any]) -> int:
    return sum(n for op, n in stats["throttled"].items() if op in CREATE_OPERATIONS)


def read_throttles(stats: Mapping[str, Any]) -> int:
    return sum(n for op, n in stats["throttled"].items() if op in READ_OPERATIONS)
