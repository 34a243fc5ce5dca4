"""Load model for streaming capacity: N sessions, each with a new 5 s window every 5 s, arrivals staggered.

One serving loop (what the service's cross-session batcher does): whenever the engine is free, take every
window that is ready (up to the largest batch), run them as one batch, emit. A window's latency is from
the moment it is ready (its audio ended) to the moment its tokens are out.

`simulate` replays that loop on a virtual clock with batch service times measured on the device (so a
sweep over N costs no device time); `run_realtime` runs the same loop on the wall clock with the real
engine, to check the simulation at the N it reports.
"""

from __future__ import annotations

import bisect
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class LoadResult:
    sessions: int
    windows: int
    p50_s: float
    p95_s: float
    max_s: float
    mean_batch: float
    busy_fraction: float

    @classmethod
    def of(
        cls, sessions: int, latencies: Sequence[float], batches: Sequence[int], busy_fraction: float
    ) -> LoadResult:
        """The summary of one load run: its window latencies and the batch sizes it ran."""
        return cls(
            sessions,
            len(latencies),
            percentile(latencies, 50),
            percentile(latencies, 95),
            max(latencies, default=float("nan")),
            sum(batches) / max(1, len(batches)),
            busy_fraction,
        )

    def as_dict(self) -> dict[str, float | int]:
        return {
            "sessions": self.sessions,
            "windows": self.windows,
            "p50_s": round(self.p50_s, 4),
            "p95_s": round(self.p95_s, 4),
            "max_s": round(self.max_s, 4),
            "mean_batch": round(self.mean_batch, 1),
            "busy_fraction": round(self.busy_fraction, 3),
        }


def percentile(values: Sequence[float], q: float) -> float:
    s = sorted(values)
    if not s:
        return float("nan")
    k = min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))
    return s[k]


def arrivals(sessions: int, period_s: float, duration_s: float) -> list[float]:
    """Ready times of every window: session i is offset by i/N of a period (staggered, deterministic)."""
    times = []
    for i in range(sessions):
        t = period_s + period_s * i / sessions
        while t <= duration_s:
            times.append(t)
            t += period_s
    times.sort()
    return times


class ServiceTimes:
    """Batch service time as a function of batch size, interpolated from measured (size, seconds) points."""

    def __init__(self, points: dict[int, float]) -> None:
        if not points:
            raise ValueError("no measured points")
        self.sizes = sorted(points)
        self.secs = [points[b] for b in self.sizes]

    @property
    def max_batch(self) -> int:
        return self.sizes[-1]

    def __call__(self, n: int) -> float:
        i = bisect.bisect_left(self.sizes, n)
        if i < len(self.sizes) and self.sizes[i] == n:
            return self.secs[i]
        if i == 0:
            return self.secs[0]
        if i == len(self.sizes):
            raise ValueError(f"batch {n} is above the largest measured size {self.sizes[-1]}")
        b0, b1, t0, t1 = self.sizes[i - 1], self.sizes[i], self.secs[i - 1], self.secs[i]
        return t0 + (t1 - t0) * (n - b0) / (b1 - b0)


def simulate(
    sessions: int,
    service: Callable[[int], float],
    max_batch: int,
    period_s: float = 5.0,
    duration_s: float = 60.0,
    warmup_s: float = 10.0,
) -> LoadResult:
    ready = arrivals(sessions, period_s, duration_s)
    now, i, busy = (ready[0] if ready else 0.0), 0, 0.0
    first = now
    lat: list[float] = []
    batches: list[int] = []
    while i < len(ready):
        if ready[i] > now:
            now = ready[i]
        j = bisect.bisect_right(ready, now, lo=i)
        j = min(j, i + max_batch)
        dt = service(j - i)
        now += dt
        busy += dt
        batches.append(j - i)
        lat.extend(now - r for r in ready[i:j] if r >= warmup_s)
        i = j
    return LoadResult.of(sessions, lat, batches, busy / (now - first) if now > first else 0.0)


