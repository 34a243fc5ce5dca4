"""Random-weight Whisper checkpoints of a chosen shape, and their CTranslate2 conversion.

No Whisper-medium weights exist on the benchmark machine (no downloads there), and speed does not depend on
the weights' values: a transformers checkpoint with medium's dimensions and random weights, converted with
CTranslate2's own converter, exercises exactly the kernels the real model would. The same checkpoint feeds
`ServingWhisper`, so both engines run identical weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aistack_asr.gpu.model import WhisperDims
from aistack_asr.gpu.vocab import LANGUAGES, MULTILINGUAL, save_placeholder_tokenizer

MEDIUM = WhisperDims()
# Small enough for a CPU test in seconds; the real vocabulary size keeps the special-token ids real.
TINY_TEST = WhisperDims(d_model=64, n_heads=4, encoder_layers=2, decoder_layers=2, ffn_dim=128)


def build_random_whisper(folder: Path, dims: WhisperDims, seed: int = 0, dtype: str = "float32") -> Any:
    """Save a random `WhisperForConditionalGeneration` of shape `dims` (+ placeholder tokenizer) to `folder`.

    Returns the model (float32, eval mode). The generation config carries no suppression lists, so
    every engine decodes with exactly the suppression the caller passes.
    """
    import torch
    from transformers import GenerationConfig, WhisperConfig, WhisperForConditionalGeneration

    config = WhisperConfig(
        vocab_size=dims.vocab_size,
        num_mel_bins=dims.n_mels,
        d_model=dims.d_model,
        encoder_layers=dims.encoder_layers,
        decoder_layers=dims.decoder_layers,
        encoder_attention_heads=dims.n_heads,
        decoder_attention_heads=dims.n_heads,
        encoder_ffn_dim=dims.ffn_dim,
        decoder_ffn_dim=dims.ffn_dim,
        max_source_positions=dims.max_source_positions,
        max_target_positions=dims.max_target_positions,
        decoder_start_token_id=MULTILINGUAL.sot,
        eos_token_id=MULTILINGUAL.eot,
        pad_token_id=MULTILINGUAL.eot,
        bos_token_id=MULTILINGUAL.eot,
        suppress_tokens=[],
        begin_suppress_tokens=[],
    )
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(config)
    model.train(False)
    _spread_weights(model, seed)
    gen = GenerationConfig(  # type: ignore[no-untyped-call]
        decoder_start_token_id=MULTILINGUAL.sot,
        eos_token_id=MULTILINGUAL.eot,
        pad_token_id=MULTILINGUAL.eot,
        bos_token_id=MULTILINGUAL.eot,
        suppress_tokens=[],
        begin_suppress_tokens=[],
        no_timestamps_token_id=MULTILINGUAL.no_timestamps,
        is_multilingual=True,
        lang_to_id={f"<|{code}|>": MULTILINGUAL.language(code) for code in LANGUAGES},
        task_to_id={"transcribe": MULTILINGUAL.transcribe, "translate": MULTILINGUAL.translate},
        max_length=dims.max_target_positions,
    )
    model.generation_config = gen
    folder.mkdir(parents=True, exist_ok=True)
    save_dtype = getattr(torch, dtype)
    model.to(save_dtype).save_pretrained(str(folder))
    torch.nn.Module.to(model, torch.float32)  # back to fp32 for the caller (saved copy is `dtype`)
    save_placeholder_tokenizer(folder)
    return model


def _spread_weights(model: Any, seed: int) -> None:
    """Re-draw the weights at unit-variance scale so the output depends on the audio and the history.

    transformers' init (std 0.02) gives a model that repeats one token whatever its input, which would
    make "same tokens" a weak check. Linear/conv weights get std 1/sqrt(fan_in), with 2/sqrt(fan_in)
    for queries and keys so attention is peaked (near-uniform cross-attention over 1500 frames would
    average the audio away); embeddings std 0.3 (small enough that a token does not just copy itself
    through the tied output projection); LayerNorm gains 1 +- 0.1. The encoder's sinusoidal positions
    are kept.
    """
    import torch

    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("encoder.embed_positions.weight"):
                continue
            if "layer_norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=gen))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            elif "embed" in name:
                p.copy_(0.3 * torch.randn(p.shape, generator=gen))
            elif "q_proj" in name or "k_proj" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 2 / p[0].numel() ** 0.5)
            else:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=gen) / fan_in**0.5)


def convert_to_ctranslate2(checkpoint: Path, output: Path, quantization: str) -> Path:
    """Run CTranslate2's transformers converter on `checkpoint` (what `ct2-transformers-converter` does)."""
    from ctranslate2.converters import TransformersConverter

    converter = TransformersConverter(str(checkpoint), low_cpu_mem_usage=True)
    return Path(converter.convert(str(output), quantization=quantization, force=True))
