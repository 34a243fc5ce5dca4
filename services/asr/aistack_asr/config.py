"""ASR configuration from the environment, validated once at start-up.

Every variable is read here (the streaming recognizer reads its own through `AsrSettings.env`), and a
bad value stops the process with a `ConfigError` that names the variable.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from aistack_kit.config import ConfigError, Env, Mode

# Canonical names of the production catalogue and their aliases. Weights live under
# `AISTACK_ASR_MODELS_DIR/<canonical name>` (CTranslate2 folders: model.bin, config.json, tokenizer.json).
PRODUCTION_MODELS: dict[str, tuple[str, ...]] = {
    "whisper/medium": ("medium", "whisper-medium"),
    "whisper/small": ("small", "whisper-small"),
    "whisper/large-v3": ("large-v3", "large", "whisper-large-v3"),
    "whisper/large-v3-turbo": ("large-v3-turbo", "turbo", "whisper-large-v3-turbo"),
}
EMBEDDED_DEFAULT = "whisper/base"
EMBEDDED_FALLBACK = "whisper/tiny.en"
PRODUCTION_DEFAULT = "whisper/medium"
PRODUCTION_FALLBACK = "whisper/small"

DEVICES = ("auto", "cpu", "cuda")
COMPUTE_TYPES = (
    "default",
    "auto",
    "int8",
    "int8_float16",
    "int8_bfloat16",
    "int8_float32",
    "int16",
    "float16",
    "bfloat16",
    "float32",
)


def workers(env: Env) -> int:
    """AISTACK_ASR_WORKERS: CTranslate2 workers, and batches the streaming batcher decodes at once.

    On a GPU the default is 2: one worker computes the next batch's features on the CPU while the GPU
    decodes the other's (350 -> 462-500 live sessions per H100 in docs/asr-multi-gpu.md's runs).
    """
    default = 2 if env.raw("AISTACK_ASR_DEVICE") == "cuda" else 1
    return env.int("AISTACK_ASR_WORKERS", default, minimum=1, maximum=64)


@dataclass(frozen=True)
class ModelConfig:
    """One entry of `AISTACK_ASR_MODELS`: where a model's folder is and how to load it."""

    name: str
    path: Path | None = None
    aliases: tuple[str, ...] = ()
    compute_type: str | None = None
    # None: decided from the name (`.en` models are English-only) until the model is loaded.
    multilingual: bool | None = None


@dataclass(frozen=True)
class AsrSettings:
    mode: Mode
    # Root of model folders: `<dir>/whisper/<name>/model.bin`. Embedded mode also assembles
    # `whisper/base` here from the two PyPI parts.
    models_dir: Path
    # Extra or overriding model entries (JSON), see `parse_models`.
    models: tuple[ModelConfig, ...]
    default_model: str
    fallback_model: str
    # Models loaded before the server reports SERVING (the default is always among them).
    preload: tuple[str, ...]
    # Load a known, installed model the first time a request asks for it.
    load_on_demand: bool
    # Memory bound: at most this many models in memory; the least recently used one is dropped.
    max_loaded_models: int
    device: str
    # Per-device default; a model entry may override it.
    compute_type_cpu: str
    compute_type_cuda: str
    cpu_threads: int
    # Concurrent transcriptions (CTranslate2 workers and the thread pool that feeds them).
    workers: int
    # Requests admitted at once (running + waiting for a worker); more are RESOURCE_EXHAUSTED.
    max_pending: int
    max_upload_bytes: int
    max_audio_seconds: float
    beam_size: int
    temperatures: tuple[float, ...]
    no_speech_threshold: float
    log_prob_threshold: float
    compression_ratio_threshold: float
    # A pause at least this long ends a region: no decoded text is carried across it as prompt.
    silence_reset_seconds: float
    vad_threshold: float
    # The variables this was read from, for parts that read their own (streaming).
    env: Env = field(default_factory=Env, compare=False, repr=False)

    @classmethod
    def from_env(cls, env: Env | None = None) -> AsrSettings:
        env = env or Env()
        mode = env.mode()
        production = mode is Mode.PRODUCTION
        models_dir = Path(
            env.str("AISTACK_ASR_MODELS_DIR", "/srv/models" if production else str(_embedded_models_dir(env)))
        )
        default = env.str("AISTACK_ASR_DEFAULT_MODEL", PRODUCTION_DEFAULT if production else EMBEDDED_DEFAULT)
        fallback = env.str(
            "AISTACK_ASR_FALLBACK_MODEL", PRODUCTION_FALLBACK if production else EMBEDDED_FALLBACK
        )
        preload_default = [default, fallback] if production else [default]
        preload = tuple(env.str_list("AISTACK_ASR_PRELOAD_MODELS") or preload_default)
        cpu_count = os.cpu_count() or 1
        temperatures = _temperatures(env.str("AISTACK_ASR_TEMPERATURES", "0.0,0.2,0.4,0.6,0.8,1.0"))
        return cls(
            mode=mode,
            models_dir=models_dir,
            models=parse_models(env.raw("AISTACK_ASR_MODELS")),
            default_model=default,
            fallback_model=fallback,
            preload=preload,
            load_on_demand=env.bool("AISTACK_ASR_LOAD_ON_DEMAND", True),
            max_loaded_models=env.int("AISTACK_ASR_MAX_LOADED_MODELS", 3 if production else 2, minimum=1),
            device=env.choice("AISTACK_ASR_DEVICE", "auto", DEVICES),
            compute_type_cpu=env.choice("AISTACK_ASR_COMPUTE_TYPE_CPU", "int8", COMPUTE_TYPES),
            compute_type_cuda=env.choice("AISTACK_ASR_COMPUTE_TYPE_CUDA", "int8_float16", COMPUTE_TYPES),
            cpu_threads=env.int("AISTACK_ASR_CPU_THREADS", cpu_count, minimum=0, maximum=256),
            workers=workers(env),
            max_pending=env.int("AISTACK_ASR_MAX_PENDING_REQUESTS", 16, minimum=1),
            max_upload_bytes=env.int("AISTACK_ASR_MAX_UPLOAD_BYTES", 50 * 1024 * 1024, minimum=1024),
            max_audio_seconds=env.float("AISTACK_ASR_MAX_AUDIO_SECONDS", 3 * 3600.0, minimum=1.0),
            beam_size=env.int("AISTACK_ASR_BEAM_SIZE", 5, minimum=1, maximum=MAX_BEAM_SIZE),
            temperatures=temperatures,
            no_speech_threshold=env.float("AISTACK_ASR_NO_SPEECH_THRESHOLD", 0.6, minimum=0.0, maximum=1.0),
            log_prob_threshold=env.float("AISTACK_ASR_LOG_PROB_THRESHOLD", -1.0, maximum=0.0),
            compression_ratio_threshold=env.float(
                "AISTACK_ASR_COMPRESSION_RATIO_THRESHOLD", 2.4, minimum=1.0
            ),
            silence_reset_seconds=env.float("AISTACK_ASR_SILENCE_RESET_SECONDS", 2.0, minimum=0.1),
            vad_threshold=env.float("AISTACK_ASR_VAD_THRESHOLD", 0.5, minimum=0.01, maximum=0.99),
            env=env,
        )