def max_sessions(
    service: Callable[[int], float],
    max_batch: int,
    p95_limit_s: float = 1.5,
    period_s: float = 5.0,
    duration_s: float = 60.0,
    hi: int = 8192,
) -> tuple[int, list[LoadResult]]:
    """Largest N with simulated p95 <= limit (p95 grows with N once the engine saturates: bisection).

    N is also capped where arrivals outrun the engine's best rate (largest batch): a slightly overloaded
    loop can keep p95 under the limit for a finite simulated time while its queue grows without bound.
    """
    tried: list[LoadResult] = []
    hi = min(hi, int(period_s * max_batch / service(max_batch)) + 1)

    def ok(n: int) -> bool:
        r = simulate(n, service, max_batch, period_s, duration_s)
        tried.append(r)
        return r.p95_s <= p95_limit_s

    lo = 0
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid
    return lo, sorted(tried, key=lambda r: r.sessions)


def run_realtime(
    sessions: int,
    run_batch: Callable[[int], None],
    max_batch: int,
    period_s: float = 5.0,
    duration_s: float = 30.0,
    warmup_s: float = 10.0,
    grace_s: float = 10.0,
) -> LoadResult:
    """The serving loop on the wall clock; `run_batch(n)` must run n windows to tokens-on-host.

    An overloaded engine never catches up: windows still queued `grace_s` after the last arrival count
    as infinitely late, so the loop always ends near `duration_s + grace_s`.
    """
    ready = arrivals(sessions, period_s, duration_s)
    start = time.perf_counter()
    i, busy = 0, 0.0
    lat: list[float] = []
    batches: list[int] = []
    while i < len(ready):
        now = time.perf_counter() - start
        if now > duration_s + grace_s:
            lat.extend(math.inf for r in ready[i:] if r >= warmup_s)
            break
        if ready[i] > now:
            time.sleep(ready[i] - now)
            now = time.perf_counter() - start
        j = min(bisect.bisect_right(ready, now, lo=i), i + max_batch)
        t0 = time.perf_counter()
        run_batch(j - i)
        t1 = time.perf_counter()
        busy += t1 - t0
        done = t1 - start
        batches.append(j - i)
        lat.extend(done - r for r in ready[i:j] if r >= warmup_s)
        i = j
    total = time.perf_counter() - start
    return LoadResult.of(sessions, lat, batches, busy / total)


def run_realtime_pipelined(
    sessions: int,
    submit: Callable[[int], None],
    wait_encoded: Callable[[], None],
    finish: Callable[[], None],
    max_batch: int,
    period_s: float = 5.0,
    duration_s: float = 30.0,
    warmup_s: float = 10.0,
    grace_s: float = 10.0,
) -> LoadResult:
    """The serving loop with two batches in flight (`aistack_asr.gpu.engine.Pipeline`).

    Each turn launches the encoder for whatever is ready (`submit(n)`) and then decodes the oldest batch
    in flight (`finish()`), which overlaps with that encoder. A batch alone in flight first waits for its
    own encoder (`wait_encoded()`: its decode could not start sooner anyway); what arrived meanwhile
    becomes the next batch, whose encoder then overlaps this batch's decode.
    """
    ready = arrivals(sessions, period_s, duration_s)
    start = time.perf_counter()
    i, busy = 0, 0.0
    lat: list[float] = []
    batches: list[int] = []
    flight: deque[tuple[int, int]] = deque()
    while i < len(ready) or flight:
        now = time.perf_counter() - start
        if now > duration_s + grace_s:
            lat.extend(math.inf for r in ready[i:] if r >= warmup_s)
            for a, b in flight:
                lat.extend(math.inf for r in ready[a:b] if r >= warmup_s)
            break
        t0 = time.perf_counter()
        j = min(bisect.bisect_right(ready, now, lo=i), i + max_batch)
        submitted = j > i
        if submitted:
            submit(j - i)
            flight.append((i, j))
            batches.append(j - i)
            i = j
        if len(flight) >= 2 or (flight and not submitted):
            a, b = flight.popleft()
            finish()
            done = time.perf_counter() - start
            lat.extend(done - r for r in ready[a:b] if r >= warmup_s)
        elif flight:
            wait_encoded()
        else:
            time.sleep(max(0.0, ready[i] - (time.perf_counter() - start)))
            continue
        busy += time.perf_counter() - t0
    total = time.perf_counter() - start
    return LoadResult.of(sessions, lat, batches, busy / total)
