"""Builds a small random-init XTTS-v2 checkpoint in XTTS's own on-disk format.

The real weights cannot be had here, so this exercises the service's loading and synthesis path
(config.json + model.pth + vocab.json + speakers_xtts.pth, Xtts.init_from_config, load_checkpoint,
conditioning latents, inference_stream) on a model of the same architecture with tiny dimensions.
Its audio is noise; the tests check shapes, rates, streaming and the voice round trip, not speech.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import torch  # type: ignore[import-not-found, unused-ignore]
from tokenizers import Tokenizer, models  # type: ignore[import-not-found, unused-ignore]
from TTS.tts.configs.xtts_config import XttsArgs, XttsConfig  # type: ignore[import-not-found, unused-ignore]
from TTS.tts.models.xtts import Xtts  # type: ignore[import-not-found, unused-ignore]

SPECIAL = ["[STOP]", "[UNK]", "[SPACE]", "[START]", "[en]", "[pt]"]
BUILTIN_SPEAKER = "Tiny Speaker"


def _write_vocab(path: Path) -> None:
    # A character-level BPE (no merges) covering what the normalizer emits for pt and en.
    chars = sorted(set(string.ascii_lowercase + string.digits + "áàâãéêíóôõúüç.,!?;:'-\"()"))
    vocab = {token: index for index, token in enumerate(SPECIAL + chars)}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="[UNK]"))
    tokenizer.add_special_tokens(SPECIAL)
    tokenizer.save(str(path))


def build(folder: Path, *, max_audio_tokens: int = 24) -> Path:
    """Writes config.json, vocab.json, model.pth and speakers_xtts.pth into `folder`."""
    torch.manual_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    _write_vocab(folder / "vocab.json")
    args = XttsArgs(
        gpt_layers=1,
        gpt_n_model_channels=64,
        gpt_n_heads=4,
        gpt_num_audio_tokens=1026,
        gpt_start_audio_token=1024,
        gpt_stop_audio_token=1025,
        gpt_max_audio_tokens=max_audio_tokens,
        gpt_max_text_tokens=402,
        gpt_max_prompt_tokens=70,
        gpt_use_perceiver_resampler=True,
        gpt_use_masking_gt_prompt_approach=True,
        decoder_input_dim=64,
        d_vector_dim=512,
        kv_cache=True,
    )
    config = XttsConfig(model_args=args, languages=["en", "pt"], temperature=0.75, repetition_penalty=5.0)
    config.gpt_cond_len = 6
    config.gpt_cond_chunk_len = 3
    (folder / "config.json").write_text(json.dumps(config.to_dict(), indent=1))

    config = XttsConfig()
    config.load_json(str(folder / "config.json"))
    model = Xtts.init_from_config(config)
    # init_models ran before a tokenizer existed; the real loader does the same on load_checkpoint.
    from TTS.tts.layers.xtts.tokenizer import VoiceBpeTokenizer  # type: ignore[import-not-found, unused-ignore]

    model.tokenizer = VoiceBpeTokenizer(vocab_file=str(folder / "vocab.json"))
    model.init_models()
    torch.save({"model": model.state_dict()}, folder / "model.pth")

    latent = torch.randn(1, 32, 64)
    embedding = torch.nn.functional.normalize(torch.randn(1, 512, 1), dim=1)
    torch.save({BUILTIN_SPEAKER: {"gpt_cond_latent": latent, "speaker_embedding": embedding}},
               folder / "speakers_xtts.pth")  # fmt: skip
    return folder


if __name__ == "__main__":
    import sys

    print(build(Path(sys.argv[1])))