MAX_BEAM_SIZE = 16


def _embedded_models_dir(env: Env) -> Path:
    """`$AISTACK_RUN_DIR/models`, else `run/models` of the source checkout (as `make run` uses)."""
    run_dir = env.raw("AISTACK_RUN_DIR")
    if run_dir:
        return Path(run_dir) / "models"
    checkout = Path(__file__).resolve().parents[3]
    root = checkout if (checkout / "pyproject.toml").is_file() else Path.cwd()
    return root / "run" / "models"


def _temperatures(value: str) -> tuple[float, ...]:
    try:
        items = tuple(float(item) for item in value.split(",") if item.strip())
    except ValueError:
        raise ConfigError(
            f"AISTACK_ASR_TEMPERATURES must be comma-separated numbers, got {value!r}"
        ) from None
    if not items or any(not 0.0 <= t <= 1.0 for t in items):
        raise ConfigError(f"AISTACK_ASR_TEMPERATURES must hold numbers between 0 and 1, got {value!r}")
    return items


def parse_models(value: str | None) -> tuple[ModelConfig, ...]:
    """`AISTACK_ASR_MODELS`: a JSON object of canonical name to a path or to an object.

    `{"whisper/medium": "/srv/models/whisper/medium",
      "whisper/pt-call": {"path": "/srv/models/pt-call", "aliases": ["call"], "compute_type": "int8",
                          "multilingual": true}}`
    """
    if value is None:
        return ()
    name = "AISTACK_ASR_MODELS"
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{name} must be a JSON object: {exc.msg}") from None
    if not isinstance(parsed, dict):
        raise ConfigError(f"{name} must be a JSON object of model name to path or settings")
    models = []
    for model_name, entry in parsed.items():
        if not model_name.strip():
            raise ConfigError(f"{name} has an empty model name")
        if isinstance(entry, str):
            models.append(ModelConfig(model_name, Path(entry)))
            continue
        if not isinstance(entry, dict):
            raise ConfigError(f"{name}[{model_name!r}] must be a path or an object")
        unknown = set(entry) - {"path", "aliases", "compute_type", "multilingual"}
        if unknown:
            raise ConfigError(f"{name}[{model_name!r}] has unknown keys: {', '.join(sorted(unknown))}")
        path = entry.get("path")
        aliases = entry.get("aliases", [])
        compute_type = entry.get("compute_type")
        multilingual = entry.get("multilingual")
        if path is not None and not isinstance(path, str):
            raise ConfigError(f"{name}[{model_name!r}].path must be a string")
        if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
            raise ConfigError(f"{name}[{model_name!r}].aliases must be a list of strings")
        if compute_type is not None and compute_type not in COMPUTE_TYPES:
            raise ConfigError(
                f"{name}[{model_name!r}].compute_type must be one of {', '.join(COMPUTE_TYPES)}"
            )
        if multilingual is not None and not isinstance(multilingual, bool):
            raise ConfigError(f"{name}[{model_name!r}].multilingual must be true or false")
        models.append(
            ModelConfig(
                model_name,
                Path(path) if path else None,
                tuple(aliases),
                compute_type,
                multilingual,
            )
        )
    return tuple(models)
