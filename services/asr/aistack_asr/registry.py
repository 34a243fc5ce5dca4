"""Model registry: names and aliases to local CTranslate2 folders, loading with a memory bound.

Weights only ever come from local folders (`local_files_only=True`, and a folder without its own
`tokenizer.json` is refused, since faster-whisper would otherwise fetch one from the hub). Models load at
start-up (`preload`) or on first use, at most `max_loaded_models` at a time; the least recently used one
is dropped first, the default last. A request already holding a dropped model finishes with it (the
reference keeps it alive), so eviction never fails a running request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from aistack_kit.config import ConfigError, Mode
from aistack_kit.errors import NotFound, Unavailable
from aistack_kit.logs import log_fields
from faster_whisper import WhisperModel
from faster_whisper.tokenizer import _LANGUAGE_CODES

from aistack_asr import bootstrap
from aistack_asr.config import PRODUCTION_MODELS, AsrSettings

logger = logging.getLogger("aistack.asr.registry")

WHISPER_LANGUAGES: tuple[str, ...] = tuple(_LANGUAGE_CODES)


@dataclass(frozen=True)
class ModelSpec:
    """A model this replica knows, whether or not its files are here."""

    name: str
    aliases: tuple[str, ...]
    path: Path | None
    compute_type: str | None
    multilingual: bool | None
    # Embedded whisper/base: the folder is assembled from the two PyPI parts on first load.
    assemble_base: bool = False

    @property
    def installed(self) -> bool:
        if self.path is None:
            return False
        if self.assemble_base:
            return bootstrap.base_parts() is not None or (self.path / "model.bin").is_file()
        return (self.path / "model.bin").is_file()


@dataclass(frozen=True)
class LoadedModel:
    """A model in memory, as handed to engines. Holding it keeps it alive through an eviction."""

    name: str
    whisper: WhisperModel
    multilingual: bool
    device: str
    compute_type: str
    path: Path
    device_index: int = 0

    @property
    def languages(self) -> tuple[str, ...]:
        return WHISPER_LANGUAGES if self.multilingual else ("en",)


@dataclass(frozen=True)
class ModelStatus:
    """What `ListModels` reports about one model."""

    name: str
    aliases: tuple[str, ...]
    installed: bool
    loaded: bool
    is_default: bool
    path: Path | None
    device: str
    compute_type: str
    multilingual: bool | None

    @property
    def languages(self) -> tuple[str, ...]:
        if self.multilingual is None:
            return ()
        return WHISPER_LANGUAGES if self.multilingual else ("en",)


def _default_aliases(name: str) -> tuple[str, ...]:
    short = name.split("/", 1)[1] if name.startswith("whisper/") else ""
    return (short, f"whisper-{short}") if short else ()


def build_specs(settings: AsrSettings) -> dict[str, ModelSpec]:
    """The catalogue: mode defaults, then folders found under the models dir, then AISTACK_ASR_MODELS."""
    specs: dict[str, ModelSpec] = {}

    def add(spec: ModelSpec) -> None:
        specs[spec.name] = spec

    if settings.mode is Mode.PRODUCTION:
        for name, aliases in PRODUCTION_MODELS.items():
            add(ModelSpec(name, aliases, settings.models_dir / name, None, None))
    else:
        add(
            ModelSpec(
                "whisper/tiny.en",
                ("tiny.en", "whisper-tiny.en", "tiny"),
                bootstrap.tiny_en_path(),
                None,
                False,
            )
        )
        add(
            ModelSpec(
                "whisper/base",
                ("base", "whisper-base"),
                settings.models_dir / "whisper" / "base",
                None,
                True,
                assemble_base=True,
            )
        )
    whisper_dir = settings.models_dir / "whisper"
    if whisper_dir.is_dir():
        for folder in sorted(p for p in whisper_dir.iterdir() if (p / "model.bin").is_file()):
            name = f"whisper/{folder.name}"
            if name not in specs:
                add(ModelSpec(name, _default_aliases(name), folder, None, None))
    for entry in settings.models:
        previous = specs.get(entry.name)
        add(
            ModelSpec(
                entry.name,
                entry.aliases or (previous.aliases if previous else _default_aliases(entry.name)),
                entry.path or (previous.path if previous else None),
                entry.compute_type,
                entry.multilingual if entry.multilingual is not None else (not entry.name.endswith(".en")),
                assemble_base=bool(previous and previous.assemble_base and entry.path is None),
            )
        )
    return specs


def _resolve_device(setting: str) -> str:
    if setting != "auto":
        return setting
    import ctranslate2

    return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"


class ModelRegistry:
    def __init__(self, settings: AsrSettings, specs: dict[str, ModelSpec] | None = None) -> None:
        self._settings = settings
        self._specs = specs if specs is not None else build_specs(settings)
        self._aliases: dict[str, str] = {}
        for spec in self._specs.values():
            for key in (spec.name, *spec.aliases):
                owner = self._aliases.setdefault(key.lower(), spec.name)
                if owner != spec.name:
                    raise ConfigError(f"AISTACK_ASR_MODELS: name {key!r} means both {owner} and {spec.name}")
        self.default_name = self._configured("AISTACK_ASR_DEFAULT_MODEL", settings.default_model)
        self.fallback_name = self._configured("AISTACK_ASR_FALLBACK_MODEL", settings.fallback_model)
        self._preload = tuple(self._configured("AISTACK_ASR_PRELOAD_MODELS", n) for n in settings.preload)
        self.device = _resolve_device(settings.device)
        self._loaded: OrderedDict[str, LoadedModel] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}

    def _configured(self, variable: str, name: str) -> str:
        canonical = self._aliases.get(name.lower())
        if canonical is None:
            raise ConfigError(f"{variable}: unknown model {name!r}; known: {', '.join(self._specs)}")
        return canonical

    # -- names ---------------------------------------------------------------------------------------

    def available_names(self) -> list[str]:
        """Installed models, the default first: what an error tells a caller to pick from."""
        names = [n for n, s in self._specs.items() if s.installed or n in self._loaded]
        return sorted(names, key=lambda n: (n != self.default_name, n))

    def resolve(self, name: str) -> str:
        """Canonical name of `name` (empty: the default); NotFound listing the available ones."""
        if not name.strip():
            return self.default_name
        canonical = self._aliases.get(name.strip().lower())
        if canonical is None:
            available = self.available_names()
            raise NotFound(
                f"unknown model {name!r}; available: {', '.join(available)}",
                reason="MODEL_NOT_FOUND",
                metadata={"model": name, "available": ",".join(available)},
            )
        return canonical

    def compute_type_for(self, spec: ModelSpec) -> str:
        if spec.compute_type:
            return spec.compute_type
        return self._settings.compute_type_cuda if self.device == "cuda" else self._settings.compute_type_cpu

    def list_models(self) -> list[ModelStatus]:
        statuses = []
        for name, spec in self._specs.items():
            loaded = self._loaded.get(name)
            statuses.append(
                ModelStatus(
                    name=name,
                    aliases=spec.aliases,
                    installed=spec.installed,
                    loaded=loaded is not None,
                    is_default=name == self.default_name,
                    path=spec.path,
                    device=loaded.device if loaded else self.device,
                    compute_type=loaded.compute_type if loaded else self.compute_type_for(spec),
                    multilingual=loaded.multilingual if loaded else spec.multilingual,
                )
            )
        return sorted(statuses, key=lambda s: (not s.is_default, s.name))

    def loaded_models(self) -> list[LoadedModel]:
        return list(self._loaded.values())

    # -- loading -------------------------------------------------------------------------------------

    async def preload(self) -> None:
        """Loads the configured start-up models (the default first); a failure stops the start-up."""
        for name in dict.fromkeys((self.default_name, *self._preload)):
            await self._load(self._specs[name])

    async def acquire(self, name: str, *, allow_fallback: bool = False) -> LoadedModel:
        """The loaded model for `name`, loading it if allowed.

        Unknown: NotFound MODEL_NOT_FOUND. Known but not loadable here (not installed, load failed, or
        on-demand loading off): the fallback model when `allow_fallback`, else NotFound
        MODEL_NOT_INSTALLED / Unavailable MODEL_NOT_LOADED or MODEL_LOAD_FAILED.
        """
        canonical = self.resolve(name)
        loaded = self._loaded.get(canonical)
        if loaded is not None:
            self._loaded.move_to_end(canonical)
            return loaded
        try:
            if not self._settings.load_on_demand:
                raise Unavailable(
                    f"model {canonical} is not loaded on this replica and on-demand loading is off",
                    reason="MODEL_NOT_LOADED",
                    metadata={"model": canonical, "loaded": ",".join(self._loaded)},
                )
            return await self._load(self._specs[canonical])
        except (NotFound, Unavailable) as exc:
            if allow_fallback and canonical != self.fallback_name:
                logger.warning(
                    "model fallback",
                    extra=log_fields(model=canonical, fallback=self.fallback_name, reason=exc.reason),
                )
                return await self.acquire(self.fallback_name)
            raise

    async def _load(self, spec: ModelSpec) -> LoadedModel:
        lock = self._locks.setdefault(spec.name, asyncio.Lock())
        async with lock:
            loaded = self._loaded.get(spec.name)
            if loaded is not None:
                return loaded
            if not spec.installed or spec.path is None:
                available = self.available_names()
                where = str(spec.path) if spec.path else "(no path configured)"
                raise NotFound(
                    f"model {spec.name} is not installed on this replica: no CTranslate2 model at {where}; "
                    f"available: {', '.join(available)}",
                    reason="MODEL_NOT_INSTALLED",
                    metadata={"model": spec.name, "path": where, "available": ",".join(available)},
                )
            loaded = await asyncio.to_thread(self._load_blocking, spec, spec.path)
            self._loaded[spec.name] = loaded
            self._evict()
            return loaded

    def _load_blocking(self, spec: ModelSpec, path: Path) -> LoadedModel:
        started = time.perf_counter()
        try:
            if spec.assemble_base:
                bootstrap.ensure_whisper_base(path)
            if not (path / "tokenizer.json").is_file():
                raise FileNotFoundError(f"{path / 'tokenizer.json'} is missing")
            compute_type = self.compute_type_for(spec)
            whisper = WhisperModel(
                str(path),
                device=self.device,
                compute_type=compute_type,
                cpu_threads=self._settings.cpu_threads,
                num_workers=self._settings.workers,
                local_files_only=True,
            )
        except Exception as exc:
            logger.exception("model load failed", extra=log_fields(model=spec.name, path=str(path)))
            raise Unavailable(
                f"model {spec.name} could not be loaded from {path}: {exc}",
                reason="MODEL_LOAD_FAILED",
                metadata={"model": spec.name, "path": str(path)},
            ) from None
        loaded = LoadedModel(
            name=spec.name,
            whisper=whisper,
            multilingual=bool(whisper.model.is_multilingual),
            device=self.device,
            compute_type=str(whisper.model.compute_type),
            path=path,
        )
        logger.info(
            "model loaded",
            extra=log_fields(
                model=spec.name,
                device=loaded.device,
                compute_type=loaded.compute_type,
                seconds=round(time.perf_counter() - started, 2),
            ),
        )
        return loaded

    def _evict(self) -> None:
        while len(self._loaded) > self._settings.max_loaded_models:
            victims = [n for n in self._loaded if n != self.default_name] or list(self._loaded)
            name = victims[0]
            del self._loaded[name]
            logger.info("model evicted", extra=log_fields(model=name, reason="max_loaded_models"))

    async def close(self) -> None:
        self._loaded.clear()
