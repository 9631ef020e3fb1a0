"""The ``emulator`` command, run as ``python -m asyncjobs.emulator`` in a subprocess."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys

import pytest
from click.testing import CliRunner

from asyncjobs.emulator.cli import emulator
from asyncjobs.emulator.process import LISTENING, emulator_command, emulator_process
from tests.conftest import aws_client, bedrock_job


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
async def test_starts_answers_and_exits_0_on_a_signal(signum: signal.Signals) -> None:
    process = await asyncio.create_subprocess_exec(
        *emulator_command("--seed", "3", "--create-rate", "2", "--bedrock-max-running", "4"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
    match = LISTENING.match(line.strip())
    assert match, line
    url = match.group(1)
    async with aws_client("bedrock", url) as client:
        arn = (await client.create_model_invocation_job(**bedrock_job()))["jobArn"]
        assert (await client.get_model_invocation_job(jobIdentifier=arn))["jobArn"] == arn
    process.send_signal(signum)
    stdout, stderr = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 0
    assert stdout == b""  # the one line, and nothing else
    assert b"Traceback" not in stderr


async def test_options_reach_the_config() -> None:
    async with emulator_process(
        "--create-rate", "0", "--bedrock-max-running", "7", "--personalize-max-running", "2",
        "--job-seconds", "1,3", "--time-scale", "0.5", "--fail-rate", "0.25", "--error-rate", "0",
        "--drop-rate", "0", "--latency", "0,0.001", "--seed", "11",
        "--auth-fault", "expired-token", "--auth-fault-after", "5",
        "--limit-message", "Too busy, come back later", "--list-lag", "2.5",
    ) as emu:  # fmt: skip
        config = await asyncio.to_thread(emu.get, "config")
    assert config["create_rate"] == 0
    assert config["bedrock_max_running"] == 7
    assert config["personalize_max_running"] == 2
    assert config["job_seconds"] == [1.0, 3.0]
    assert config["time_scale"] == 0.5
    assert config["fail_rate"] == 0.25
    assert config["latency"] == [0.0, 0.001]
    assert config["seed"] == 11
    assert (config["auth_fault"], config["auth_fault_after"]) == ("expired-token", 5)
    assert config["limit_message"] == "Too busy, come back later"
    assert config["list_lag"] == 2.5


@pytest.mark.parametrize(
    "args",
    [
        ["--job-seconds", "5,1"],
        ["--job-seconds", "fast"],
        ["--fail-rate", "2"],
        ["--port", "-1"],
        ["--create-rate", "-3"],
        ["--fail-rate", "0.7", "--partial-rate", "0.7"],
        ["--no-such-option"],
        ["--auth-fault", "sometimes"],
        ["--auth-fault-after", "3"],
        ["--list-lag", "-1"],
        ["--list-lag", "soon"],
        ["--latency", "0,1e9"],
    ],
)
def test_bad_option_is_a_usage_error(args: list[str]) -> None:
    result = CliRunner().invoke(emulator, args)
    assert result.exit_code == 2, result.output
    assert "Error:" in result.output
    assert "Traceback" not in result.output


def test_bad_option_in_a_subprocess_exits_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "asyncjobs.emulator", "--latency", "3,1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Error: Invalid value for '--latency'" in result.stderr


def test_busy_port_exits_1() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "asyncjobs.emulator", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


#: Words of the warning about serving beyond the loopback interface.
UNAUTHENTICATED = "no authentication"


@pytest.mark.parametrize(("host", "warned"), [("0.0.0.0", True), ("127.0.0.1", False)])
async def test_a_host_beyond_loopback_is_warned_about_once(host: str, warned: bool) -> None:
    async with emulator_process("--host", host) as emu:
        log = emu.log_text()
    warnings = [line for line in log.splitlines() if UNAUTHENTICATED in line]
    assert len(warnings) == (1 if warned else 0), log
    if warned:
        assert host in warnings[0]
        assert "anyone who can reach it can control it" in warnings[0]
