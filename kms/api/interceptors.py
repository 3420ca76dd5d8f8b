"""The server's interceptor: request ids in structlog contextvars, Prometheus metrics, and KmsError -> gRPC status,
three parts of one interceptor (one wrapper per message instead of one per concern)."""

from __future__ import annotations

import asyncio
import inspect
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any

import grpc
import structlog

from kms import errors
from kms.api import metrics
from kms.log import get_logger
from kms.service.relay import FrameTooLarge, Overloaded, SessionIdle, SessionLimitReached

_log = get_logger("kms.api")
REQUEST_ID_HEADER = "x-request-id"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_HEALTH = "/grpc.health.v1.Health/"
Around = Callable[[grpc.aio.ServicerContext], AbstractAsyncContextManager[None]]
Hook = Callable[[], None]

# The one mapping from typed errors to gRPC status codes (most specific class first).
STATUS_FOR: tuple[tuple[type[errors.KmsError], grpc.StatusCode], ...] = (
    (Overloaded, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (SessionLimitReached, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (FrameTooLarge, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (SessionIdle, grpc.StatusCode.DEADLINE_EXCEEDED),
    (errors.EnclaveUnavailable, grpc.StatusCode.UNAVAILABLE),
    (errors.SessionError, grpc.StatusCode.ABORTED),
    (errors.Conflict, grpc.StatusCode.ABORTED),
    (errors.NotInitialized, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.KeyStateError, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.SealError, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (errors.StoreError, grpc.StatusCode.UNAVAILABLE),
    (errors.InvalidCiphertext, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.InvalidSignature, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.InvalidKey, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.Unsupported, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.InvalidRequest, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.KmsError, grpc.StatusCode.INTERNAL),
)


def status_for(exc: errors.KmsError) -> grpc.StatusCode:
    """The gRPC status code for a typed error."""
    return next(code for cls, code in STATUS_FOR if isinstance(exc, cls))


def _rpc_type(handler: grpc.RpcMethodHandler) -> str:
    return {(False, False): "unary", (True, False): "client_stream", (False, True): "server_stream",
            (True, True): "bidi_stream"}[(handler.request_streaming, handler.response_streaming)]


def wrap_handler(handler: grpc.RpcMethodHandler, around: Around, on_recv: Hook | None = None,
                 on_send: Hook | None = None) -> grpc.RpcMethodHandler:
    """The same handler, run inside `around(context)`, counting messages in and out (a stream passes through
    untouched when nothing counts it)."""
    recv, send = on_recv or (lambda: None), on_send or (lambda: None)
    behavior: Any = (handler.unary_unary or handler.unary_stream or handler.stream_unary or handler.stream_stream)

    async def counted(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
        async for request in requests:
            recv()
            yield request

    def arg(request: Any) -> Any:
        if handler.request_streaming:
            return counted(request) if on_recv is not None else request
        recv()
        return request

    if not handler.response_streaming:
        async def new(request: Any, context: grpc.aio.ServicerContext) -> Any:
            async with around(context):
                result = behavior(arg(request), context)
                result = await result if inspect.isawaitable(result) else result
                send()
                return result
    elif inspect.isasyncgenfunction(behavior):
        async def new(request: Any, context: grpc.aio.ServicerContext) -> Any:  # type: ignore[misc]
            async with around(context):
                async for response in behavior(arg(request), context):
                    send()
                    yield response
    else:  # a coroutine that writes its responses with context.write (e.g. health Watch)
        async def new(request: Any, context: grpc.aio.ServicerContext) -> Any:
            async with around(context):
                await behavior(arg(request), context)

    factory = {"unary": grpc.unary_unary_rpc_method_handler, "server_stream": grpc.unary_stream_rpc_method_handler,
               "client_stream": grpc.stream_unary_rpc_method_handler,
               "bidi_stream": grpc.stream_stream_rpc_method_handler}[_rpc_type(handler)]
    return factory(new, request_deserializer=handler.request_deserializer,
                   response_serializer=handler.response_serializer)


def _code_name(context: grpc.aio.ServicerContext, exc: BaseException | None) -> str:
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code.name
    if isinstance(code, int) and code:
        return next((c.name for c in grpc.StatusCode if c.value[0] == code), "UNKNOWN")
    if exc is None:
        return "OK"
    return "CANCELLED" if isinstance(exc, asyncio.CancelledError) else "UNKNOWN"


class _Part:
    """One concern of the server's interceptor: what it runs around each RPC, and per message in and out."""

    def parts(self, handler: grpc.RpcMethodHandler,
              details: grpc.HandlerCallDetails) -> tuple[Around, Hook | None, Hook | None]:
        raise NotImplementedError


class ServerInterceptor(grpc.aio.ServerInterceptor):
    """The parts in one interceptor, outermost first: each message passes one wrapper, not one per part."""

    def __init__(self, *parts: _Part) -> None:
        self._parts = parts

    async def intercept_service(self, continuation: Callable[[grpc.HandlerCallDetails],
                                                             Awaitable[grpc.RpcMethodHandler]],
                                details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return handler
        arounds, recvs, sends = zip(*(part.parts(handler, details) for part in self._parts), strict=True)

        @asynccontextmanager
        async def around(context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
            async with AsyncExitStack() as stack:
                for one in arounds:
                    await stack.enter_async_context(one(context))
                yield

        return wrap_handler(handler, around, _all(recvs), _all(sends))


def _all(hooks: tuple[Hook | None, ...]) -> Hook | None:
    present = [hook for hook in hooks if hook is not None]
    if len(present) <= 1:
        return present[0] if present else None

    def every() -> None:
        for hook in present:
            hook()

    return every


class RequestContextInterceptor(_Part):
    """A request id per RPC (the client's x-request-id if sane) bound to the logs; one line per finished RPC."""

    def parts(self, handler: grpc.RpcMethodHandler,
              details: grpc.HandlerCallDetails) -> tuple[Around, Hook | None, Hook | None]:
        sent = dict(details.invocation_metadata or ()).get(REQUEST_ID_HEADER)
        method = details.method

        @asynccontextmanager
        async def around(context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
            rid = sent if isinstance(sent, str) and _REQUEST_ID.match(sent) else uuid.uuid4().hex[:16]
            structlog.contextvars.clear_contextvars()
            structlog.contextvars.bind_contextvars(request_id=rid, method=method, peer=context.peer())
            try:
                await context.send_initial_metadata(((REQUEST_ID_HEADER, rid),))
            except Exception:  # best effort: the client may already be gone
                _log.debug("request id not sent")
            start, failure = time.perf_counter(), None
            try:
                yield
            except BaseException as exc:
                failure = exc
                raise
            finally:
                code = _code_name(context, failure)
                level = "info" if code in ("OK", "CANCELLED") else "warning"
                if code == "OK" and method.startswith(_HEALTH):  # probes ask every few seconds
                    level = "debug"
                getattr(_log, level)("rpc finished", grpc_code=code,
                                     duration_ms=round((time.perf_counter() - start) * 1000, 3))

        return around, None, None


class MetricsInterceptor(_Part):
    """go-grpc-prometheus metrics: started, handled by code, handling seconds, messages in and out."""

    def parts(self, handler: grpc.RpcMethodHandler,
              details: grpc.HandlerCallDetails) -> tuple[Around, Hook | None, Hook | None]:
        service, method = metrics.split_method(details.method)
        labels = {"grpc_type": _rpc_type(handler), "grpc_service": service, "grpc_method": method}
        received, sent = metrics.MSG_RECEIVED.labels(**labels), metrics.MSG_SENT.labels(**labels)

        @asynccontextmanager
        async def around(context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
            metrics.STARTED.labels(**labels).inc()
            start, failure = time.perf_counter(), None
            try:
                yield
            except BaseException as exc:
                failure = exc
                raise
            finally:
                metrics.HANDLED.labels(**labels, grpc_code=_code_name(context, failure)).inc()
                metrics.HANDLING.labels(**labels).observe(time.perf_counter() - start)

        return around, received.inc, sent.inc


class ErrorInterceptor(_Part):
    """Typed errors become their status with their (data-free) message; anything else is INTERNAL."""

    def parts(self, handler: grpc.RpcMethodHandler,
              details: grpc.HandlerCallDetails) -> tuple[Around, Hook | None, Hook | None]:
        @asynccontextmanager
        async def around(context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
            try:
                yield
            except errors.KmsError as exc:
                await context.abort(status_for(exc), str(exc))
            except (grpc.aio.AbortError, GeneratorExit):
                raise
            except Exception as exc:  # fail closed with a generic answer
                _log.error("unhandled error", error_type=type(exc).__name__, exc_info=True)
                await context.abort(grpc.StatusCode.INTERNAL, "internal error (see the server log for the request id)")

        return around, None, None


def server_interceptors() -> list[grpc.aio.ServerInterceptor]:
    """Outermost first: request context, then metrics (which see the final code), then error mapping."""
    return [ServerInterceptor(RequestContextInterceptor(), MetricsInterceptor(), ErrorInterceptor())]
