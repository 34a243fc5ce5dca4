"""LLM service configuration: upstreams, model aliases, limits; read and validated once at start-up.

Upstreams are OpenAI-compatible servers (vLLM in production, llama.cpp's server in embedded mode).
Aliases are the names callers use; each points at one upstream and the model name that upstream serves.
Every failure names the variable, so an operator knows what to fix.

    AISTACK_LLM_UPSTREAMS   {"llm-int4": {"url": "http://llm-int4:8000/v1"}, ...}
                            per upstream: url (required, the OpenAI base URL ending in /v1), api_key,
                            timeout_seconds (a whole unary answer, or the gap between streamed chunks),
                            connect_timeout_seconds, dialect ("openai" or "llama-cpp")
    AISTACK_LLM_ALIASES     {"paneas-v1": {"upstream": "llm-int4", "model": "Qwen/Qwen2.5-14B-Instruct-AWQ"}}
    AISTACK_LLM_DEFAULT_MODEL             the alias used when a request names none
    AISTACK_LLM_EMBEDDING_MODELS          like ALIASES; upstream "local" runs a sentence-transformers
                                          folder in-process ("model" is its path)
    AISTACK_LLM_DEFAULT_EMBEDDING_MODEL   the embedding alias used when a request names none
    AISTACK_LLM_MAX_TOKENS_LIMIT          the most max_tokens a request may ask for
    AISTACK_LLM_DEFAULT_MAX_TOKENS        max_tokens when a request sets none
    AISTACK_LLM_MAX_EMBED_INPUTS          the most texts one Embed call may carry
    AISTACK_LLM_HTTP_HOST / AISTACK_LLM_HTTP_PORT   the OpenAI-compatible HTTP surface (port 0: any free;
                                          AISTACK_HTTP_PORT, set by the launcher, is read when unset)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aistack_kit.config import ConfigError, Env, Mode

LOCAL_UPSTREAM = "local"
DEFAULT_HTTP_PORT = 8055
EMBEDDED_LLAMA_PORT = 8081
DIALECTS = ("openai", "llama-cpp")


@dataclass(frozen=True)
class UpstreamConfig:
    name: str
    url: str
    api_key: str | None = None
    # The longest a whole answer (unary) or the gap between two streamed chunks may take.
    timeout_seconds: float = 300.0
    connect_timeout_seconds: float = 3.0
    # "openai" (vLLM, TEI) or "llama-cpp": llama.cpp's server takes JSON schemas in its own shape.
    dialect: str = "openai"


@dataclass(frozen=True)
class AliasConfig:
    alias: str
    upstream: str
    model: str


@dataclass(frozen=True)
class LlmConfig:
    upstreams: Mapping[str, UpstreamConfig]
    aliases: Mapping[str, AliasConfig]
    default_model: str
    embedding_models: Mapping[str, AliasConfig]
    default_embedding_model: str | None
    max_tokens_limit: int
    default_max_tokens: int
    max_embed_inputs: int
    http_host: str
    http_port: int

    @classmethod
    def from_env(cls, env: Env | None = None) -> LlmConfig:
        env = env or Env()
        mode = env.mode()
        production = mode is Mode.PRODUCTION
        upstreams = _upstreams(env, production)
        aliases = _aliases(env, "AISTACK_LLM_ALIASES", _default_aliases(production), upstreams)
        if not aliases:
            raise ConfigError("AISTACK_LLM_ALIASES must name at least one model")
        default_model = env.str("AISTACK_LLM_DEFAULT_MODEL", "paneas-v1")
        if default_model not in aliases:
            raise ConfigError(
                f"AISTACK_LLM_DEFAULT_MODEL {default_model!r} is not an alias in AISTACK_LLM_ALIASES "
                f"({', '.join(sorted(aliases))})"
            )
        embedding = _aliases(
            env, "AISTACK_LLM_EMBEDDING_MODELS", _default_embeddings(production), upstreams, allow_local=True
        )
        default_embedding = env.raw("AISTACK_LLM_DEFAULT_EMBEDDING_MODEL") or (
            next(iter(embedding)) if embedding else None
        )
        if default_embedding is not None and default_embedding not in embedding:
            raise ConfigError(
                f"AISTACK_LLM_DEFAULT_EMBEDDING_MODEL {default_embedding!r} is not in "
                f"AISTACK_LLM_EMBEDDING_MODELS ({', '.join(sorted(embedding)) or 'none'})"
            )
        clash = set(aliases) & set(embedding)
        if clash:
            raise ConfigError(
                "AISTACK_LLM_ALIASES and AISTACK_LLM_EMBEDDING_MODELS share names: "
                + ", ".join(sorted(clash))
            )
        limit = env.int("AISTACK_LLM_MAX_TOKENS_LIMIT", 4096 if production else 1024, minimum=1)
        default_max = env.int("AISTACK_LLM_DEFAULT_MAX_TOKENS", min(512, limit), minimum=1)
        if default_max > limit:
            raise ConfigError(
                f"AISTACK_LLM_DEFAULT_MAX_TOKENS ({default_max}) must be <= "
                f"AISTACK_LLM_MAX_TOKENS_LIMIT ({limit})"
            )
        return cls(
            upstreams=upstreams,
            aliases=aliases,
            default_model=default_model,
            embedding_models=embedding,
            default_embedding_model=default_embedding,
            max_tokens_limit=limit,
            default_max_tokens=default_max,
            max_embed_inputs=env.int("AISTACK_LLM_MAX_EMBED_INPUTS", 256, minimum=1),
            http_host=env.str("AISTACK_LLM_HTTP_HOST", "0.0.0.0" if production else "127.0.0.1"),
            # The launcher names every service's HTTP port AISTACK_HTTP_PORT; ours wins when both are set.
            http_port=env.int(
                "AISTACK_LLM_HTTP_PORT",
                env.int("AISTACK_HTTP_PORT", DEFAULT_HTTP_PORT, minimum=0, maximum=65535),
                minimum=0,
                maximum=65535,
            ),
        )


def _default_upstreams(production: bool) -> dict[str, Any]:
    if production:
        # Service names of the compose deployment (docs/llm.md shows the vLLM commands behind them).
        return {
            "llm-int4": {"url": "http://llm-int4:8000/v1"},
            "llm-fp16": {"url": "http://llm-fp16:8000/v1"},
            "llm-embed": {"url": "http://llm-embed:8000/v1"},
        }
    return {"llama-cpp": {"url": f"http://127.0.0.1:{EMBEDDED_LLAMA_PORT}/v1", "dialect": "llama-cpp"}}


def _default_aliases(production: bool) -> dict[str, Any]:
    if production:
        return {
            "paneas-v1": {"upstream": "llm-int4", "model": "Qwen/Qwen2.5-14B-Instruct-AWQ"},
            "qwen2.5-14b-instruct": {"upstream": "llm-fp16", "model": "Qwen/Qwen2.5-14B-Instruct"},
        }
    return {"paneas-v1": {"upstream": "llama-cpp", "model": "SmolLM2-135M-Instruct"}}


def _default_embeddings(production: bool) -> dict[str, Any]:
    if production:
        return {"bge-m3": {"upstream": "llm-embed", "model": "BAAI/bge-m3"}}
    return {"all-minilm-l6-v2": {"upstream": LOCAL_UPSTREAM, "model": ""}}


def _json_object(env: Env, name: str, default: dict[str, Any]) -> dict[str, Any]:
    raw = env.raw(name)
    if raw is None:
        return default
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{name} must be a JSON object: {exc.msg}") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{name} must be a JSON object, got {type(value).__name__}")
    return value


def _upstreams(env: Env, production: bool) -> dict[str, UpstreamConfig]:
    name = "AISTACK_LLM_UPSTREAMS"
    result = {}
    for key, spec in _json_object(env, name, _default_upstreams(production)).items():
        if not isinstance(spec, dict):
            raise ConfigError(f"{name}[{key!r}] must be an object with a 'url'")
        if key == LOCAL_UPSTREAM:
            raise ConfigError(f"{name}: {LOCAL_UPSTREAM!r} is reserved for in-process embedding models")
        url = spec.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigError(f"{name}[{key!r}].url must be an http(s) URL, got {url!r}")
        api_key = spec.get("api_key")
        if api_key is not None and not isinstance(api_key, str):
            raise ConfigError(f"{name}[{key!r}].api_key must be a string")
        dialect = spec.get("dialect", "openai")
        if dialect not in DIALECTS:
            raise ConfigError(
                f"{name}[{key!r}].dialect must be one of {', '.join(DIALECTS)}, got {dialect!r}"
            )
        result[key] = UpstreamConfig(
            name=key,
            url=url.rstrip("/"),
            api_key=api_key,
            timeout_seconds=_positive(spec, "timeout_seconds", 300.0, f"{name}[{key!r}]"),
            connect_timeout_seconds=_positive(spec, "connect_timeout_seconds", 3.0, f"{name}[{key!r}]"),
            dialect=dialect,
        )
    return result


def _positive(spec: Mapping[str, Any], key: str, default: float, where: str) -> float:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"{where}.{key} must be a positive number, got {value!r}")
    return float(value)


def _aliases(
    env: Env,
    name: str,
    default: dict[str, Any],
    upstreams: Mapping[str, UpstreamConfig],
    *,
    allow_local: bool = False,
) -> dict[str, AliasConfig]:
    result = {}
    for alias, spec in _json_object(env, name, default).items():
        if not isinstance(spec, dict):
            raise ConfigError(f"{name}[{alias!r}] must be an object with 'upstream' and 'model'")
        upstream = spec.get("upstream")
        model = spec.get("model", "")
        if not isinstance(model, str):
            raise ConfigError(f"{name}[{alias!r}].model must be a string")
        local = allow_local and upstream == LOCAL_UPSTREAM
        if not local and upstream not in upstreams:
            raise ConfigError(
                f"{name}[{alias!r}].upstream {upstream!r} is not in AISTACK_LLM_UPSTREAMS "
                f"({', '.join(sorted(upstreams))})"
            )
        if not local and not model:
            raise ConfigError(f"{name}[{alias!r}].model must name the model the upstream serves")
        result[alias] = AliasConfig(alias=alias, upstream=str(upstream), model=model)
    return result
