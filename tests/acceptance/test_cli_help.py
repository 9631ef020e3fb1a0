"""The ``--help`` text of ``asyncjobs`` and of every command, against golden files.

The goldens in ``tests/acceptance/help/`` were recorded from the command before its code
was moved into a package: a move must leave every option, default and sentence as it was.
The command runs as a subprocess with a fixed terminal width, so the wrapping is the same
on every machine. After a deliberate change to the help, rewrite the goldens with
``ASYNCJOBS_WRITE_HELP=1 pytest tests/acceptance/test_cli_help.py`` and review the diff.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "help"
COMMANDS = ["run", "check", "status", "cancel", "results", "demo", "emulator"]
WIDTH = "100"


def help_text(argv: list[str], tmp_path: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ASYNCJOBS_"))}
    env.update(COLUMNS=WIDTH, LINES="50", TERM="dumb", NO_COLOR="1")
    done = subprocess.run(
        [*argv, "--help"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return done.stdout


def compare(name: str, text: str) -> None:
    golden = GOLDEN / f"{name}.txt"
    if os.environ.get("ASYNCJOBS_WRITE_HELP") == "1":
        golden.write_text(text)
    assert text == golden.read_text()


@pytest.mark.parametrize("command", ["asyncjobs", *COMMANDS])
def test_help_is_unchanged(command: str, tmp_path: Path) -> None:
    subcommand = [] if command == "asyncjobs" else [command]
    compare(command, help_text([sys.executable, "-m", "asyncjobs.cli", *subcommand], tmp_path))


def test_the_console_script_prints_the_same_help(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "asyncjobs"
    if not script.exists():
        pytest.skip("the console script is not installed next to this interpreter")
    assert help_text([str(script)], tmp_path) == (GOLDEN / "asyncjobs.txt").read_text()
