"""A channel to the platform through Envoy that carries the bearer token on every call.

    async with AistackClient() as client:
        health = await client.platform.GetHealth(platform_pb2.GetHealthRequest())
        asr = client.stub(asr_service_pb2_grpc.AsrServiceStub)

Streaming calls (bidirectional) also carry `x-session-affinity`, a fresh uuid per call unless the
caller sets one: Envoy hashes it to pick the replica, so a whole session stays on the replica that
holds its state.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

import grpc
from aistack.platform.v1 import platform_service_pb2_grpc as platform_grpc
from aistack_kit.config import Env

DEFAULT_URL = "localhost:8000"
AFFINITY_HEADER = "x-session-affinity"
# The launcher writes the token it generated here (`make run`).
RUN_TOKEN_FILE = Path(__file__).resolve().parents[2] / "run" / "token"
MAX_MESSAGE_BYTES = 64 * 1024 * 1024

StubT = TypeVar("StubT")

# The stubs make the interceptor classes generic; the runtime classes are not subscriptable.
if TYPE_CHECKING:
    _UnaryUnary: TypeAlias = grpc.aio.UnaryUnaryClientInterceptor[Any, Any]
    _UnaryStream: TypeAlias = grpc.aio.UnaryStreamClientInterceptor[Any, Any]
    _StreamUnary: TypeAlias = grpc.aio.StreamUnaryClientInterceptor[Any, Any]
    _StreamStream: TypeAlias = grpc.aio.StreamStreamClientInterceptor[Any, Any]
else:
    _UnaryUnary = grpc.aio.UnaryUnaryClientInterceptor
    _UnaryStream = grpc.aio.UnaryStreamClientInterceptor
    _StreamUnary = grpc.aio.StreamUnaryClientInterceptor
    _StreamStream = grpc.aio.StreamStreamClientInterceptor


def resolve_url(url: str | None = None, env: Env | None = None) -> str:
    """`host:port` of the edge: the argument, else AISTACK_URL, else localhost:8000 (scheme optional)."""
    value = url or (env or Env()).str("AISTACK_URL", DEFAULT_URL)
    for scheme in ("http://", "grpc://"):
        value = value.removeprefix(scheme)
    return value.rstrip("/")


def resolve_token(
    token: str | None = None, env: Env | None = None, token_file: Path = RUN_TOKEN_FILE
) -> str | None:
    """The argument, else AISTACK_TOKEN, else the first of API_TOKENS, else the launcher's run/token."""
    env = env or Env()
    if token:
        return token
    explicit = env.raw("AISTACK_TOKEN")
    if explicit:
        return explicit
    configured = env.str_list("API_TOKENS")
    if configured:
        return configured[0]
    try:
        return token_file.read_text().strip() or None
    except OSError:
        return None


def _with_metadata(details: grpc.aio.ClientCallDetails, extra: Sequence[tuple[str, str]]) -> Any:
    metadata = list(details.metadata or ())
    present = {key for key, _ in metadata}
    metadata += [(key, value) for key, value in extra if key not in present]
    return grpc.aio.ClientCallDetails(
        details.method,
        details.timeout,
        grpc.aio.Metadata(*metadata),
        details.credentials,
        details.wait_for_ready,
    )


class _Auth:
    def __init__(self, token: str | None) -> None:
        self.headers = [("authorization", f"Bearer {token}")] if token else []


# grpc.aio files each interceptor under the first call type it implements, so one class per type.
class _UnaryUnaryAuth(_Auth, _UnaryUnary):
    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: Any, request: Any
    ) -> Any:
        return await continuation(_with_metadata(details, self.headers), request)


class _UnaryStreamAuth(_Auth, _UnaryStream):
    async def intercept_unary_stream(
        self, continuation: Callable[..., Any], details: Any, request: Any
    ) -> Any:
        return await continuation(_with_metadata(details, self.headers), request)


class _StreamUnaryAuth(_Auth, _StreamUnary):
    async def intercept_stream_unary(
        self, continuation: Callable[..., Any], details: Any, requests: Any
    ) -> Any:
        return await continuation(_with_metadata(details, self.headers), requests)


class _StreamStreamAuth(_Auth, _StreamStream):
    """Also gives every bidirectional stream a session-affinity id, unless the caller set one."""

    async def intercept_stream_stream(
        self, continuation: Callable[..., Any], details: Any, requests: Any
    ) -> Any:
        session = [(AFFINITY_HEADER, str(uuid.uuid4()))]
        return await continuation(_with_metadata(details, [*self.headers, *session]), requests)


class AistackClient:
    def __init__(self, url: str | None = None, token: str | None = None) -> None:
        self.url = resolve_url(url)
        self.token = resolve_token(token)
        interceptors: list[Any] = [
            _UnaryUnaryAuth(self.token),
            _UnaryStreamAuth(self.token),
            _StreamUnaryAuth(self.token),
            _StreamStreamAuth(self.token),
        ]
        self.channel = grpc.aio.insecure_channel(
            self.url,
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ],
            interceptors=interceptors,
        )

    def stub(self, stub_class: Callable[[grpc.aio.Channel], StubT]) -> StubT:
        """Any generated stub class (`AsrServiceStub`, ...) bound to this channel."""
        return stub_class(self.channel)

    @property
    def platform(self) -> platform_grpc.PlatformServiceAsyncStub:
        return platform_grpc.PlatformServiceStub(self.channel)

    @staticmethod
    def new_session_metadata() -> tuple[tuple[str, str], ...]:
        """Metadata pinning calls to one replica, for a session made of several calls."""
        return ((AFFINITY_HEADER, str(uuid.uuid4())),)

    async def close(self) -> None:
        await self.channel.close(None)

    async def __aenter__(self) -> AistackClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
