"""A real PostgreSQL server for the tests, started by pgserver (its binaries ship on PyPI): no mock,
and nothing to install by hand.

- ``postgres_server``: one server for the whole session (a Unix socket in a temporary directory).
- ``postgres_database``: a factory of fresh, empty databases on it (``make("name") -> URI``),
  dropped at teardown, so every test starts from nothing.
- :class:`OwnServer`: a server of a test's own, which the test may stop and start (outages).
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest

with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset (CI, containers)
    warnings.simplefilter("ignore")
    import pgserver
    from pgserver import _commands

_names = itertools.count()


def _admin(uri: str, statement: str) -> None:
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute(statement)


def database_uri(server_uri: str, database: str) -> str:
    """``server_uri`` (pgserver's ``postgresql://postgres:@/postgres?host=/dir``) naming ``database``."""
    parts = urlsplit(server_uri)
    return parts._replace(path=f"/{database}").geturl()


class OwnServer:
    """A PostgreSQL server in ``directory`` that a test can stop (as a restart or an outage) and start."""

    def __init__(self, directory: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._server: Any = pgserver.get_server(directory, cleanup_mode="delete")
        self.uri: str = self._server.get_uri()
        self._socket_dir = parse_qs(urlsplit(self.uri).query)["host"][0]

    def _ctl(self, *args: str) -> None:
        _commands.pg_ctl(list(args), pgdata=self._server.pgdata, user=self._server.system_user, timeout=30)

    def stop(self) -> None:
        """Stop at once (``-m fast``: sessions are ended), as a database restart or failover does."""
        self._ctl("-w", "-m", "fast", "stop")

    def start(self) -> None:
        self._ctl("-w", "-o", '-h ""', "-o", f"-k {self._socket_dir}", "-l", str(self._server.log), "start")

    def close(self) -> None:
        try:
            self._ctl("status")
        except subprocess.CalledProcessError:
            self.start()  # pgserver's clean-up expects the server it started
        self._server.cleanup()


@contextlib.contextmanager
def own_server() -> Iterator[OwnServer]:
    """A server in a new directory of its own (removed after). Not under pytest's ``tmp_path``: as
    root, pgserver runs PostgreSQL as another user, which may not enter pytest's private directories."""
    parent = Path(tempfile.mkdtemp(prefix="asyncjobs-pg-"))
    try:
        server = OwnServer(parent / "data")
        try:
            yield server
        finally:
            server.close()
    finally:
        shutil.rmtree(parent, ignore_errors=True)


#: The ``postgres_database`` fixture: ``make(label)`` gives a fresh database's URI.
MakeDatabase = Callable[[str], str]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The URI of a PostgreSQL server running for the whole session."""
    with own_server() as server:
        yield server.uri


@pytest.fixture
def postgres_database(postgres_server: str) -> Iterator[MakeDatabase]:
    """Make fresh databases: ``make(label)`` creates one and gives its URI (the same URI for one label)."""
    made: dict[str, str] = {}

    def make(label: str = "db") -> str:
        if label not in made:
            name = f"t{next(_names)}_{''.join(c for c in label if c.isalnum()).lower()}"[:60]
            _admin(postgres_server, f'CREATE DATABASE "{name}"')
            made[label] = name
        return database_uri(postgres_server, made[label])

    yield make
    for name in made.values():
        _admin(postgres_server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
