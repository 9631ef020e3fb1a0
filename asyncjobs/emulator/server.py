"""The HTTP server: routing, authentication, throttling, injected faults, and :class:`Emulator`.

Every API request goes through one pipeline, in this order: count it, add latency,
draw a fault (a 500, or a connection dropped before or after the work), require a
SigV4 ``Authorization`` header (AccessDeniedException), refuse the caller if an
authorization fault is set (``auth_fault``: AccessDeniedException or
ExpiredTokenException), take a token from the (service, class) rate bucket
(ThrottlingException 429 / LimitExceededException), then hand the parsed
:class:`~asyncjobs.emulator.calls.Call` to the service's handler, which validates
and acts. Every response carries ``x-amzn-RequestId``.

Requests signed for S3 (a SigV4 credential scope naming ``s3``, a presigned URL, or SigV2,
whatever their path) skip that pipeline and go to moto's S3 (:mod:`.s3`): no latency, faults
or throttling, and no counters. Before S3 or any API handler answers, the outputs of jobs
that have ended are written (:meth:`_Service.settle`), so they exist by the time anything
shows a job final.

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
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
import uuid
from types import TracebackType
from typing import Any

import anyio
import structlog
from aiohttp import web
from aiohttp.typedefs import Handler
from multidict import CIMultiDict

from . import bedrock, personalize, saved_state
from .bodies import load_json
from .calls import Call
from .config import EmulatorConfig
from .faults import Fault, FaultInjector
from .introspection import job_records, stats_snapshot
from .limits import RateLimits
from .s3 import S3Store
from .saved_state import EmulatorStateError
from .state import EmulatorState
from .wire import (
    BEDROCK_STATUS,
    BEDROCK_THROTTLED_MESSAGE,
    EXPIRED_TOKEN_MESSAGE,
    INTERNAL_ERROR_MESSAGE,
    MISSING_AUTH_MESSAGE,
    RATE_EXCEEDED_MESSAGE,
    ApiError,
    access_denied_message,
)

__all__ = ["Emulator", "EmulatorStateError", "build_app"]

log = structlog.get_logger("asyncjobs.emulator")

_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/,\s]+/\d{8}/([a-z0-9-]+)/")
#: The region and service of a SigV4 credential scope.
_SCOPE = re.compile(r"Credential=[^/,\s]+/\d{8}/([a-z0-9-]+)/([a-z0-9-]+)/aws4_request")
#: The largest S3 request body read: S3's largest single PUT (and upload part), 5 GiB.
MAX_S3_BODY = 5 * 1024**3
_CREATES = frozenset({"CreateModelInvocationJob", "CreateBatchInferenceJob", "CreateBatchSegmentJob"})
_PERSONALIZE_JSON = "application/x-amz-json-1.1"


class _Service:
    """The pipeline every API request goes through, and the state behind it."""

    def __init__(self, config: EmulatorConfig, host: str = "127.0.0.1") -> None:
        #: The address the server was asked to listen on (part of its own origin).
        self.host = host
        #: The process's S3 (moto's); jobs read their inputs from it and write their outputs to it.
        self.s3 = S3Store()
        self.state = EmulatorState(config, self.s3)
        #: One settling of finished jobs' outputs at a time.
        self._settling = asyncio.Lock()
        self.faults = FaultInjector(config.seed)
        self.limits = self._limits()
        #: Signed requests seen since the authorization fault was set (see ``auth_fault_after``).
        self.auth_requests = 0

    def _limits(self) -> RateLimits:
        return RateLimits(lambda op_class: self.state.config.rate(op_class), self.state.config.clock)

    def configure(self, config: EmulatorConfig) -> None:
        old = self.state.config
        if config.seed != old.seed:
            self.faults = FaultInjector(config.seed)
        if (config.auth_fault, config.auth_fault_after) != (old.auth_fault, old.auth_fault_after):
            self.auth_requests = 0
        self.state.config = config
        self.limits = self._limits()

    def reset(self) -> None:
        config = self.state.config
        self.s3.reset()
        self.state = EmulatorState(config, self.s3)
        self.faults = FaultInjector(config.seed)
        self.limits = self._limits()
        self.auth_requests = 0

    # -- routes

    async def bedrock(self, request: web.Request) -> web.StreamResponse:
        operation: str = request.match_info.route.name or ""
        return await self._handle(request, "bedrock", operation)

    async def personalize(self, request: web.Request) -> web.StreamResponse:
        target = request.headers.get("X-Amz-Target", "")
        operation = target.removeprefix(personalize.TARGET_PREFIX)
        if not target.startswith(personalize.TARGET_PREFIX) or operation not in personalize.HANDLERS:
            error = ApiError(
                "UnknownOperationException", f"Unknown operation {target or '(no X-Amz-Target)'}"
            )
            return _error_response("personalize", error, _request_id())
        return await self._handle(request, "personalize", operation)

    async def settle(self) -> None:
        """Write the outputs of every job that has finished by now (in a worker thread)."""
        state = self.state
        if not state.outputs_due() and not self._settling.locked():
            return
        async with self._settling:  # a write under way finishes before anything reports its job final
            due = state.take_due_outputs()
            if due:
                await anyio.to_thread.run_sync(state.write_outputs, due)

    @web.middleware
    async def route_s3(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Send a request signed for S3 to the process's S3, whatever its path."""
        if not _signed_for_s3(request):
            return await handler(request)
        await self.settle()
        body = bytearray()
        async for chunk in request.content.iter_chunked(1 << 20):
            body += chunk
            if len(body) > MAX_S3_BODY:
                raise web.HTTPRequestEntityTooLarge(max_size=MAX_S3_BODY, actual_size=len(body))
        reply = await anyio.to_thread.run_sync(
            self.s3.dispatch, request.method, request.raw_path, list(request.headers.items()), bytes(body)
        )
        return web.Response(status=reply.status, body=reply.body, headers=CIMultiDict(reply.headers))

    async def unknown(self, request: web.Request) -> web.StreamResponse:
        error = ApiError("UnknownOperationException", f"No operation at {request.method} {request.path}")
        return _error_response("bedrock", error, _request_id())

    # -- the pipeline

    async def _handle(self, request: web.Request, service: str, operation: str) -> web.StreamResponse:
        started = time.perf_counter()
        request_id = _request_id()
        config = self.state.config
        stats = self.state.stats
        stats.requests[operation] += 1
        delay = self.faults.latency(config)
        if delay > 0:
            await asyncio.sleep(delay)
        fault = self.faults.draw(config, is_create=operation in _CREATES)
        if fault is not Fault.NONE:
            stats.faults[fault.value] += 1
            log.info(
                "asyncjobs.emulator.fault", fault=fault.value, operation=operation, request_id=request_id
            )
        if fault is Fault.DROP_BEFORE:
            return _drop(request)
        response: web.StreamResponse
        code: str | None = None
        try:
            if fault is Fault.ERROR:
                internal = "InternalServerException" if service == "bedrock" else "InternalFailure"
                raise ApiError(internal, INTERNAL_ERROR_MESSAGE, status=500)
            region = self._authenticate(request, service, operation)
            if not self.limits.allow(service, operation):
                stats.throttled[operation] += 1
                raise _throttled(service, config)
            call = Call(
                operation=operation,
                region=region,
                body=await request.read(),
                path_params=dict(request.match_info),
                query=dict(request.query),
            )
            handlers = bedrock.HANDLERS if service == "bedrock" else personalize.HANDLERS
            await self.settle()
            result = handlers[operation](self.state, call)
            response = _ok_response(service, result, request_id)
        except ApiError as error:
            stats.errors[error.code] += 1
            response = _error_response(service, error, request_id)
            code = error.code
        log.debug(
            "asyncjobs.emulator.request",
            operation=operation,
            status=response.status,
            code=code,
            fault=None if fault is Fault.NONE else fault.value,
            request_id=request_id,
            ms=round((time.perf_counter() - started) * 1000, 3),
        )
        if fault is Fault.DROP_AFTER:
            return _drop(request)
        return response

    def _authenticate(self, request: web.Request, service: str, operation: str) -> str:
        """The caller's region (from the SigV4 credential scope).

        AccessDenied if unsigned; the configured ``auth_fault`` once ``auth_fault_after``
        signed requests have passed.
        """
        authorization = request.headers.get("Authorization")
        if not authorization:
            raise ApiError("AccessDeniedException", MISSING_AUTH_MESSAGE, status=403)
        config = self.state.config
        if config.auth_fault is not None:
            self.auth_requests += 1
            if self.auth_requests > config.auth_fault_after:
                raise _auth_fault(config, service, operation)
        match = _CREDENTIAL_SCOPE.search(authorization)
        return match.group(1) if match else config.region

    # -- introspection

    async def get_stats(self, request: web.Request) -> web.Response:
        return web.json_response(stats_snapshot(self.state))

    async def get_jobs(self, request: web.Request) -> web.Response:
        return web.json_response(job_records(self.state))

    async def get_config(self, request: web.Request) -> web.Response:
        return web.json_response(self.state.config.as_json())

    async def post_config(self, request: web.Request) -> web.Response:
        try:
            changes = load_json(await request.read())
            if not isinstance(changes, dict):
                raise ValueError("the body must be a JSON object of settings")
            self.configure(self.state.config.replace_from_json(changes))
        except ValueError as exc:  # every setting is checked, and a bad one raises ValueError
            return _control_error(400, str(exc))
        return web.json_response(self.state.config.as_json())

    async def post_reset(self, request: web.Request) -> web.Response:
        body = await request.read()
        if body.strip():
            try:
                value = load_json(body)
            except ValueError as exc:
                return _control_error(400, str(exc))
            if value != {}:
                return _control_error(400, "reset takes no settings: send no body, or {}")
        self.reset()
        return web.json_response({"reset": True})

    # -- the guard of the control routes

    @web.middleware
    async def guard_control(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Refuse a state-changing ``/_emulator/*`` request a web page could have sent."""
        if request.path.startswith("/_emulator/") and request.method not in ("GET", "HEAD"):
            origin = request.headers.get("Origin")
            if origin is not None and origin.lower() not in self._own_origins(request):
                return _control_error(
                    403,
                    f"The emulator refuses requests from origin {origin}: only its own origin, or none "
                    "(a request not sent by a web page), may change its state",
                )
            if request.content_type != "application/json":
                return _control_error(
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
        hosts = {"127.0.0.1", "localhost", "::1", str(sockname[0]), self.host}
        origins = {f"http://{_url_host(host.lower())}:{port}" for host in hosts}
        if port == 80:  # a browser leaves the default port out
            origins |= {origin.removesuffix(":80") for origin in origins}
        return frozenset(origins)


def _signed_for_s3(request: web.Request) -> bool:
    """Whether the request is signed for S3: a SigV4 scope naming ``s3`` (in the Authorization header,
    or a presigned URL's ``X-Amz-Credential``), or SigV2, which only S3 still takes."""
    authorization = request.headers.get("Authorization", "")
    query = request.query
    if authorization.startswith("AWS ") or ("AWSAccessKeyId" in query and "Signature" in query):
        return True
    credential = authorization or f"Credential={query.get('X-Amz-Credential', '')}"
    scope = _SCOPE.search(credential)
    return scope is not None and scope.group(2) == "s3"


def _request_id() -> str:
    return str(uuid.uuid4())


def _auth_fault(config: EmulatorConfig, service: str, operation: str) -> ApiError:
    """The refusal of an ``auth_fault``, with the status AWS sends for it on each protocol."""
    if config.auth_fault == "expired-token":
        # REST-JSON services (Bedrock) answer 403, JSON 1.1 services (Personalize) 400.
        status = 403 if service == "bedrock" else 400
        return ApiError("ExpiredTokenException", EXPIRED_TOKEN_MESSAGE, status=status)
    message = access_denied_message(config.account_id, service, operation)
    return ApiError("AccessDeniedException", message, status=403)


def _throttled(service: str, config: EmulatorConfig) -> ApiError:
    if service == "bedrock":
        return ApiError("ThrottlingException", BEDROCK_THROTTLED_MESSAGE)
    message = RATE_EXCEEDED_MESSAGE if config.limit_message is None else config.limit_message
    return ApiError("LimitExceededException", message)


def _ok_response(service: str, result: dict[str, Any], request_id: str) -> web.Response:
    content_type = "application/json" if service == "bedrock" else _PERSONALIZE_JSON
    return web.Response(
        body=json.dumps(result).encode(),
        content_type=content_type,
        headers={"x-amzn-RequestId": request_id},
    )


def _error_response(service: str, error: ApiError, request_id: str) -> web.Response:
    headers = {"x-amzn-RequestId": request_id}
    if service == "bedrock":
        status = error.status or BEDROCK_STATUS.get(error.code, 400)
        headers["x-amzn-ErrorType"] = error.code
        content_type = "application/json"
    else:
        status = error.status or 400
        content_type = _PERSONALIZE_JSON
    body = {"__type": error.code, "message": error.message}
    return web.Response(
        status=status, body=json.dumps(body).encode(), content_type=content_type, headers=headers
    )


def _control_error(status: int, message: str) -> web.Response:
    return web.json_response({"message": message}, status=status)


def _drop(request: web.Request) -> web.StreamResponse:
    """Close the connection without a response (aiohttp then finds nothing to write to)."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    return web.Response(status=204)


def build_app(service: _Service) -> web.Application:
    app = web.Application(
        client_max_size=8 * 1024 * 1024, middlewares=[service.guard_control, service.route_s3]
    )
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
    routes.add_get("/_emulator/stats", service.get_stats)
    routes.add_get("/_emulator/jobs", service.get_jobs)
    routes.add_get("/_emulator/config", service.get_config)
    routes.add_post("/_emulator/config", service.post_config)
    routes.add_post("/_emulator/reset", service.post_reset)
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
        self._service = _Service(config or EmulatorConfig(), host)
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
        self._url = f"http://{_url_host(host)}:{port}"
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


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
