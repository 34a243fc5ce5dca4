"""The batch call a cross-session batcher makes: N windows of log-mel features -> N token lists.

`ServingEngine` fixes what a deployment fixes once (dtype, input length in frames, token capacity, the
batch-size buckets), captures every bucket's CUDA graphs at start-up, and then serves batches of any size
up to the largest bucket: the encoder runs on exactly the windows given (cuBLAS handles any batch), the
decoder on the smallest bucket that holds them (padding slots cost little there).
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from aistack_asr.gpu.model import GreedyConfig, ServingWhisper

DEFAULT_BUCKETS = (8, 16, 32, 48, 64, 96, 128, 160, 192, 256)


@dataclass(frozen=True)
class EngineConfig:
    frames: int = 3000
    buckets: tuple[int, ...] = DEFAULT_BUCKETS
    max_prompt_tokens: int = 4
    greedy: GreedyConfig = field(default_factory=GreedyConfig)
    steps_per_graph: int = 8

    @property
    def max_tokens(self) -> int:
        return self.max_prompt_tokens + self.greedy.max_new_tokens


class ServingEngine:
    def __init__(self, model: ServingWhisper, config: EngineConfig) -> None:
        if list(config.buckets) != sorted(set(config.buckets)) or not config.buckets:
            raise ValueError(f"buckets must be increasing and distinct: {config.buckets}")
        self.model = model
        self.config = config
        model.steps_per_graph = config.steps_per_graph

    def warm_up(self) -> None:
        """Allocate the shared buffers and capture every bucket's graph (seconds, once)."""
        c = self.config
        self.model.prepare(c.buckets, c.frames, c.max_tokens, c.greedy)

    def bucket_for(self, n: int) -> int:
        i = bisect.bisect_left(self.config.buckets, n)
        if i == len(self.config.buckets):
            raise ValueError(f"{n} windows is more than the largest bucket {self.config.buckets[-1]}")
        return self.config.buckets[i]

    @property
    def max_batch(self) -> int:
        return self.config.buckets[-1]

    def encode(self, features: Tensor) -> Tensor:
        if features.shape[-1] != self.config.frames:
            raise ValueError(
                f"features have {features.shape[-1]} frames, engine expects {self.config.frames}"
            )
        with torch.inference_mode():
            return self.model.encode(features)

    def decode(
        self, encoded: Tensor, prompts: Sequence[Sequence[int]], early_stop: bool = True, graphs: bool = True
    ) -> list[list[int]]:
        if max(len(p) for p in prompts) > self.config.max_prompt_tokens:
            raise ValueError(f"a prompt is longer than max_prompt_tokens={self.config.max_prompt_tokens}")
        return self.model.decode(
            encoded,
            prompts,
            self.config.greedy,
            bucket=self.bucket_for(len(prompts)),
            max_tokens=self.config.max_tokens,
            early_stop=early_stop,
            graphs=graphs,
        )

    def run_batch(
        self, features: Tensor, prompts: Sequence[Sequence[int]], early_stop: bool = True
    ) -> list[list[int]]:
        return self.decode(self.encode(features), prompts, early_stop=early_stop)


class Pipeline:
    """Two batches in flight: batch k+1's encoder runs on a side stream while batch k decodes.

    The encoder is bound by arithmetic (large GEMMs), the graph-replayed decoder by memory bandwidth and
    launch latency (cross-attention K/V reads, one-row GEMMs), so the two overlap on one GPU. `submit`
    only launches work; `finish` decodes the oldest submitted batch and returns its tokens. On CPU the
    same calls run one after the other.
    """

    def __init__(self, engine: ServingEngine) -> None:
        self.engine = engine
        cuda = engine.model.decoder.embed_tokens.weight.is_cuda
        self._stream = torch.cuda.Stream() if cuda else None  # type: ignore[no-untyped-call]
        self._queue: deque[tuple[Tensor, list[list[int]], torch.cuda.Event | None]] = deque()

    def __len__(self) -> int:
        return len(self._queue)

    def submit(self, features: Tensor, prompts: Sequence[Sequence[int]]) -> None:
        if self._stream is None:
            self._queue.append((self.engine.encode(features), [list(p) for p in prompts], None))
            return
        main = torch.cuda.current_stream()
        self._stream.wait_stream(main)  # the features were written on the main stream
        with torch.cuda.stream(self._stream):
            encoded = self.engine.encode(features)
            done = torch.cuda.Event()  # type: ignore[no-untyped-call]
            done.record(self._stream)
        encoded.record_stream(main)  # freed only once the main stream's decode has used it
        self._queue.append((encoded, [list(p) for p in prompts], done))

    def wait_encoded(self) -> None:
        """Block until the newest batch's encoder is done (no-op on CPU)."""
        if self._queue and self._queue[-1][2] is not None:
            self._queue[-1][2].synchronize()

    def finish(self, early_stop: bool = True) -> list[list[int]]:
        encoded, prompts, done = self._queue.popleft()
        if done is not None:
            torch.cuda.current_stream().wait_event(done)
        return self.engine.decode(encoded, prompts, early_stop=early_stop)
