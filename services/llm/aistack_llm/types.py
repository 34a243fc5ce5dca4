"""The LLM service's own vocabulary, shared by the domain, the engines and both protocol adapters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from aistack_kit import errors


class Role(StrEnum):
    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"

    @classmethod
    def parse(cls, value: object) -> Role:
        """The role named by a caller; anything else is the caller's mistake (400 / INVALID_ARGUMENT)."""
        try:
            return cls(str(value))
        except ValueError:
            allowed = ", ".join(role.value for role in cls)
            raise errors.InvalidArgument(
                f"unknown message role {value!r}; use one of {allowed}",
                reason="UNKNOWN_ROLE",
                metadata={"role": str(value), "allowed": allowed},
            ) from None


@dataclass(frozen=True)
class Message:
    role: Role
    content: str


class FormatType(StrEnum):
    TEXT = "text"
    JSON_OBJECT = "json_object"
    JSON_SCHEMA = "json_schema"


@dataclass(frozen=True)
class ResponseFormat:
    type: FormatType = FormatType.TEXT
    # A parsed JSON Schema, for JSON_SCHEMA.
    schema: dict[str, Any] | None = None
    # OpenAI's json_schema.name; vLLM wants one, the content does not depend on it.
    name: str = "response"


@dataclass(frozen=True)
class GenerationParams:
    temperature: float | None = None
    top_p: float | None = None
    # None: the service default.
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    response_format: ResponseFormat = field(default_factory=ResponseFormat)


@dataclass(frozen=True)
class ChatRequest:
    # Alias; "" picks the default.
    model: str
    messages: Sequence[Message]
    params: GenerationParams = field(default_factory=GenerationParams)


class FinishReason(StrEnum):
    STOP = "stop"
    LENGTH = "length"
    CONTENT_FILTER = "content_filter"

    @classmethod
    def from_upstream(cls, value: object) -> FinishReason | None:
        if value is None:
            return None
        if value in ("tool_calls", "function_call", "eos", "stop_sequence"):
            return cls.STOP
        try:
            return cls(str(value))
        except ValueError:
            return cls.STOP


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Completion:
    """What an engine returns for a whole answer."""

    content: str
    finish_reason: FinishReason
    usage: Usage


@dataclass(frozen=True)
class CompletionChunk:
    """One piece of a streamed answer as an engine sees it; usage comes on the last one, if at all."""

    delta: str = ""
    finish_reason: FinishReason | None = None
    usage: Usage | None = None


@dataclass(frozen=True)
class ChatResult:
    id: str
    # The model the alias resolved to upstream.
    model: str
    content: str
    finish_reason: FinishReason
    usage: Usage
    created: int


@dataclass(frozen=True)
class ChatDelta:
    id: str
    model: str
    delta: str
    created: int
    # Set on the last delta only, together with usage.
    finish_reason: FinishReason | None = None
    usage: Usage | None = None


@dataclass(frozen=True)
class Embeddings:
    vectors: list[list[float]]
    prompt_tokens: int


@dataclass(frozen=True)
class EmbedResult:
    model: str
    vectors: list[list[float]]
    usage: Usage


@dataclass(frozen=True)
class ModelInfo:
    id: str
    upstream_model: str
    upstream: str
    embedding: bool
    is_default: bool
