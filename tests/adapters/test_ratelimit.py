"""The sliding-window limiter: unit tests on an injected clock, and a real burst over HTTP."""

from __future__ import annotations

import logging
import random
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import pytest

from bot.adapters.sendgrid import Priority, RetryPolicy, SendGridV2Client, SlidingWindowLimiter
from bot.adapters.sendgrid.ratelimit import LEASE_MAX, MemoryRateBudget, NoLimit
from bot.errors import RateLimited
from bot.simulator import DEMO_API_KEY, DEMO_API_USER, SimulatorServer, sample_state
from tests.helpers import wait_until


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def limiter(clock: FakeClock, budget: MemoryRateBudget | None = None, **options: object):
    options = {"limit": 600, "clock": clock, "sleep": clock.sleep, **options}
    return SlidingWindowLimiter(budget=budget or MemoryRateBudget(clock=clock), **options)  # type: ignore[arg-type]


def busiest(times: list[float], window: float) -> int:
    seen: deque[float] = deque()
    worst = 0
    for at in times:
        seen.append(at)
        while seen[0] <= at - window:
            seen.popleft()
        worst = max(worst, len(seen))
    return worst


def test_no_window_ever_holds_more_than_the_limit():
    clock = FakeClock()
    limit = limiter(clock)
    sent = []
    for _ in range(2_000):
        limit.acquire()
        sent.append(clock.now)
    assert busiest(sent, 60.0) == 600
    # ... with the 1 s margin for network jitter: no 61 s window holds more either.
    assert busiest(sent, 61.0) == 600
    # ... and no slower than that: 2,000 grants are 4 windows' worth, 3 waits of 61 s.
    assert clock.now == pytest.approx(3 * 61.0, abs=0.01)


class HeldBudget:
    """A memory budget that counts its transactions; the first one waits for `release`."""

    def __init__(self, clock: FakeClock) -> None:
        self.inner = MemoryRateBudget(clock=clock)
        self.asked: list[int] = []
        self.first_asked = threading.Event()
        self.release = threading.Event()

    def take(self, *, limit: int, window: float) -> float:
        granted, delay = self.take_many(1, limit=limit, window=window)
        return 0.0 if granted else delay

    def take_many(self, count: int, *, limit: int, window: float) -> tuple[int, float]:
        self.asked.append(count)
        if len(self.asked) == 1:
            self.first_asked.set()
            self.release.wait(10)
        return self.inner.take_many(count, limit=limit, window=window)

    def pause(self, seconds: float) -> None:
        self.inner.pause(seconds)


def test_threads_waiting_together_are_granted_in_one_transaction():
    """A burst of 50 commands in one process: not 50 budget transactions in a row."""
    clock = FakeClock()
    budget = HeldBudget(clock)
    limit = limiter(clock, budget)  # type: ignore[arg-type]
    with ThreadPoolExecutor(max_workers=50) as pool:
        first = pool.submit(limit.acquire)
        assert budget.first_asked.wait(10)
        rest = [pool.submit(limit.acquire) for _ in range(49)]
        wait_until(lambda: limit.waiting() == 50)
        budget.release.set()
        for future in [first, *rest]:
            future.result(timeout=10)
    assert budget.asked[0] == 1
    # Everyone who queued behind the first, at once, and one spare grant leased for
    # the demand of the last second (the first grant).
    assert budget.asked[1:] == [49 + 1]
    assert limit.waiting() == 0


def test_a_batch_never_grants_past_the_limit():
    clock = FakeClock()
    budget = HeldBudget(clock)
    limit = limiter(clock, budget, limit=10)  # type: ignore[arg-type]

    def granted_at() -> float:
        limit.acquire()
        return clock.now

    with ThreadPoolExecutor(max_workers=25) as pool:
        first = pool.submit(granted_at)
        assert budget.first_asked.wait(10)
        rest = [pool.submit(granted_at) for _ in range(24)]
        wait_until(lambda: limit.waiting() == 25)
        budget.release.set()
        sent = sorted(future.result(timeout=10) for future in [first, *rest])
    assert busiest(sent, 61.0) == 10
    assert budget.asked[:2] == [1, 24 + 1]  # the 24 waiting, and one spare (demand: 1)


