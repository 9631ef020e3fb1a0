"""What the command prints: result documents on stdout, messages for the person on stderr.

Results follow the AWS CLI: JSON or a table, after ``--query``. Messages are plain text,
prefixed ``asyncjobs:``; the hints among them are command lines a user can paste, so every
word in them is shell-quoted.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import click
import jmespath
from rich.console import Console, RenderableType

from .. import display
from .options import Globals

PROG = "asyncjobs"


def stdout_console() -> Console:
    """Tables fit the terminal; into a file or pipe they are not squeezed to 80 columns."""
    width = None if sys.stdout.isatty() else 200
    return Console(file=sys.stdout, soft_wrap=False, highlight=False, width=width)


def stderr_console() -> Console:
    return Console(file=sys.stderr, highlight=False)


def interactive() -> bool:
    """A live display when stderr is a terminal (progress goes to stderr; stdout is for results)."""
    return sys.stderr.isatty() and os.environ.get("TERM") != "dumb"


def command() -> str:
    """How to type this command again in hints: ``asyncjobs`` if it is on PATH, else the path used."""
    used = sys.argv[0] if sys.argv else PROG
    if Path(used).name != PROG or shutil.which(PROG) == str(Path(used).absolute()):
        return PROG
    return used


def shell_command(*args: str) -> str:
    """A command line to print in a hint: this command and ``args``, every word shell-quoted.

    Hints repeat paths and values the user gave (a journal named ``x;touch y``): pasted
    into a shell unquoted, they would run something else.
    """
    return shlex.join([command(), *args])


def note(message: str) -> None:
    """A message for the person at the terminal (stderr; stdout stays for results).

    Messages quote ids, paths and service errors: control characters in them are
    escaped, so they cannot drive the terminal (plain text, never rich markup).
    """
    click.echo(f"{PROG}: {display.safe_text(message)}", err=True)


def emit(g: Globals, doc: Mapping[str, Any], table: Callable[[Mapping[str, Any]], RenderableType]) -> None:
    """Print a result document: JSON or a table, after ``--query``, like the AWS CLI."""
    value: Any = doc if g.query is None else jmespath.search(g.query, doc)
    if g.output_format == "json":
        click.echo(json.dumps(value, indent=2, ensure_ascii=False))
        return
    renderable = table(doc) if g.query is None else display.generic_renderable(value)
    stdout_console().print(renderable)
