"""The request pipeline: every API request, and the state, faults and rate buckets behind it.

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
that have ended are written (:meth:`EmulatorService.settle`), so they exist by the time anything
shows a job final.

The control routes (``/_emulator/*``) are :mod:`.control`'s, the shape of every answer
:mod:`.http_wire`'s, and serving :mod:`.server`'s.
"""

from __future__ import annotations

import asyncio
import time

import anyio
import structlog
from aiohttp import web
from aiohttp.typedefs import Handler
from multidict import CIMultiDict

from . import bedrock, personalize
from .calls import Call
from .config import EmulatorConfig
from .faults import Fault, FaultInjector
from .http_wire import (
    auth_fault_error,
    drop_connection,
    error_response,
    new_request_id,
    ok_response,
    scope_region,
    signed_for_s3,
    throttled_error,
)
from .limits import RateLimits
from .s3 import S3Store
from .state import EmulatorState
from .wire import INTERNAL_ERROR_MESSAGE, MISSING_AUTH_MESSAGE, ApiError

log = structlog.get_logger("asyncjobs.emulator")

#: The largest S3 request body read: S3's largest single PUT (and upload part), 5 GiB.
MAX_S3_BODY = 5 * 1024**3
_CREATES = frozenset({"CreateModelInvocationJob", "CreateBatchInferenceJob", "CreateBatchSegmentJob"})


class EmulatorService:
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
            return error_response("personalize", error, new_request_id())
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
        if not signed_for_s3(request):
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
        return error_response("bedrock", error, new_request_id())

    # -- the pipeline

    async def _handle(self, request: web.Request, service: str, operation: str) -> web.StreamResponse:
        started = time.perf_counter()
        request_id = new_request_id()
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
            return drop_connection(request)
        response: web.StreamResponse
        code: str | None = None
        try:
            if fault is Fault.ERROR:
                internal = "InternalServerException" if service == "bedrock" else "InternalFailure"
                raise ApiError(internal, INTERNAL_ERROR_MESSAGE, status=500)
            region = self._authenticate(request, service, operation)
            if not self.limits.allow(service, operation):
                stats.throttled[operation] += 1
                raise throttled_error(service, config)
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
            response = ok_response(service, result, request_id)
        except ApiError as error:
            stats.errors[error.code] += 1
            response = error_response(service, error, request_id)
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
            return drop_connection(request)
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
                raise auth_fault_error(config, service, operation)
        region = scope_region(authorization)
        return region if region is not None else config.region