def test_a_burst_that_fits_the_window_is_not_delayed():
    clock = FakeClock()
    limit = limiter(clock)
    waits = [limit.acquire() for _ in range(600)]
    assert waits == [0.0] * 600
    assert clock.now == 0.0
    # The 601st waits for the first to leave the window (plus the margin).
    assert limit.acquire() == pytest.approx(61.0, abs=0.01)


def test_the_sweep_leaves_the_reserve_to_interactive_callers():
    clock = FakeClock()
    budget = MemoryRateBudget(clock=clock)
    sweep = limiter(clock, budget, limit=10, reserve=0.2, priority=Priority.SWEEP)
    interactive = limiter(clock, budget, limit=10, reserve=0.2)
    assert (sweep.allowed, interactive.allowed) == (8, 10)
    assert [sweep.acquire() for _ in range(8)] == [0.0] * 8
    # The window is 80% full: the sweep would wait, an interactive caller does not.
    assert budget.take(limit=sweep.allowed, window=sweep.window + sweep.margin) > 0
    assert [interactive.acquire() for _ in range(2)] == [0.0, 0.0]
    assert sweep.acquire() > 0


def test_default_reserve_keeps_a_fifth_of_600_per_minute_for_commands():
    sweep = SlidingWindowLimiter(limit=600, priority=Priority.SWEEP)
    assert sweep.allowed == 480
    assert SlidingWindowLimiter(limit=1, priority=Priority.SWEEP).allowed == 1


def test_pause_holds_every_caller_on_the_budget():
    clock = FakeClock()
    budget = MemoryRateBudget(clock=clock)
    one, other = limiter(clock, budget), limiter(clock, budget, priority=Priority.SWEEP)
    one.pause_for(5.0)
    assert other.acquire() == pytest.approx(5.0)
    one.pause_for(1.0)
    one.pause_for(0.5)  # never shortens a pause
    assert one.acquire() == pytest.approx(1.0)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="at least 1"):
        SlidingWindowLimiter(limit=0)
    with pytest.raises(ValueError, match="fraction"):
        SlidingWindowLimiter(limit=10, reserve=1.0)


def _burst(limiter: SlidingWindowLimiter | NoLimit, *, reads: int, server: SimulatorServer) -> int:
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
def test_burst_of_500_reads_stays_under_the_rate_with_zero_429s():
    # Both sides allow 200 requests per 2-second window: the same rule as
    # SendGrid's 600/minute, scaled so the burst takes seconds, not minutes,
    # and well below what client and simulator manage unthrottled (~170/s).
    # The window is 2 s, not 1 s, so the limiter's margin (a tenth of the window)
    # covers the time between a grant and the request reaching the simulator on a
    # loaded machine: at 1 s (100 ms margin) a busy CI machine saw one 429 in 500.
    state = sample_state(rate_limit=200, rate_window=2.0)
    with SimulatorServer(state).running() as server:
        limited = _burst(SlidingWindowLimiter(limit=200, window=2.0), reads=500, server=server)
    calls = state.calls()
    assert limited == 0
    assert len(calls) == 500
    assert [c for c in calls if c.status == 429] == []
    assert busiest(sorted(c.at for c in calls), 2.0) <= 200


@pytest.mark.slow
def test_without_the_limiter_the_same_burst_is_throttled():
    """Control for the test above: the simulator does enforce its limit."""
    state = sample_state(rate_limit=100, rate_window=1.0)
    with SimulatorServer(state).running() as server:
        limited = _burst(NoLimit(), reads=300, server=server)
    assert limited > 0
    assert len([c for c in state.calls() if c.status == 429]) == limited


