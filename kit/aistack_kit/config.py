"""Reading and validating configuration from the environment, once, at start-up.

Every failure names the variable, so an operator knows what to fix without reading code.
"""

from __future__ import annotations

import builtins
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum


class ConfigError(ValueError):
    """A configuration variable is missing or malformed."""


class Mode(StrEnum):
    """How the platform runs: small CPU models on one machine, or the production deployment."""

    EMBEDDED = "embedded"
    PRODUCTION = "production"


class Env:
    """Typed access to a set of environment variables (os.environ by default)."""

    def __init__(self, environ: Mapping[builtins.str, builtins.str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ

    def raw(self, name: builtins.str) -> builtins.str | None:
        value = self._environ.get(name)
        return None if value is None or value.strip() == "" else value.strip()

    def str(self, name: builtins.str, default: builtins.str) -> builtins.str:
        value = self.raw(name)
        return default if value is None else value

    def required_str(self, name: builtins.str) -> builtins.str:
        value = self.raw(name)
        if value is None:
            raise ConfigError(f"{name} must be set")
        return value

    def int(
        self,
        name: builtins.str,
        default: builtins.int,
        *,
        minimum: builtins.int | None = None,
        maximum: builtins.int | None = None,
    ) -> builtins.int:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = builtins.int(value)
        except ValueError:
            raise ConfigError(f"{name} must be an integer, got {value!r}") from None
        _check_range(name, number, minimum, maximum)
        return number

    def float(
        self,
        name: builtins.str,
        default: builtins.float,
        *,
        minimum: builtins.float | None = None,
        maximum: builtins.float | None = None,
    ) -> builtins.float:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = builtins.float(value)
        except ValueError:
            raise ConfigError(f"{name} must be a number, got {value!r}") from None
        _check_range(name, number, minimum, maximum)
        return number

    def bool(self, name: builtins.str, default: builtins.bool) -> builtins.bool:
        value = self.raw(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(f"{name} must be true or false, got {value!r}")

    def choice(
        self, name: builtins.str, default: builtins.str, choices: tuple[builtins.str, ...]
    ) -> builtins.str:
        value = self.str(name, default).lower()
        if value not in choices:
            raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
        return value

    def str_list(self, name: builtins.str) -> list[builtins.str]:
        """A JSON list of strings (`["a","b"]`), as the seed's API_TOKENS; a comma list is accepted too."""
        value = self.raw(name)
        if value is None:
            return []
        if value.startswith("["):
            try:
                parsed = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{name} must be a JSON list of strings: {exc.msg}") from None
            if not isinstance(parsed, list) or not all(isinstance(item, builtins.str) for item in parsed):
                raise ConfigError(f"{name} must be a JSON list of strings")
            items = parsed
        else:
            items = value.split(",")
        return [item.strip() for item in items if item.strip()]

    def mode(self) -> Mode:
        return Mode(self.choice("AISTACK_MODE", Mode.EMBEDDED.value, tuple(m.value for m in Mode)))


def _check_range(name: str, number: float, minimum: float | None, maximum: float | None) -> None:
    if minimum is not None and number < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {number}")
    if maximum is not None and number > maximum:
        raise ConfigError(f"{name} must be <= {maximum}, got {number}")


@dataclass(frozen=True)
class ServerSettings:
    """What every service's server needs, whatever its capability."""

    service: str
    mode: Mode
    host: str
    port: int
    metrics_port: int
    api_tokens: tuple[str, ...]
    max_message_bytes: int
    shutdown_grace_seconds: float
    log_level: str
    log_format: str
    otlp_endpoint: str | None

    @classmethod
    def from_env(cls, service: str, default_port: int, env: Env | None = None) -> ServerSettings:
        env = env or Env()
        mode = env.mode()
        tokens = tuple(env.str_list("API_TOKENS"))
        if mode is Mode.PRODUCTION and not tokens:
            raise ConfigError(
                "API_TOKENS must hold at least one token in production (AISTACK_MODE=production)"
            )
        return cls(
            service=service,
            mode=mode,
            host=env.str("AISTACK_GRPC_HOST", "127.0.0.1" if mode is Mode.EMBEDDED else "0.0.0.0"),
            port=env.int("AISTACK_GRPC_PORT", default_port, minimum=0, maximum=65535),
            metrics_port=env.int("AISTACK_METRICS_PORT", 0, minimum=0, maximum=65535),
            api_tokens=tokens,
            max_message_bytes=env.int("AISTACK_MAX_MESSAGE_BYTES", 64 * 1024 * 1024, minimum=1024),
            shutdown_grace_seconds=env.float("AISTACK_SHUTDOWN_GRACE_SECONDS", 10.0, minimum=0.0),
            log_level=env.choice("AISTACK_LOG_LEVEL", "info", ("debug", "info", "warning", "error")),
            log_format=env.choice("AISTACK_LOG_FORMAT", "json", ("json", "text")),
            otlp_endpoint=env.raw("OTEL_EXPORTER_OTLP_ENDPOINT"),
        )
