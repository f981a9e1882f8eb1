"""The client-side limiter: unit tests on an injected clock, and a real burst over HTTP."""

from __future__ import annotations

import logging
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import pytest

from bot.adapters.sendgrid import RetryPolicy, SendGridV2Client, TokenBucket
from bot.adapters.sendgrid.ratelimit import NoLimit
from bot.errors import RateLimited
from bot.simulator import DEMO_API_KEY, DEMO_API_USER, SimulatorServer, sample_state


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_bucket_never_admits_more_than_the_limit_in_any_window():
    clock = FakeClock()
    bucket = TokenBucket(limit=600, clock=clock, sleep=clock.sleep)
    sent = []
    for _ in range(2_000):
        bucket.acquire()
        sent.append(clock.now)
    window: deque[float] = deque()
    worst = 0
    for at in sent:
        window.append(at)
        while window[0] <= at - 60.0:
            window.popleft()
        worst = max(worst, len(window))
    assert worst <= 600
    # ... and it is not needlessly slow: 2,000 requests at 600/min is about 200 s.
    assert 190 < clock.now < 215


def test_pause_holds_every_caller():
    clock = FakeClock()
    bucket = TokenBucket(limit=600, clock=clock, sleep=clock.sleep)
    bucket.pause_for(5.0)
    assert bucket.acquire() >= 5.0
    assert clock.now >= 5.0


def test_default_burst_is_a_sixtieth_of_the_window():
    assert TokenBucket(limit=600).burst == 10
    assert TokenBucket(limit=100, window=1.0).burst == 1
    with pytest.raises(ValueError, match="at least 1"):
        TokenBucket(limit=0)


def _burst(limiter: TokenBucket | NoLimit, *, reads: int, server: SimulatorServer) -> int:
    """Send `reads` balance reads from 8 threads; return how many raised RateLimited."""
    client = SendGridV2Client(
        api_user=DEMO_API_USER,
        api_key=DEMO_API_KEY,
        base_url=server.url,
        timeout=5.0,
        limiter=limiter,
        retry=RetryPolicy(attempts=1),
        logger=logging.getLogger("test.burst"),
    )

    def read(_: int) -> int:
        try:
            client.get_balance("acme-eu")
        except RateLimited:
            return 1
        return 0

    with ThreadPoolExecutor(max_workers=8) as pool:
        limited = sum(pool.map(read, range(reads)))
    client.close()
    return limited


@pytest.mark.slow
def test_burst_of_1000_reads_stays_under_the_rate_with_zero_429s():
    # Both sides allow 100 requests per 1-second window: the same rule as
    # SendGrid's 600/minute, scaled so the burst takes seconds, not minutes,
    # and well below what client and simulator manage unthrottled (~170/s).
    state = sample_state(rate_limit=100, rate_window=1.0)
    with SimulatorServer(state).running() as server:
        limited = _burst(TokenBucket(limit=100, window=1.0), reads=1_000, server=server)
    calls = state.calls()
    assert limited == 0
    assert len(calls) == 1_000
    assert [c for c in calls if c.status == 429] == []
    times = sorted(c.at for c in calls)
    window: deque[float] = deque()
    for at in times:
        window.append(at)
        while window[0] <= at - 1.0:
            window.popleft()
        assert len(window) <= 100


@pytest.mark.slow
def test_without_the_limiter_the_same_burst_is_throttled():
    """Control for the test above: the simulator does enforce its limit."""
    state = sample_state(rate_limit=100, rate_window=1.0)
    with SimulatorServer(state).running() as server:
        limited = _burst(NoLimit(), reads=300, server=server)
    assert limited > 0
    assert len([c for c in state.calls() if c.status == 429]) == limited
