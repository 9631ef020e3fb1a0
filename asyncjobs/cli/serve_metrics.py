"""``asyncjobs run --metrics-port``: the campaign's metrics served for Prometheus to scrape.

The command owns the registry and the server (the library never starts one): a fresh
``CollectorRegistry`` for this run, served by prometheus-client's own HTTP server in a
daemon thread, which reads only the registry (its metrics take their own locks).
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Iterator
from typing import TYPE_CHECKING

import anyio

from ..metrics import EXTRA_HINT
from .errors import EXIT_USAGE, Failure
from .output import note
from .signals import Interrupts, watching

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

DEFAULT_HOST = "127.0.0.1"


@contextlib.contextmanager
def metrics_server(host: str, port: int | None) -> Iterator[CollectorRegistry | None]:
    """A registry served on ``http://host:port/metrics`` while the block runs; None without a port.

    Port 0 picks a free port. The URL is printed on stderr; an address beyond loopback is warned
    of (the endpoint has no authentication). A port that cannot be bound is a usage error (exit 2),
    before anything is submitted.
    """
    if port is None:
        yield None
        return
    try:
        from prometheus_client import CollectorRegistry, start_http_server
    except ImportError:
        raise Failure(f"--metrics-port needs prometheus-client: {EXTRA_HINT}", EXIT_USAGE) from None
    registry = CollectorRegistry(auto_describe=True)
    try:
        server, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise Failure(f"--metrics-port {port}: cannot listen on {host}: {reason}", EXIT_USAGE) from exc
    try:
        bound = server.server_address[1]
        shown = f"[{host}]" if ":" in host else host
        note(f"metrics: http://{shown}:{bound}/metrics")
        if not is_loopback(host):
            note(f"warning: serving metrics on {host}, beyond the loopback interface (no authentication)")
        yield registry
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


async def linger(seconds: float) -> None:
    """Keep the process (and so the server) up ``seconds`` more, so a scraper can read the run's
    final figures; the first SIGINT or SIGTERM ends the wait (the run's exit code stands)."""
    note(f"metrics: serving the final figures for {seconds:g}s more")
    interrupts = Interrupts()
    async with watching(interrupts):
        with anyio.CancelScope() as scope:
            interrupts.on_first(scope.cancel, "no longer serving metrics")
            await anyio.sleep(seconds)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address or ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False
