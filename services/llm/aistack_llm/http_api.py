"""The OpenAI-compatible HTTP surface: chat completions (with SSE), models and embeddings under /api/v1.

Envoy cannot turn a gRPC stream into server-sent events, so this surface has an HTTP server of its own
(uvicorn, in the same process and event loop as the gRPC server). It only translates OpenAI JSON to and
from the same `LlmService` calls the gRPC servicer makes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import socket
import struct
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from typing import Any

import grpc
import uvicorn
from aistack_kit import errors
from aistack_kit.auth import TokenVerifier
from aistack_kit.logs import log_fields, request_id_var
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from aistack_llm.service import LlmService
from aistack_llm.types import (
    ChatDelta,
    ChatRequest,
    FormatType,
    GenerationParams,
    Message,
    ResponseFormat,
    Role,
)

logger = logging.getLogger("aistack.llm.http")

_HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}
_ERROR_TYPE = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
}


def error_body(error: errors.AistackError) -> tuple[int, dict[str, Any]]:
    """OpenAI's error shape, with our stable reason as `code` and its metadata beside it."""
    status = _HTTP_STATUS.get(error.code, 500)
    body = {
        "error": {
            "message": error.message,
            "type": _ERROR_TYPE.get(status, "server_error" if status >= 500 else "invalid_request_error"),
            "param": error.metadata.get("field"),
            "code": error.reason,
            "metadata": error.metadata,
        }
    }
    return status, body


def _error_response(error: errors.AistackError) -> JSONResponse:
    status, body = error_body(error)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, headers=headers)


class OpenAIHttpApi:
    def __init__(self, service: LlmService, verifier: TokenVerifier) -> None:
        self._service = service
        self._verifier = verifier
        self.app = Starlette(
            routes=[
                Route("/api/v1/chat/completions", self._endpoint(self.chat_completions), methods=["POST"]),
                Route("/api/v1/models", self._endpoint(self.models), methods=["GET"]),
                Route("/api/v1/embeddings", self._endpoint(self.embeddings), methods=["POST"]),
            ]
        )

    def _endpoint(self, handler: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            # Envoy's x-request-id ties this line to the edge's access log, as the gRPC interceptor does.
            request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
            request_id_var.set(request_id)
            started = time.perf_counter()
            response = await guarded(request, request_id)
            response.headers["x-request-id"] = request_id
            logger.log(
                logging.INFO if response.status_code < 400 else logging.WARNING,
                "http",
                extra=log_fields(
                    method=request.method,
                    path=request.url.path,
                    status=response.status_code,
                    # For streams: until the first token, when the status is known.
                    duration_ms=round((time.perf_counter() - started) * 1000, 1),
                ),
            )
            return response

        async def guarded(request: Request, request_id: str) -> Response:
            if not self._verifier.check(request.headers.get("authorization")):
                return _error_response(
                    errors.Unauthenticated(
                        "missing or invalid bearer token: send 'Authorization: Bearer <token>'",
                        reason="INVALID_TOKEN",
                    )
                )
            try:
                response: Response = await handler(request)
            except errors.AistackError as exc:
                return _error_response(exc)
            except Exception:
                logger.exception("unhandled error in %s", request.url.path)
                return _error_response(
                    errors.AistackError(
                        f"internal error; quote request id {request_id} when reporting it", reason="INTERNAL"
                    )
                )
            return response

        return endpoint

    # -- routes ----------------------------------------------------------------------------------

    async def models(self, request: Request) -> Response:
        data = [
            {
                "id": m.id,
                "object": "model",
                "created": 0,
                "owned_by": "aistack",
                "upstream": m.upstream,
                "upstream_model": m.upstream_model,
                "embedding": m.embedding,
                "is_default": m.is_default,
            }
            for m in self._service.list_models()
        ]
        return JSONResponse({"object": "list", "data": data})

    async def chat_completions(self, request: Request) -> Response:
        body = await _json_body(request)
        chat = _chat_request(body)
        if not _optional(body, "stream", bool, False):
            result = await self._service.chat(chat, _deadline(request))
            return JSONResponse(
                {
                    "id": result.id,
                    "object": "chat.completion",
                    "created": result.created,
                    "model": result.model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": result.content},
                            "logprobs": None,
                            "finish_reason": result.finish_reason.value,
                        }
                    ],
                    "usage": _usage_json(result),
                }
            )
        options = _optional(body, "stream_options", dict, {})
        include_usage = bool(options.get("include_usage", False))
        deltas = self._service.stream_chat(chat)
        # Wait for the first delta before sending headers, so an upstream that is down (or a
        # request it refuses) still gets a proper status code rather than a 200 with an error event.
        try:
            first = await anext(deltas)
        except BaseException:
            await deltas.aclose()
            raise
        return EventStream(_sse_events(first, deltas, include_usage), deltas)

    async def embeddings(self, request: Request) -> Response:
        body = await _json_body(request)
        raw = body.get("input")
        texts = [raw] if isinstance(raw, str) else raw
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise _bad_field(
                "input", "must be a string or a list of strings (token arrays are not supported)"
            )
        encoding = _optional(body, "encoding_format", str, "float")
        if encoding not in ("float", "base64"):
            raise _bad_field("encoding_format", f"must be float or base64, got {encoding!r}")
        result = await self._service.embed(_optional(body, "model", str, ""), texts, _deadline(request))
        data = [
            {
                "object": "embedding",
                "index": i,
                # The openai client asks for base64 by default: little-endian float32, as OpenAI sends.
                "embedding": base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode()
                if encoding == "base64"
                else v,
            }
            for i, v in enumerate(result.vectors)
        ]
        usage = {"prompt_tokens": result.usage.prompt_tokens, "total_tokens": result.usage.total_tokens}
        return JSONResponse({"object": "list", "data": data, "model": result.model, "usage": usage})