class CountingBudget:
    """A memory budget that records how many grants each transaction asked for."""

    def __init__(self, clock: FakeClock) -> None:
        self.inner = MemoryRateBudget(clock=clock)
        self.asked: list[int] = []
        self.granted = 0

    def take(self, *, limit: int, window: float) -> float:
        granted, delay = self.take_many(1, limit=limit, window=window)
        return 0.0 if granted else delay

    def take_many(self, count: int, *, limit: int, window: float) -> tuple[int, float]:
        self.asked.append(count)
        granted, delay = self.inner.take_many(count, limit=limit, window=window)
        self.granted += granted
        return granted, delay

    def pause(self, seconds: float) -> None:
        self.inner.pause(seconds)


def test_a_burst_leases_grants_ahead_instead_of_asking_the_budget_for_each():
    """50 commands arriving one after another in the same moment: a handful of budget
    transactions (each leasing as many spare grants as were handed out in the last
    second, at most LEASE_MAX), not 50 in a row."""
    clock = FakeClock()
    budget = CountingBudget(clock)
    limit = limiter(clock, budget)  # type: ignore[arg-type]
    assert [limit.acquire() for _ in range(50)] == [0.0] * 50
    assert len(budget.asked) <= 7, budget.asked
    assert max(budget.asked) <= LEASE_MAX + 1
    # What was leased and not used is bounded by the last lease.
    assert 50 <= budget.granted <= 50 + LEASE_MAX


def test_a_single_command_leases_nothing_ahead():
    clock = FakeClock()
    budget = CountingBudget(clock)
    limit = limiter(clock, budget)  # type: ignore[arg-type]
    for _ in range(5):
        limit.acquire()
        clock.now += 2.0  # one command every two seconds: no recent demand
    assert budget.asked == [1] * 5
    assert budget.granted == 5


def test_leased_grants_expire_within_half_the_margin():
    """A leased grant is used within margin/2 of being recorded, or dropped: the
    window of the budget (window + margin) still covers the request's real send."""
    clock = FakeClock()
    budget = CountingBudget(clock)
    limit = limiter(clock, budget)  # type: ignore[arg-type]
    limit.acquire()
    limit.acquire()  # demand 1 in the last second: asks for 2, one is kept
    assert budget.asked == [1, 2]
    clock.now += limit.margin / 2 - 0.01
    limit.acquire()  # the kept one, still fresh
    assert budget.asked == [1, 2]
    limit.acquire()  # demand 3: asks for 4, keeps 3
    clock.now += limit.margin / 2 + 0.01
    limit.acquire()  # the kept ones are stale: asks again
    assert len(budget.asked) == 4


def test_no_grants_are_leased_ahead_once_the_window_is_nearly_full():
    clock = FakeClock()
    budget = CountingBudget(clock)
    limit = limiter(clock, budget, limit=10)  # type: ignore[arg-type]
    for _ in range(10):
        limit.acquire()
    # Leases of 1, 3 and 7 spares for the demand: the last ask got 3 of its 8.
    assert budget.asked == [1, 2, 4, 8]
    assert budget.granted == 10
    # Once an ask got less than it asked for, the next is for the caller only (the
    # 10 handed out in the last second would otherwise make it ask for 11).
    assert limit.acquire() == pytest.approx(61.0, abs=0.01)
    assert budget.asked[4] == 1


def test_a_pause_drops_the_leased_grants():
    clock = FakeClock()
    budget = CountingBudget(clock)
    limit = limiter(clock, budget)  # type: ignore[arg-type]
    limit.acquire()
    limit.acquire()  # leases one ahead
    limit.pause_for(5.0)  # SendGrid said 429
    assert limit.acquire() == pytest.approx(5.0)


def test_leased_grants_never_let_a_window_hold_more_than_the_limit():
    """Commands at uneven intervals (bursts, pauses, leases kept and dropped): no
    60-second window of *sends* (the moment each caller got its grant) holds more
    than the limit."""
    chooser = random.Random(16)
    clock = FakeClock()
    limit = limiter(clock, limit=100)
    sent = []
    for _ in range(3_000):
        limit.acquire()
        sent.append(clock.now)
        clock.now += chooser.choice((0.0, 0.0, 0.0, 0.01, 0.2, 0.3, 0.6, 2.0))
    assert busiest(sent, 60.0) <= 100
