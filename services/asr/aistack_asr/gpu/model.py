"""Whisper encoder + a static-cache greedy decoder, with decode steps captured as CUDA graphs.

The module names mirror transformers' `WhisperForConditionalGeneration` (`model.encoder.*`,
`model.decoder.*`), so a checkpoint's state dict loads as it is, and the arithmetic is the same: pre-norm
layers, exact GELU, `1/sqrt(head_dim)` scaling, the output projection tied to the token embedding.

Serving shape of a batch (one `DecodeState` per batch-size bucket, allocated once):
- self-attention K/V cache `[layers, batch, heads, max_tokens, head_dim]`, written in place at each slot's
  position, and a boolean mask that lets each slot see positions `<= pos`;
- cross-attention K/V `[layers, batch, heads, frames, head_dim]`, projected once per window from the
  encoder output (CTranslate2 recomputes nothing either, but we keep them in the graph-static buffers);
- the token buffer `[batch, max_tokens]`, holding the prompt (teacher-forced) and the generated tokens.
A decode step reads only these buffers, so `steps_per_graph` consecutive steps are captured once per
bucket and replayed: one launch per chunk instead of ~25 per layer per step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aistack_asr.gpu.vocab import MULTILINGUAL, WhisperSpecialTokens


@dataclass(frozen=True)
class WhisperDims:
    n_mels: int = 80
    d_model: int = 1024
    n_heads: int = 16
    encoder_layers: int = 24
    decoder_layers: int = 24
    ffn_dim: int = 4096
    vocab_size: int = 51865
    max_source_positions: int = 1500
    max_target_positions: int = 448

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @classmethod
    def from_hf_config(cls, config: Any) -> WhisperDims:
        if config.encoder_attention_heads != config.decoder_attention_heads:
            raise ValueError("encoder and decoder must have the same number of heads")
        if config.encoder_ffn_dim != config.decoder_ffn_dim:
            raise ValueError("encoder and decoder must have the same FFN width")
        if getattr(config, "scale_embedding", False):
            raise ValueError("scale_embedding=True is not supported (no released Whisper uses it)")
        if config.activation_function != "gelu":
            raise ValueError(f"activation {config.activation_function!r} is not supported")
        return cls(
            n_mels=config.num_mel_bins,
            d_model=config.d_model,
            n_heads=config.encoder_attention_heads,
            encoder_layers=config.encoder_layers,
            decoder_layers=config.decoder_layers,
            ffn_dim=config.encoder_ffn_dim,
            vocab_size=config.vocab_size,
            max_source_positions=config.max_source_positions,
            max_target_positions=config.max_target_positions,
        )


@dataclass(frozen=True)
class GreedyConfig:
    """What a greedy decode may emit.

    `suppress_tokens` never win (a benchmark suppresses end-of-text to force a fixed token budget);
    `begin_suppress_tokens` cannot be the first generated token (Whisper's blank/EOT rule).
    """

    max_new_tokens: int = 24
    suppress_tokens: tuple[int, ...] = ()
    begin_suppress_tokens: tuple[int, ...] = ()
    special: WhisperSpecialTokens = field(default_factory=lambda: MULTILINGUAL)


class _Attention(nn.Module):
    def __init__(self, dims: WhisperDims) -> None:
        super().__init__()
        d = dims.d_model
        self.n_heads = dims.n_heads
        self.q_proj = nn.Linear(d, d)
        self.k_proj = nn.Linear(d, d, bias=False)
        self.v_proj = nn.Linear(d, d)
        self.out_proj = nn.Linear(d, d)

    def heads(self, x: Tensor) -> Tensor:
        """[B, T, D] -> [B, H, T, hd]."""
        b, t, d = x.shape
        return x.view(b, t, self.n_heads, d // self.n_heads).transpose(1, 2)

    def merge(self, x: Tensor) -> Tensor:
        """[B, H, T, hd] -> [B, T, D]."""
        b, h, t, hd = x.shape
        return x.transpose(1, 2).reshape(b, t, h * hd)


class _EncoderLayer(nn.Module):
    def __init__(self, dims: WhisperDims) -> None:
        super().__init__()
        self.self_attn = _Attention(dims)
        self.self_attn_layer_norm = nn.LayerNorm(dims.d_model)
        self.fc1 = nn.Linear(dims.d_model, dims.ffn_dim)
        self.fc2 = nn.Linear(dims.ffn_dim, dims.d_model)
        self.final_layer_norm = nn.LayerNorm(dims.d_model)

    def forward(self, x: Tensor) -> Tensor:
        a = self.self_attn
        h = self.self_attn_layer_norm(x)
        q, k, v = a.heads(a.q_proj(h)), a.heads(a.k_proj(h)), a.heads(a.v_proj(h))
        x = x + a.out_proj(a.merge(F.scaled_dot_product_attention(q, k, v)))
        out: Tensor = x + self.fc2(F.gelu(self.fc1(self.final_layer_norm(x))))
        return out


class WhisperEncoder(nn.Module):
    """Whisper's encoder; accepts fewer than 3000 frames (the positions are sliced, as CTranslate2 does)."""

    def __init__(self, dims: WhisperDims) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(dims.n_mels, dims.d_model, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(dims.d_model, dims.d_model, kernel_size=3, stride=2, padding=1)
        self.embed_positions = nn.Embedding(dims.max_source_positions, dims.d_model)
        self.layers = nn.ModuleList(_EncoderLayer(dims) for _ in range(dims.encoder_layers))
        self.layer_norm = nn.LayerNorm(dims.d_model)

    def forward(self, features: Tensor) -> Tensor:
        """[B, n_mels, frames] -> [B, frames // 2, D]."""
        x = F.gelu(self.conv1(features))
        x = F.gelu(self.conv2(x)).transpose(1, 2)
        if x.shape[1] > self.embed_positions.num_embeddings:
            raise ValueError(f"{features.shape[-1]} frames is more than the model's 30 s")
        x = x + self.embed_positions.weight[: x.shape[1]]
        for layer in self.layers:
            x = layer(x)
        out: Tensor = self.layer_norm(x)
        return out


class _DecoderLayer(nn.Module):
    def __init__(self, dims: WhisperDims) -> None:
        super().__init__()
        self.self_attn = _Attention(dims)
        self.self_attn_layer_norm = nn.LayerNorm(dims.d_model)
        self.encoder_attn = _Attention(dims)
        self.encoder_attn_layer_norm = nn.LayerNorm(dims.d_model)
        self.fc1 = nn.Linear(dims.d_model, dims.ffn_dim)
        self.fc2 = nn.Linear(dims.ffn_dim, dims.d_model)
        self.final_layer_norm = nn.LayerNorm(dims.d_model)


class WhisperDecoder(nn.Module):
    def __init__(self, dims: WhisperDims) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(dims.vocab_size, dims.d_model)
        self.embed_positions = nn.Embedding(dims.max_target_positions, dims.d_model)
        self.layers = nn.ModuleList(_DecoderLayer(dims) for _ in range(dims.decoder_layers))
        self.layer_norm = nn.LayerNorm(dims.d_model)

    def typed_layers(self) -> list[_DecoderLayer]:
        return cast(list[_DecoderLayer], list(self.layers))


class DecodeState:
    """The static buffers of one batch-size bucket; CUDA graphs capture reads and writes of these only.

    Buckets of one (frames, max_tokens) shape share the largest bucket's storage (`arena`): a bucket of
    B slots is the first B slots of it. Only one batch runs at a time, and the cross-attention K/V of a
    256-slot arena alone is ~38 GB for medium at 30 s, so per-bucket copies would not fit.
    """

    def __init__(
        self,
        dims: WhisperDims,
        batch: int,
        frames: int,
        max_tokens: int,
        dtype: torch.dtype,
        device: Any,
        arena: DecodeState | None = None,
    ) -> None:
        self.batch, self.frames, self.max_tokens = batch, frames, max_tokens
        self.self_k: Tensor
        self.self_v: Tensor
        self.cross_k: Tensor
        self.cross_v: Tensor
        self.tokens: Tensor
        self.prompt_len: Tensor
        self.pos: Tensor
        self.done: Tensor
        if arena is not None:
            self.self_k, self.self_v = arena.self_k[:, :batch], arena.self_v[:, :batch]
            self.cross_k, self.cross_v = arena.cross_k[:, :batch], arena.cross_v[:, :batch]
            self.tokens, self.prompt_len = arena.tokens[:batch], arena.prompt_len[:batch]
            self.pos, self.done = arena.pos[:batch], arena.done[:batch]
        else:
            shape_self = (dims.decoder_layers, batch, dims.n_heads, max_tokens, dims.head_dim)
            shape_cross = (dims.decoder_layers, batch, dims.n_heads, frames // 2, dims.head_dim)
            self.self_k = torch.zeros(shape_self, dtype=dtype, device=device)
            self.self_v = torch.zeros(shape_self, dtype=dtype, device=device)
            self.cross_k = torch.zeros(shape_cross, dtype=dtype, device=device)
            self.cross_v = torch.zeros(shape_cross, dtype=dtype, device=device)
            self.tokens = torch.zeros((batch, max_tokens), dtype=torch.long, device=device)
            self.prompt_len = torch.ones(batch, dtype=torch.long, device=device)
            self.pos = torch.zeros(batch, dtype=torch.long, device=device)
            self.done = torch.zeros(batch, dtype=torch.bool, device=device)
        self.slots = torch.arange(batch, device=device)
        self.key_index = torch.arange(max_tokens, device=device)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.graph_one: torch.cuda.CUDAGraph | None = None


class ServingWhisper(nn.Module):
    """Encoder + greedy decoder over static buffers; `transcribe_tokens` is the one call a batcher makes."""

    def __init__(self, dims: WhisperDims) -> None:
        super().__init__()
        self.dims = dims
        self.encoder = WhisperEncoder(dims)
        self.decoder = WhisperDecoder(dims)
        self._states: dict[tuple[int, int, int, int], DecodeState] = {}
        self._arenas: dict[tuple[int, int], DecodeState] = {}
        self._suppress: Tensor | None = None
        self._begin_suppress: Tensor | None = None
        self._greedy: GreedyConfig | None = None
        self.steps_per_graph = 8
        self.use_cuda_graphs = True
        self._graph_pool: Any = None
        self._compiled_encoder: Any = None
        self.cross_attention = "sdpa"

    # ---- loading -------------------------------------------------------------------------------------

    @classmethod
    def from_hf_model(cls, hf_model: Any) -> ServingWhisper:
        """Copy the weights of a transformers `WhisperForConditionalGeneration`."""
        model = cls(WhisperDims.from_hf_config(hf_model.config))
        state = hf_model.state_dict()
        enc = {
            k.removeprefix("model.encoder."): v for k, v in state.items() if k.startswith("model.encoder.")
        }
        dec = {
            k.removeprefix("model.decoder."): v for k, v in state.items() if k.startswith("model.decoder.")
        }
        model.encoder.load_state_dict(enc, strict=True)
        model.decoder.load_state_dict(dec, strict=True)
        # Serving only: no autograd state anywhere (an encoder call outside inference mode would otherwise
        # keep every layer's activations for a backward pass that never comes).
        model.requires_grad_(False)
        proj = state.get("proj_out.weight")
        if proj is not None and not torch.equal(proj, model.decoder.embed_tokens.weight):
            raise ValueError("proj_out is not tied to the token embedding; not a Whisper checkpoint")
        return model

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> ServingWhisper:
        """Load a transformers Whisper checkpoint folder (local files only)."""
        from transformers import WhisperForConditionalGeneration

        hf = WhisperForConditionalGeneration.from_pretrained(str(folder), local_files_only=True)
        return cls.from_hf_model(hf)

    # ---- encoder -------------------------------------------------------------------------------------

    def encode(self, features: Tensor) -> Tensor:
        # Not `or`: truth-testing a compiled module falls through to the module's missing __len__.
        fn = self.encoder if self._compiled_encoder is None else self._compiled_encoder
        with torch.inference_mode():
            out: Tensor = fn(features.to(self.decoder.embed_tokens.weight.dtype))
        return out

    def compile_encoder(self, dynamic: bool = True) -> None:
        """Route `encode` through `torch.compile` (fuses norms, GELU and bias adds around the GEMMs).

        `dynamic=True` compiles once for any batch size; the first call pays the compile.
        """
        self._compiled_encoder = torch.compile(self.encoder, dynamic=dynamic)

    # ---- decoder -------------------------------------------------------------------------------------

    def _configure(self, greedy: GreedyConfig) -> None:
        if self._greedy == greedy:
            return
        if self._states and self._greedy is not None:
            # Captured graphs baked in the old masks' storage; refill in place so they stay valid.
            assert self._suppress is not None and self._begin_suppress is not None
            self._suppress.copy_(self._mask(greedy.suppress_tokens))
            self._begin_suppress.copy_(self._mask(greedy.begin_suppress_tokens))
        else:
            self._suppress = self._mask(greedy.suppress_tokens)
            self._begin_suppress = self._mask(greedy.begin_suppress_tokens)
        self._greedy = greedy

    def _mask(self, ids: Sequence[int]) -> Tensor:
        w = self.decoder.embed_tokens.weight
        mask = torch.zeros(self.dims.vocab_size, dtype=torch.float32, device=w.device)
        if ids:
            mask[torch.tensor(list(ids), device=w.device)] = -math.inf
        return mask

    def _step(self, st: DecodeState) -> None:
        """One decode position for every slot: read the token at `pos`, write the next one at `pos + 1`."""
        dec = self.decoder
        assert self._suppress is not None and self._begin_suppress is not None and self._greedy is not None
        pos = st.pos
        tok = st.tokens.gather(1, pos[:, None])  # [B, 1]
        x = dec.embed_tokens(tok) + dec.embed_positions(pos)[:, None, :]  # [B, 1, D]
        visible = (st.key_index[None, :] <= pos[:, None])[:, None, None, :]  # [B, 1, 1, T]
        for i, layer in enumerate(dec.typed_layers()):
            a = layer.self_attn
            h = layer.self_attn_layer_norm(x)
            # [B, H, hd] written at each slot's own position (slots may sit at different positions).
            st.self_k[i][st.slots, :, pos] = a.heads(a.k_proj(h))[:, :, 0]
            st.self_v[i][st.slots, :, pos] = a.heads(a.v_proj(h))[:, :, 0]
            o = F.scaled_dot_product_attention(
                a.heads(a.q_proj(h)), st.self_k[i], st.self_v[i], attn_mask=visible
            )
            x = x + a.out_proj(a.merge(o))
            c = layer.encoder_attn
            h = layer.encoder_attn_layer_norm(x)
            o = self._cross_attention(c.heads(c.q_proj(h)), st.cross_k[i], st.cross_v[i])
            x = x + c.out_proj(c.merge(o))
            x = x + layer.fc2(F.gelu(layer.fc1(layer.final_layer_norm(x))))
        h = dec.layer_norm(x[:, 0])
        logits = (h @ dec.embed_tokens.weight.T).float() + self._suppress
        first = (pos + 1 == st.prompt_len)[:, None]
        logits = torch.where(first, logits + self._begin_suppress, logits)
        nxt = logits.argmax(-1)
        nxt = torch.where(st.done, torch.full_like(nxt, self._greedy.special.eot), nxt)
        nxt_pos = (pos + 1).clamp(max=st.max_tokens - 1)
        in_prompt = pos + 1 < st.prompt_len
        nxt = torch.where(in_prompt, st.tokens.gather(1, nxt_pos[:, None]).squeeze(1), nxt)
        st.tokens.scatter_(1, nxt_pos[:, None], nxt[:, None])
        st.done |= ~in_prompt & (nxt == self._greedy.special.eot)
        st.pos.copy_(nxt_pos)

    def _cross_attention(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """One query per slot against the window's encoder frames.

        "sdpa" lets PyTorch pick a fused kernel; those tile queries by 64-128 rows, so with one query a
        tile is mostly padding. "matmul" is two batched GEMVs around a float32 softmax: it reads K and V
        once and does no wasted arithmetic. Measured on an H100 (medium, 30 s windows, batch 192), the
        fused kernel still wins (15.8 vs 21.2 ms a step), so "sdpa" is the default.
        """
        if self.cross_attention == "sdpa":
            return F.scaled_dot_product_attention(q, k, v)
        scores = torch.matmul(q * (q.shape[-1] ** -0.5), k.transpose(-1, -2))
        return torch.matmul(torch.softmax(scores, dim=-1, dtype=torch.float32).to(v.dtype), v)

    def _steps(self, st: DecodeState, count: int) -> None:
        for _ in range(count):
            self._step(st)

    def _state(self, batch: int, frames: int, max_tokens: int) -> DecodeState:
        w = self.decoder.embed_tokens.weight
        key = (batch, frames, max_tokens, self.steps_per_graph)
        st = self._states.get(key)
        if st is None:
            arena = self._arenas.get((frames, max_tokens))
            if arena is not None and arena.batch < batch:
                arena = None
            st = DecodeState(self.dims, batch, frames, max_tokens, w.dtype, w.device, arena)
            if arena is None:
                self._arenas[(frames, max_tokens)] = st
            if w.is_cuda and self.use_cuda_graphs:
                self._capture(st)
            self._states[key] = st
        return st

    def _capture(self, st: DecodeState) -> None:
        # Warm-up on a side stream first (cuBLAS handles, SDPA kernel choice), as CUDA graphs require.
        side = torch.cuda.Stream()  # type: ignore[no-untyped-call]
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            self._steps(st, 2 * self.steps_per_graph)
        torch.cuda.current_stream().wait_stream(side)
        if self._graph_pool is None:
            self._graph_pool = torch.cuda.graph_pool_handle()
        # A chunk graph, and a one-step graph for the remainder, so no step is ever wasted.
        st.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(st.graph, pool=self._graph_pool):
            self._steps(st, self.steps_per_graph)
        st.graph_one = torch.cuda.CUDAGraph()
        with torch.cuda.graph(st.graph_one, pool=self._graph_pool):
            self._steps(st, 1)

    def reset_buffers(self) -> None:
        """Drop every bucket's buffers and graphs (after changing `cross_attention` or `steps_per_graph`)."""
        self._states.clear()
        self._arenas.clear()
        self._graph_pool = None

    def prepare(self, batch_sizes: Sequence[int], frames: int, max_tokens: int, greedy: GreedyConfig) -> None:
        """Allocate (and on CUDA capture) every bucket up front, so no request pays for a capture."""
        with torch.inference_mode():
            self._configure(greedy)
            for b in sorted(batch_sizes, reverse=True):
                self._state(b, frames, max_tokens)

    def decode(
        self,
        encoded: Tensor,
        prompts: Sequence[Sequence[int]],
        greedy: GreedyConfig,
        *,
        bucket: int | None = None,
        max_tokens: int | None = None,
        early_stop: bool = True,
        graphs: bool = True,
    ) -> list[list[int]]:
        """Greedy tokens after each prompt (end-of-text excluded), for `encoded` = `encode(features)`.

        `bucket` is the batch size of the static buffers (>= the number of windows; the extra slots run
        as padding); `max_tokens` the token capacity of a slot (at least prompt + new tokens).
        `graphs=False` runs the same steps eagerly (to measure what the graphs save).
        """
        n = encoded.shape[0]
        if len(prompts) != n or n == 0:
            raise ValueError(f"{len(prompts)} prompts for {n} windows")
        bucket = bucket or n
        longest = max(len(p) for p in prompts)
        if min(len(p) for p in prompts) == 0:
            raise ValueError("every window needs a prompt (at least the start-of-transcript token)")
        steps = longest - 1 + greedy.max_new_tokens
        needed = steps + 1
        max_tokens = max_tokens or needed
        if needed > max_tokens or max_tokens > self.dims.max_target_positions or bucket < n:
            raise ValueError(
                f"bucket {bucket} / max_tokens {max_tokens} cannot hold {n} windows of {needed} tokens"
            )
        with torch.inference_mode():
            self._configure(greedy)
            st = self._state(bucket, encoded.shape[1] * 2, max_tokens)
            self._load_window(st, encoded, prompts)
            left = steps
            while left > 0:
                count = self.steps_per_graph if left >= self.steps_per_graph else 1
                graph = st.graph if count > 1 else st.graph_one
                if graph is not None and graphs:
                    graph.replay()
                else:
                    self._steps(st, count)
                left -= count
                # One host sync per chunk: stop once every real slot has emitted end-of-text.
                if early_stop and left > 0 and count > 1 and bool(st.done[:n].all()):
                    break
            tokens = st.tokens[:n].cpu().tolist()
        out = []
        for row, p in zip(tokens, prompts, strict=True):
            gen = row[len(p) : len(p) + greedy.max_new_tokens]
            if greedy.special.eot in gen:
                gen = gen[: gen.index(greedy.special.eot)]
            out.append(gen)
        return out

    def _load_window(self, st: DecodeState, encoded: Tensor, prompts: Sequence[Sequence[int]]) -> None:
        n = encoded.shape[0]
        dec = self.decoder
        enc = encoded.to(st.cross_k.dtype)
        for i, layer in enumerate(dec.typed_layers()):
            c = layer.encoder_attn
            st.cross_k[i, :n] = c.heads(c.k_proj(enc))
            st.cross_v[i, :n] = c.heads(c.v_proj(enc))
        assert self._greedy is not None
        # One host tensor each (a per-row copy costs ~ms at batch 192, on the serving loop's critical path).
        pad = [self._greedy.special.sot]
        rows = [list(p) + [0] * (st.max_tokens - len(p)) for p in prompts]
        rows += [pad + [0] * (st.max_tokens - 1)] * (st.batch - len(rows))
        lengths = [len(p) for p in prompts] + [1] * (st.batch - len(prompts))
        st.tokens.copy_(torch.tensor(rows, dtype=torch.long))
        st.prompt_len.copy_(torch.tensor(lengths, dtype=torch.long))
        st.pos.zero_()
        st.done.zero_()

    def transcribe_tokens(
        self, features: Tensor, prompts: Sequence[Sequence[int]], greedy: GreedyConfig, **kw: Any
    ) -> list[list[int]]:
        with torch.inference_mode():
            return self.decode(self.encode(features), prompts, greedy, **kw)
