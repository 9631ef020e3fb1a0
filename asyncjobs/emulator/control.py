"""The control routes: what ``/_emulator/*`` shows and changes, and their guard against web pages.

Introspection routes need no auth: ``GET /_emulator/stats``, ``GET /_emulator/jobs``,
``GET|POST /_emulator/config`` (POST takes a JSON object of settings),
``POST /_emulator/reset`` (forget every job and counter; no body, or ``{}``).

The routes that change state are guarded against web pages: a page in a browser on
the same machine can send a "simple" cross-origin POST (``text/plain`` or a form
type, no CORS preflight) to the emulator's port, and the harm is done whether or not
the page can read the answer. So every ``/_emulator/*`` request other than GET/HEAD
needs ``Content-Type: application/json`` (415 otherwise; a page can only send that
after a preflight, which the emulator never grants) and, if it has an ``Origin``
header, the emulator's own origin (403 otherwise). The API routes need a SigV4
``Authorization`` header, which a simple request cannot carry either.

Apart from the API pipeline (:mod:`.service`): these routes are the emulator's own, not AWS's.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from .bodies import load_json
from .http_wire import control_error, url_host
from .introspection import job_records, stats_snapshot
from .service import EmulatorService


class ControlRoutes:
    """The ``/_emulator/*`` routes of one emulator's service."""

    def __init__(self, service: EmulatorService) -> None:
        self._service = service

    async def get_stats(self, request: web.Request) -> web.Response:
        return web.json_response(stats_snapshot(self._service.state))

    async def get_jobs(self, request: web.Request) -> web.Response:
        return web.json_response(job_records(self._service.state))

    async def get_config(self, request: web.Request) -> web.Response:
        return web.json_response(self._service.state.config.as_json())

    async def post_config(self, request: web.Request) -> web.Response:
        try:
            changes = load_json(await request.read())
            if not isinstance(changes, dict):
                raise ValueError("the body must be a JSON object of settings")
            self._service.configure(self._service.state.config.replace_from_json(changes))
        except ValueError as exc:  # every setting is checked, and a bad one raises ValueError
            return control_error(400, str(exc))
        return web.json_response(self._service.state.config.as_json())

    async def post_reset(self, request: web.Request) -> web.Response:
        body = await request.read()
        if body.strip():
            try:
                value = load_json(body)
            except ValueError as exc:
                return control_error(400, str(exc))
            if value != {}:
                return control_error(400, "reset takes no settings: send no body, or {}")
        self._service.reset()
        return web.json_response({"reset": True})

    # -- the guard of the control routes

    @web.middleware
    async def guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Refuse a state-changing ``/_emulator/*`` request a web page could have sent."""
        if request.path.startswith("/_emulator/") and request.method not in ("GET", "HEAD"):
            origin = request.headers.get("Origin")
            if origin is not None and origin.lower() not in self._own_origins(request):
                return control_error(
                    403,
                    f"The emulator refuses requests from origin {origin}: only its own origin, or none "
                    "(a request not sent by a web page), may change its state",
                )
            if request.content_type != "application/json":
                return control_error(
                    415, f"Content-Type must be application/json, not {request.content_type}"
                )
        return await handler(request)

    def _own_origins(self, request: web.Request) -> frozenset[str]:
        """``http://HOST:PORT`` for the port this request came in on and every name of this host.

        The names: the address the connection reached, the one the server was asked to
        listen on, and the loopback names (127.0.0.1, localhost, [::1]).
        """
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        if not sockname:
            return frozenset()
        port = sockname[1]
        hosts = {"127.0.0.1", "localhost", "::1", str(sockname[0]), self._service.host}
        origins = {f"http://{url_host(host.lower())}:{port}" for host in hosts}
        if port == 80:  # a browser leaves the default port out
            origins |= {origin.removesuffix(":80") for origin in origins}
        return frozenset(origins)