class EventStream(Response):
    """Server-sent events that stop the generation as soon as the client goes away.

    The events are sent from one task while another waits for `http.disconnect`; whichever ends first
    cancels the other, and the domain stream is closed in every case, which closes the upstream
    response and so stops generation there.
    """

    media_type = "text/event-stream"

    def __init__(self, events: AsyncIterator[bytes], source: AsyncGenerator[ChatDelta, None]) -> None:
        # Not Response.__init__: it would declare Content-Length: 0 for the missing body.
        self.status_code = 200
        self.background = None
        self.raw_headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
        ]
        self._events = events
        self._source = source

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})

        async def pump() -> None:
            async for event in self._events:
                await send({"type": "http.response.body", "body": event, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        pumping = asyncio.create_task(pump())
        watching = asyncio.create_task(watch())
        try:
            await asyncio.wait((pumping, watching), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (pumping, watching):
                task.cancel()
            results = await asyncio.gather(pumping, watching, return_exceptions=True)
            await self._source.aclose()
        error = results[0]
        if isinstance(error, Exception) and not isinstance(error, OSError):
            logger.error("event stream failed", exc_info=error)


async def _sse_events(
    first: ChatDelta, rest: AsyncIterator[ChatDelta], include_usage: bool
) -> AsyncIterator[bytes]:
    def event(payload: dict[str, Any]) -> bytes:
        return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"

    def chunk(delta: ChatDelta, content: dict[str, Any]) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "id": delta.id,
            "object": "chat.completion.chunk",
            "created": delta.created,
            "model": delta.model,
            "choices": [
                {
                    "index": 0,
                    "delta": content,
                    "logprobs": None,
                    "finish_reason": delta.finish_reason.value if delta.finish_reason else None,
                }
            ],
        }
        if include_usage:
            payload["usage"] = None
        return payload

    yield event(chunk(first, {"role": "assistant", "content": first.delta}))
    last = first
    try:
        async for delta in rest:
            last = delta
            yield event(chunk(delta, {"content": delta.delta} if delta.delta else {}))
    except errors.AistackError as exc:
        # Headers are gone already: the error travels as a last event (the openai client raises it).
        yield event(error_body(exc)[1])
        return
    except Exception:
        logger.exception("stream %s failed", first.id)
        yield event(
            error_body(errors.AistackError(f"internal error in stream {first.id}", reason="INTERNAL"))[1]
        )
        return
    if include_usage and last.usage is not None:
        yield event(
            {
                "id": last.id,
                "object": "chat.completion.chunk",
                "created": last.created,
                "model": last.model,
                "choices": [],
                "usage": {
                    "prompt_tokens": last.usage.prompt_tokens,
                    "completion_tokens": last.usage.completion_tokens,
                    "total_tokens": last.usage.total_tokens,
                },
            }
        )
    yield b"data: [DONE]\n\n"


# -- request parsing -----------------------------------------------------------------------------


def _deadline(request: Request) -> float | None:
    """Seconds the caller still waits, from x-envoy-expected-rq-timeout-ms (Envoy, internal requests)."""
    value = request.headers.get("x-envoy-expected-rq-timeout-ms")
    try:
        return int(value) / 1000 if value else None
    except ValueError:
        return None


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise errors.InvalidArgument(
            f"request body is not valid JSON: {exc}", reason="MALFORMED_JSON", metadata={"field": "body"}
        ) from None
    if not isinstance(body, dict):
        raise errors.InvalidArgument(
            "request body must be a JSON object", reason="MALFORMED_JSON", metadata={"field": "body"}
        )
    return body


def _chat_request(body: dict[str, Any]) -> ChatRequest:
    if _optional(body, "n", int, 1) != 1:
        raise _bad_field("n", "must be 1: one choice per request")
    if body.get("tools") or body.get("functions"):
        raise _bad_field("tools", "tool calling is not supported")
    raw_messages = body.get("messages")
    if raw_messages is None:
        raw_messages = []
    if not isinstance(raw_messages, list):
        raise _bad_field("messages", "must be a list of messages")
    messages = [_message(i, m) for i, m in enumerate(raw_messages)]
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int)):
        raise _bad_field("max_tokens", "must be an integer")
    stop = body.get("stop")
    stops = (stop,) if isinstance(stop, str) else tuple(stop or ())
    if not all(isinstance(s, str) for s in stops):
        raise _bad_field("stop", "must be a string or a list of strings")
    params = GenerationParams(
        temperature=_number(body, "temperature"),
        top_p=_number(body, "top_p"),
        max_tokens=max_tokens,
        stop=stops,
        seed=_optional(body, "seed", int, None),
        response_format=_response_format(body.get("response_format")),
    )
    return ChatRequest(model=_optional(body, "model", str, ""), messages=messages, params=params)


