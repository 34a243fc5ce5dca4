"""The load model behind the streaming-capacity numbers (aistack_asr.gpu.capacity), on service times whose
answers are known by hand."""

from __future__ import annotations

import time

from aistack_asr.gpu.capacity import (
    ServiceTimes,
    arrivals,
    max_sessions,
    run_realtime,
    run_realtime_pipelined,
    simulate,
)


def test_arrivals_are_staggered_one_window_per_period() -> None:
    t = arrivals(4, period_s=5.0, duration_s=20.0)
    assert t == sorted(t)
    assert t[:4] == [5.0, 6.25, 7.5, 8.75]
    assert len(t) == 4 + 4 + 4 + 1  # 5..20 s: windows at 5/10/15/20 for session 0, three for the others


def test_lone_windows_wait_only_for_their_own_batch() -> None:
    # 10 sessions over 5 s: a window every 0.5 s, each served alone in 10 ms.
    r = simulate(10, lambda n: 0.01 * n, max_batch=64, duration_s=30.0)
    assert abs(r.p50_s - 0.01) < 1e-9 and abs(r.p95_s - 0.01) < 1e-9
    assert r.mean_batch == 1.0


def test_no_batching_gain_saturates_at_the_service_rate() -> None:
    # 10 ms per window whatever the batch: 100 windows/s, i.e. at most 500 sessions of one window per 5 s.
    n, _ = max_sessions(lambda k: 0.01 * k, max_batch=256, duration_s=60.0)
    assert 480 <= n <= 500
    assert simulate(n, lambda k: 0.01 * k, 256, duration_s=60.0).p95_s <= 1.5
    # Just past the rate the queue grows without bound: over a long enough run, p95 passes any limit.
    assert simulate(n + 10, lambda k: 0.01 * k, 256, duration_s=600.0).p95_s > 1.5


def test_batching_gain_raises_capacity() -> None:
    # A fixed 100 ms per batch plus 2 ms per window: large batches amortise the fixed part.
    def fixed_plus(k: int) -> float:
        return 0.1 + 0.002 * k

    n, _ = max_sessions(fixed_plus, max_batch=256, duration_s=60.0)
    linear, _ = max_sessions(lambda k: 0.0021 * k, max_batch=256, duration_s=60.0)
    assert n > 1500
    assert linear > n  # without the fixed cost, more still fit


def test_service_times_interpolate_between_measured_sizes() -> None:
    svc = ServiceTimes({16: 0.2, 32: 0.3, 64: 0.5})
    assert svc(16) == 0.2 and svc(8) == 0.2  # below the smallest measured size: no extrapolation down
    assert abs(svc(48) - 0.4) < 1e-12
    assert svc.max_batch == 64


def test_wall_clock_loops_serve_every_window() -> None:
    # A 2 ms-per-window engine (sleeping) under 20 sessions for 3 s: far from saturation.
    for pipelined in (False, True):
        t0 = time.perf_counter()
        if pipelined:
            r = run_realtime_pipelined(
                20,
                lambda k: time.sleep(0.001 * k),
                lambda: None,
                lambda: time.sleep(0.001),
                max_batch=32,
                period_s=1.0,
                duration_s=3.0,
                warmup_s=0.0,
            )
        else:
            r = run_realtime(
                20, lambda k: time.sleep(0.002 * k), 32, period_s=1.0, duration_s=3.0, warmup_s=0.0
            )
        assert r.windows == len(arrivals(20, 1.0, 3.0))
        assert r.p95_s < 0.2, r
        assert time.perf_counter() - t0 < 6.0
