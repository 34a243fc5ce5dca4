"""Server interceptors: bearer-token auth, and the one place that turns exceptions into statuses.

`RequestInterceptor` wraps every handler so that each RPC gets a request id (taken from Envoy's
`x-request-id` or made here, and sent back as initial metadata), an access-log line, Prometheus
counts, and, when it fails, a `google.rpc.Status` with one `ErrorInfo`. Unexpected exceptions become
INTERNAL with a generic message that carries the request id; the traceback goes to the log only.
"""

from __future__ import annotations

import inspect
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from grpc_status import rpc_status

from aistack_kit import errors
from aistack_kit.auth import TokenVerifier
from aistack_kit.grpc_types import Context, Handler
from aistack_kit.logs import log_fields, request_id_var
from aistack_kit.metrics import RPC_HANDLED, RPC_SECONDS

logger = logging.getLogger("aistack.rpc")

# `service@host:port` of this process, sent back on every RPC so callers (and the affinity tests)
# can see which replica answered. Set once by the server bootstrap.
_served_by = "aistack"


def set_served_by(value: str) -> None:
    global _served_by
    _served_by = value


def served_by() -> str:
    return _served_by


Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]]


def _metadata(details: grpc.HandlerCallDetails, key: str) -> str | None:
    for item_key, value in details.invocation_metadata or ():
        if item_key == key:
            return value.decode() if isinstance(value, bytes) else value
    return None


def _split_method(method: str) -> tuple[str, str]:
    service, _, name = method.lstrip("/").rpartition("/")
    return service, name


def domain_of(method: str) -> str:
    """`/aistack.asr.v1.AsrService/Recognize` -> `asr.aistack`: the ErrorInfo domain of that API."""
    service, _ = _split_method(method)
    parts = service.split(".")
    if len(parts) >= 3 and parts[0] == "aistack":
        return f"{parts[1]}.aistack"
    return "aistack"


class AuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Refuses calls without a valid bearer token before any handler runs."""

    def __init__(self, verifier: TokenVerifier) -> None:
        self._verifier = verifier

    async def intercept_service(  # type: ignore[override]  # grpc allows None: unknown method
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler | None:
        method = handler_call_details.method
        if self._verifier.is_public(method) or self._verifier.check(
            _metadata(handler_call_details, "authorization")
        ):
            return await continuation(handler_call_details)
        return _refusing_handler(
            await continuation(handler_call_details),
            errors.Unauthenticated(
                "missing or invalid bearer token: send 'Authorization: Bearer <token>'",
                reason="INVALID_TOKEN",
                domain=domain_of(method),
            ),
        )


def _refusing_handler(handler: Handler | None, error: errors.AistackError) -> Handler | None:
    if handler is None:
        return None
    status = rpc_status.to_status(errors.status_for(error, error.domain or "aistack"))

    async def refuse(_request: Any, context: Context) -> None:
        await context.abort(status.code, status.details, status.trailing_metadata)

    async def refuse_stream(_request: Any, context: Context) -> AsyncIterator[Any]:
        await context.abort(status.code, status.details, status.trailing_metadata)
        yield  # type: ignore[unreachable]  # abort raises; the yield makes this a generator

    return _rebuild(handler, unary=refuse, stream=refuse_stream)


def _rebuild(
    handler: Handler,
    *,
    unary: Callable[[Any, Context], Awaitable[Any]],
    stream: Callable[[Any, Context], AsyncIterator[Any]],
) -> Handler:
    """The same method with new behaviour, keeping its (de)serializers and cardinality."""
    kwargs = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(unary, **kwargs)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(stream, **kwargs)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(unary, **kwargs)
    return grpc.stream_stream_rpc_method_handler(stream, **kwargs)


class RequestInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Request id, access log, metrics and exception mapping for every RPC."""

    async def intercept_service(  # type: ignore[override]  # grpc allows None: unknown method
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        incoming_id = _metadata(handler_call_details, "x-request-id")
        # The aio server calls these with its aio context; the stubs type them for the sync server.
        behavior: Any = handler.unary_unary or handler.stream_unary
        stream_behavior: Any = handler.unary_stream or handler.stream_stream
        quiet = method.startswith("/grpc.health.v1.") or method.startswith("/grpc.reflection.")

        async def unary(request: Any, context: Context) -> Any:
            call = _Call(method, incoming_id, quiet)
            await call.begin(context)
            try:
                response = await behavior(request, context)
            except BaseException as exc:
                await call.fail(context, exc)
                raise
            call.finish(context)
            return response

        async def stream(request: Any, context: Context) -> AsyncIterator[Any]:
            call = _Call(method, incoming_id, quiet)
            await call.begin(context)
            try:
                responses = stream_behavior(request, context)
                if inspect.isawaitable(responses):
                    # A handler may stream with `await context.write(...)` instead of yielding, as
                    # grpc's own health Watch does.
                    await responses
                else:
                    async for response in responses:
                        yield response
            except BaseException as exc:
                await call.fail(context, exc)
                raise
            call.finish(context)

        return _rebuild(handler, unary=unary, stream=stream)


class _Call:
    """Book-keeping for one RPC."""

    def __init__(self, method: str, incoming_id: str | None, quiet: bool) -> None:
        self.method = method
        self.service, self.name = _split_method(method)
        self.request_id = incoming_id or uuid.uuid4().hex
        self.quiet = quiet
        self.started = time.perf_counter()

    async def begin(self, context: Context) -> None:
        request_id_var.set(self.request_id)
        if not self.quiet:
            await context.send_initial_metadata(
                (("x-request-id", self.request_id), ("x-served-by", served_by()))
            )

    def finish(self, context: Context, code: grpc.StatusCode | None = None) -> None:
        code = code or _code_of(context) or grpc.StatusCode.OK
        elapsed = time.perf_counter() - self.started
        RPC_HANDLED.labels(self.service, self.name, code.name).inc()
        RPC_SECONDS.labels(self.service, self.name).observe(elapsed)
        if not self.quiet:
            level = (
                logging.INFO if code in (grpc.StatusCode.OK, grpc.StatusCode.CANCELLED) else logging.WARNING
            )
            logger.log(
                level,
                "rpc",
                extra=log_fields(method=self.method, code=code.name, duration_ms=round(elapsed * 1000, 1)),
            )

    async def fail(self, context: Context, exc: BaseException) -> None:
        """Records the failure; for our own and unexpected errors, aborts with a rich status."""
        if isinstance(exc, grpc.aio.AbortError):
            self.finish(context)  # the handler (or the auth interceptor) already set the status
            return
        if isinstance(exc, errors.AistackError):
            error = exc
        elif isinstance(exc, (GeneratorExit, KeyboardInterrupt, SystemExit)) or (
            type(exc).__name__ == "CancelledError"
        ):
            self.finish(context, grpc.StatusCode.CANCELLED)
            return
        else:
            logger.error("unhandled error in %s", self.method, exc_info=exc)
            error = errors.AistackError(
                f"internal error; quote request id {self.request_id} when reporting it",
                reason="INTERNAL",
            )
        self.finish(context, error.code)
        status = rpc_status.to_status(errors.status_for(error, domain_of(self.method)))
        await context.abort(status.code, status.details, status.trailing_metadata)


def _code_of(context: Context) -> grpc.StatusCode | None:
    try:
        code: Any = context.code()
    except Exception:
        return None
    if isinstance(code, grpc.StatusCode):
        return code
    if isinstance(code, int):
        for candidate in grpc.StatusCode:
            if candidate.value[0] == code:
                return candidate
    return None