def _message(index: int, raw: object) -> Message:
    if not isinstance(raw, dict):
        raise _bad_field(f"messages[{index}]", "must be an object with role and content")
    role = Role.parse(raw.get("role"))
    content = raw.get("content")
    if content is None:
        text = ""
    elif isinstance(content, str):
        text = content
    elif isinstance(content, list):
        # Content parts: text only (no images on these models).
        parts = []
        for part in content:
            if (
                not isinstance(part, dict)
                or part.get("type") != "text"
                or not isinstance(part.get("text"), str)
            ):
                raise _bad_field(f"messages[{index}].content", "supports text parts only")
            parts.append(part["text"])
        text = "".join(parts)
    else:
        raise _bad_field(f"messages[{index}].content", "must be a string or a list of text parts")
    return Message(role, text)


def _response_format(raw: object) -> ResponseFormat:
    if raw is None:
        return ResponseFormat()
    if not isinstance(raw, dict):
        raise _bad_field("response_format", "must be an object")
    kind = raw.get("type", "text")
    if kind == "text":
        return ResponseFormat()
    if kind == "json_object":
        return ResponseFormat(type=FormatType.JSON_OBJECT)
    if kind == "json_schema":
        spec = raw.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
            raise _bad_field("response_format", "json_schema needs {'name': ..., 'schema': {...}}")
        return ResponseFormat(
            type=FormatType.JSON_SCHEMA, schema=spec["schema"], name=str(spec.get("name") or "response")
        )
    raise _bad_field("response_format", f"type must be text, json_object or json_schema, got {kind!r}")


def _optional(body: dict[str, Any], key: str, kind: type, default: Any) -> Any:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _bad_field(key, f"must be of type {kind.__name__}")
    return value


def _number(body: dict[str, Any], key: str) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad_field(key, "must be a number")
    return float(value)


def _bad_field(field: str, problem: str) -> errors.InvalidArgument:
    return errors.InvalidArgument(f"{field} {problem}", reason="INVALID_FIELD", metadata={"field": field})


def _usage_json(result: Any) -> dict[str, int]:
    return {
        "prompt_tokens": result.usage.prompt_tokens,
        "completion_tokens": result.usage.completion_tokens,
        "total_tokens": result.usage.total_tokens,
    }


# -- the server ----------------------------------------------------------------------------------


class _EmbeddedServer(uvicorn.Server):
    """uvicorn inside the gRPC server's loop: signals stay with the kit, which stops us in order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HttpServer:
    def __init__(self, app: Any, host: str, port: int, shutdown_grace_seconds: float = 5.0) -> None:
        self._app = app
        self._host = host
        self._port = port
        self._grace = shutdown_grace_seconds
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None
        self.port: int | None = None

    async def start(self) -> int:
        # Binding here (not in uvicorn) turns a taken port into an OSError naming it, where uvicorn
        # would log and call sys.exit inside the event loop.
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        # proto must say TCP: asyncio turns Nagle off (TCP_NODELAY) only on sockets that do, and with
        # Nagle on, each SSE event waits for the client's delayed ACK (~40 ms a token).
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock.bind((self._host, self._port))
        except OSError as exc:
            sock.close()
            raise OSError(
                f"could not bind {self._host}:{self._port} (AISTACK_LLM_HTTP_PORT): {exc}"
            ) from None
        sock.listen(2048)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=int(max(1, self._grace)),
            timeout_keep_alive=75,
        )
        self._server = _EmbeddedServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        deadline = time.monotonic() + 10
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise RuntimeError("the HTTP server stopped while starting")
            if time.monotonic() > deadline:
                raise RuntimeError("the HTTP server did not start within 10 s")
            await asyncio.sleep(0.01)
        return self.port

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        try:
            await asyncio.wait_for(self._task, timeout=self._grace + 5)
        except TimeoutError:
            self._task.cancel()
        self._server = None
        self._task = None
