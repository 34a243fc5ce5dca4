"""One batcher per loaded model: windows from every session, decoded together on one worker thread.

Sessions submit windows and await a future; the worker takes the first waiting window, waits up to
`max_wait` for others (up to `max_batch_size`), and decodes them in one batched CTranslate2 call. Final
windows go before interim hypotheses. The event loop only ever enqueues and receives results, so streams
keep flowing while a batch runs; a session that reads slowly only delays itself, since the worker never
waits on a session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from aistack_kit.errors import Unavailable
from aistack_kit.logs import log_fields

from aistack_asr.streaming import metrics
from aistack_asr.streaming.decoder import BatchDecoder, DecodeRequest, WindowOutput

logger = logging.getLogger("aistack.asr.streaming")


@dataclass
class _Job:
    request: DecodeRequest
    future: asyncio.Future[WindowOutput]
    loop: asyncio.AbstractEventLoop
    enqueued: float = field(default_factory=time.perf_counter)


class WindowBatcher:
    def __init__(
        self,
        decoder: BatchDecoder,
        *,
        max_batch_size: int,
        max_wait_seconds: float,
        workers: int = 1,
        on_batch: Callable[[int, float], None] | None = None,
    ) -> None:
        self.decoder = decoder
        self.model_name = decoder.model.name
        self._max_batch = max_batch_size
        self._max_wait = max_wait_seconds
        self._finals: deque[_Job] = deque()
        self._interims: deque[_Job] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._on_batch = on_batch
        # More than one worker only pays off when the model runs batches in parallel (CTranslate2
        # inter_threads, AISTACK_ASR_WORKERS); otherwise CTranslate2 queues the calls.
        self._threads = [
            threading.Thread(target=self._run, name=f"asr-batcher-{self.model_name}-{i}", daemon=True)
            for i in range(max(1, workers))
        ]
        for thread in self._threads:
            thread.start()

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._finals) + len(self._interims)

    def submit(self, request: DecodeRequest, *, interim: bool = False) -> asyncio.Future[WindowOutput]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[WindowOutput] = loop.create_future()
        with self._cond:
            if self._closed:
                raise Unavailable("the recognizer is shutting down", reason="SHUTTING_DOWN")
            (self._interims if interim else self._finals).append(_Job(request, future, loop))
            self._cond.notify()
        return future

    def close(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout)

    def _take_batch(self) -> list[_Job] | None:
        with self._cond:
            while not self._finals and not self._interims and not self._closed:
                self._cond.wait()
            if self._closed:
                jobs = [*self._finals, *self._interims]
                self._finals.clear()
                self._interims.clear()
                for job in jobs:
                    _settle(job, error=Unavailable("the recognizer is shutting down", reason="SHUTTING_DOWN"))
                return None
            oldest = (self._finals or self._interims)[0].enqueued
            deadline = oldest + self._max_wait
            while len(self._finals) + len(self._interims) < self._max_batch and not self._closed:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            batch: list[_Job] = []
            for queue in (self._finals, self._interims):
                while queue and len(batch) < self._max_batch:
                    batch.append(queue.popleft())
            return batch

    def _run(self) -> None:
        while True:
            batch = self._take_batch()
            if batch is None:
                return
            batch = [job for job in batch if not job.future.cancelled()]
            if not batch:
                continue
            started = time.perf_counter()
            try:
                outputs = self.decoder.decode([job.request for job in batch])
            except Exception as exc:
                logger.exception(
                    "batch decode failed", extra=log_fields(model=self.model_name, size=len(batch))
                )
                for job in batch:
                    _settle(job, error=exc)
                continue
            elapsed = time.perf_counter() - started
            metrics.BATCH_SIZE.labels(self.model_name).observe(len(batch))
            metrics.BATCH_LATENCY.labels(self.model_name).observe(elapsed)
            if self._on_batch is not None:
                self._on_batch(len(batch), elapsed)
            for job, output in zip(batch, outputs, strict=True):
                _settle(job, result=output)


def _settle(job: _Job, *, result: WindowOutput | None = None, error: BaseException | None = None) -> None:
    def apply() -> None:
        if job.future.done():
            return
        if error is not None:
            job.future.set_exception(error)
        else:
            assert result is not None
            job.future.set_result(result)

    # A closed loop means the session is gone: nobody is waiting any more.
    with contextlib.suppress(RuntimeError):
        job.loop.call_soon_threadsafe(apply)
