"""Coqui XTTS-v2 (`coqui-tts`, package `TTS`): the production engine, with voice cloning.

Weights come from a model folder in XTTS's own layout (config.json, model.pth, vocab.json and,
optionally, speakers_xtts.pth with the built-in speakers). Nothing is ever fetched from a hub.
torch and TTS are imported only when this engine loads, so the embedded service does not need them.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from aistack_tts.engines.base import BuiltinVoice, Conditioning, FloatAudio, VoiceRef

REQUIRED_FILES = ("config.json", "model.pth", "vocab.json")
SPEAKERS_FILE = "speakers_xtts.pth"
# The languages this platform serves (XTTS-v2 speaks more; the normalizer covers these two).
LANGUAGES = ("pt", "en")
# XTTS conditions on 22.05 kHz audio (its mel front end), and speaks at 24 kHz.
REFERENCE_RATE = 22050


def missing_files(model_dir: Path) -> list[str]:
    """What a model folder lacks, for the start-up check."""
    if not model_dir.is_dir():
        return [str(model_dir)]
    return [name for name in REQUIRED_FILES if not (model_dir / name).is_file()]


def _voice_id(speaker: str) -> str:
    return "xtts-" + re.sub(r"[^a-z0-9]+", "-", speaker.lower()).strip("-")


class XttsEngine:
    name = "xtts-v2"
    can_clone = True
    clone_languages = LANGUAGES

    def __init__(self, model_dir: Path, device: str = "auto", stream_chunk_tokens: int = 20) -> None:
        self._model_dir = model_dir
        self._device = device
        self._stream_chunk_tokens = stream_chunk_tokens
        self._model: Any = None
        self._torch: Any = None
        self._builtin: dict[str, tuple[BuiltinVoice, Any, Any]] = {}
        # One generation at a time per model: the GPT's KV cache and the decoder are not re-entrant.
        self._lock = threading.Lock()

    def load(self) -> None:
        missing = missing_files(self._model_dir)
        if missing:
            raise FileNotFoundError(f"XTTS model folder {self._model_dir} lacks: {', '.join(missing)}")
        import torch  # type: ignore[import-not-found, unused-ignore]
        from TTS.tts.configs.xtts_config import XttsConfig  # type: ignore[import-not-found, unused-ignore]
        from TTS.tts.models.xtts import Xtts  # type: ignore[import-not-found, unused-ignore]

        config = XttsConfig()
        config.load_json(str(self._model_dir / "config.json"))
        model = Xtts(config)
        model.load_checkpoint(config, checkpoint_dir=str(self._model_dir), eval=True)
        device = self._device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        model.to(device)
        self._torch = torch
        self._model = model
        self._builtin = {}
        if model.speaker_manager is not None:
            for speaker, tensors in model.speaker_manager.speakers.items():
                voice = BuiltinVoice(_voice_id(speaker), speaker, LANGUAGES)
                self._builtin[voice.voice_id] = (
                    voice,
                    tensors["gpt_cond_latent"],
                    tensors["speaker_embedding"],
                )

    def voices(self) -> Sequence[BuiltinVoice]:
        return [voice for voice, _, _ in self._builtin.values()]

    def sample_rate(self, voice: VoiceRef) -> int:
        return int(self._loaded().args.output_sample_rate)

    def _loaded(self) -> Any:
        if self._model is None:
            raise RuntimeError("XttsEngine.load() was not called")
        return self._model

    def synthesize(
        self, text: str, voice: VoiceRef, language: str, speaking_rate: float
    ) -> Iterator[FloatAudio]:
        model = self._loaded()
        torch = self._torch
        if voice.conditioning is not None:
            latent = torch.from_numpy(np.asarray(voice.conditioning["gpt_cond_latent"]))
            embedding = torch.from_numpy(np.asarray(voice.conditioning["speaker_embedding"]))
        else:
            _, latent, embedding = self._builtin[voice.voice_id]
        config = model.config
        with self._lock:
            chunks = model.inference_stream(
                text,
                language,
                latent,
                embedding,
                stream_chunk_size=self._stream_chunk_tokens,
                speed=speaking_rate,
                temperature=config.temperature,
                length_penalty=config.length_penalty,
                repetition_penalty=config.repetition_penalty,
                top_k=config.top_k,
                top_p=config.top_p,
            )
            for chunk in chunks:
                yield chunk.detach().float().cpu().numpy().reshape(-1).astype(np.float32)

    def clone(self, reference: FloatAudio, sample_rate: int) -> Conditioning:
        """The two tensors XTTS conditions on: GPT style latents and the decoder's speaker embedding.

        Same computation as `Xtts.get_conditioning_latents`, from samples instead of a file path (that
        method reads files with torchaudio/torchcodec; the service already decoded the upload)."""
        model = self._loaded()
        torch = self._torch
        config = model.config
        audio = torch.from_numpy(np.ascontiguousarray(reference, dtype=np.float32)).unsqueeze(0)
        audio = audio[:, : sample_rate * int(config.max_ref_len)].to(model.device)
        if config.sound_norm_refs:
            audio = (audio / torch.abs(audio).max()) * 0.75
        with self._lock, torch.inference_mode():
            embedding = model.get_speaker_embedding(audio, sample_rate)
            latent = model.get_gpt_cond_latents(
                audio, sample_rate, length=config.gpt_cond_len, chunk_length=config.gpt_cond_chunk_len
            )
        return {
            "gpt_cond_latent": latent.detach().float().cpu().numpy(),
            "speaker_embedding": embedding.detach().float().cpu().numpy(),
        }

    def close(self) -> None:
        self._model = None
        self._builtin = {}
