"""Serving: the routes of the app (:func:`build_app`) and :class:`Emulator`, which binds and serves it.

What happens to a request is elsewhere: the API pipeline (auth, faults, throttling, the
services' handlers, S3) is :mod:`.service`'s, the ``/_emulator/*`` routes :mod:`.control`'s, the
saved state file :mod:`.saved_state`'s.
"""

from __future__ import annotations

import os
from types import TracebackType
from typing import Any

import anyio
import structlog
from aiohttp import web

from . import saved_state
from .config import EmulatorConfig
from .control import ControlRoutes
from .http_wire import url_host
from .introspection import job_records, stats_snapshot
from .saved_state import EmulatorStateError
from .service import EmulatorService
from .state import EmulatorState

__all__ = ["Emulator", "EmulatorStateError", "build_app"]

log = structlog.get_logger("asyncjobs.emulator")


def build_app(service: EmulatorService) -> web.Application:
    control = ControlRoutes(service)
    app = web.Application(client_max_size=8 * 1024 * 1024, middlewares=[control.guard, service.route_s3])
    routes = app.router
    routes.add_post("/model-invocation-job", service.bedrock, name="CreateModelInvocationJob")
    routes.add_get(
        "/model-invocation-jobs", service.bedrock, name="ListModelInvocationJobs", allow_head=False
    )
    routes.add_get(
        "/model-invocation-job/{jobIdentifier}",
        service.bedrock,
        name="GetModelInvocationJob",
        allow_head=False,
    )
    routes.add_post(
        "/model-invocation-job/{jobIdentifier}/stop", service.bedrock, name="StopModelInvocationJob"
    )
    routes.add_post("/tagResource", service.bedrock, name="TagResource")
    routes.add_post("/untagResource", service.bedrock, name="UntagResource")
    routes.add_post("/listTagsForResource", service.bedrock, name="ListTagsForResource")
    routes.add_post("/", service.personalize)
    routes.add_get("/_emulator/stats", control.get_stats)
    routes.add_get("/_emulator/jobs", control.get_jobs)
    routes.add_get("/_emulator/config", control.get_config)
    routes.add_post("/_emulator/config", control.post_config)
    routes.add_post("/_emulator/reset", control.post_reset)
    routes.add_route("*", "/{tail:.*}", service.unknown)
    return app


class Emulator:
    """The emulated Bedrock and Personalize control planes, served over HTTP.

    ``async with Emulator(config) as emu`` binds ``host:port`` on enter (port 0 picks a free
    port; a bind error raises there) and serves until exit. In a task group,
    ``url = await tg.start(Emulator(config).serve)`` does the same until cancelled.
    """

    def __init__(
        self, config: EmulatorConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self._service = EmulatorService(config or EmulatorConfig(), host)
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self._url: str | None = None

    @property
    def config(self) -> EmulatorConfig:
        return self._service.state.config

    @property
    def state(self) -> EmulatorState:
        """The jobs and counters (for tests that want to look closer than :meth:`stats`)."""
        return self._service.state

    @property
    def url(self) -> str:
        """``http://HOST:PORT``, the ``endpoint_url`` for clients; only while serving."""
        if self._url is None:
            raise RuntimeError("the emulator is not serving")
        return self._url

    @property
    def addresses(self) -> list[str]:
        """The IP address of every socket it listens on; only while serving."""
        if self._runner is None:
            raise RuntimeError("the emulator is not serving")
        return [str(address[0]) for address in self._runner.addresses]

    def stats(self) -> dict[str, Any]:
        """The counters, as ``GET /_emulator/stats`` returns them."""
        return stats_snapshot(self._service.state)

    def jobs(self) -> list[dict[str, Any]]:
        """Every job, as ``GET /_emulator/jobs`` returns them."""
        return job_records(self._service.state)

    def configure(self, **changes: Any) -> EmulatorConfig:
        """Change settings of the running emulator (rate buckets start full again)."""
        config = self.config.replace(**changes)
        self._service.configure(config)
        return config

    def reset(self) -> None:
        """Forget every job and counter."""
        self._service.reset()

    def save_state(self, path: str | os.PathLike[str]) -> None:
        """Write every job and counter, and S3 (every bucket and object), to ``path`` as JSON,
        atomically (a crash leaves the old file) and privately (mode 0600).

        With :meth:`load_state`, a new emulator (a restarted process) takes over the jobs and
        their files: their statuses follow the clock, so jobs left running have kept running
        meanwhile. Each save writes the whole of S3 again, base64-encoded (4/3 of the bytes).
        """
        saved_state.save(path, self.config, self._service.state, self._service.s3)

    def load_state(self, path: str | os.PathLike[str]) -> None:
        """Replace every job and counter, and S3, with those :meth:`save_state` wrote to ``path``.

        S3 is the process's (every emulator in it shares it): loaded into an emulator that is not
        serving yet, it is put back when that emulator starts. Raises :class:`EmulatorStateError`,
        and changes nothing, if the file cannot be read, is not a saved state of this version,
        was saved under other settings, or holds S3 objects and moto is not installed.
        """
        self._service.state = saved_state.load(path, self.config, self._service.s3)

    async def start(self) -> str:
        """Bind and start serving; returns the URL."""
        if self._runner is not None:
            raise RuntimeError("the emulator is already serving")
        runner = web.AppRunner(build_app(self._service), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._host, self._port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        host, port = runner.addresses[0][:2]
        self._service.s3.opened()
        self._runner = runner
        self._url = f"http://{url_host(host)}:{port}"
        log.info("asyncjobs.emulator.started", url=self._url)
        return self._url

    async def stop(self) -> None:
        """Stop serving (idempotent)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            with anyio.CancelScope(shield=True):
                await runner.cleanup()
            self._service.s3.closed()
            log.info("asyncjobs.emulator.stopped", url=self._url)
        self._url = None

    async def serve(self, *, task_status: anyio.abc.TaskStatus[str] = anyio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled; reports the URL to ``TaskGroup.start``."""
        url = await self.start()
        try:
            task_status.started(url)
            await anyio.sleep_forever()
        finally:
            await self.stop()

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
