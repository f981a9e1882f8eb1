"""A traffic model for the simulator: subusers spending credits over time (issue 15).

Off by default: a `SimulatorState` without a `TrafficModel` keeps every balance as
it is (the fixtures and tests rely on that). With one, each subuser spends along
a plan made up front from a seed:

- a base burn rate (credits per hour), steady (±10%) or varying (a log-normal
  factor drawn every `segment`), or idle;
- abrupt drops: a campaign spends thousands of credits within minutes;
- top-ups (credits added) and resets of a recurring allowance, on the plan's
  schedule as SendGrid does it: every `period` (daily, weekly, monthly) from the
  account's `last_reset`, at 00:00 UTC (the time of day is an assumption: SendGrid
  reports only the date), not at random moments.

Time is the injected `clock` (seconds, the same clock the bot's scheduler and
limiter use in the bench), so hours of traffic run in seconds. Balances are
settled lazily, when an account is read or its stats are asked for: a plan is a
list of pieces of constant rate, walked forward from the last settled moment, so
10,000 subusers cost nothing between reads. Sending stops at zero credits (a
subuser without credits cannot send). Every crossing of the `line` each account
is given (its low-credit threshold) is recorded with its exact time and whether
a campaign caused it, for the bench to measure alert latency against.
"""

from __future__ import annotations

import math
import random
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from bot.simulator.state import SimulatedAccount


@dataclass(frozen=True, slots=True)
class Piece:
    """From `start` (seconds) on, spend `per_second`; `campaign` marks an abrupt drop."""

    start: float
    per_second: float
    campaign: bool = False


@dataclass(frozen=True, slots=True)
class Jump:
    """At `at`, add `credits` (a top-up) or set the balance to the allowance (`reset`)."""

    at: float
    credits: int = 0
    reset: bool = False


@dataclass(frozen=True, slots=True)
class Crossing:
    user: str
    at: float
    abrupt: bool


@dataclass
class Plan:
    pieces: list[Piece]
    jumps: list[Jump]
    line: int | None
    settled: float
    remain: float
    sent: float = 0.0  # credits spent (emails requested) since the model started
    history: deque[tuple[float, float]] = field(default_factory=deque)
    above: bool = True
    piece: int = 0  # the piece and the jump `settled` is in (both only move forward)
    jump: int = 0


@dataclass(frozen=True, slots=True)
class TrafficShape:
    """How the fleet behaves (rates are credits per hour)."""

    median_rate: float = 300.0
    rate_sigma: float = 1.2
    idle_share: float = 0.25
    varying_share: float = 0.35
    varying_sigma: float = 0.6
    segment: float = 15 * 60.0
    campaigns_per_hour: float = 0.01  # per subuser
    campaign_credits: tuple[int, int] = (2_000, 20_000)
    campaign_minutes: tuple[float, float] = (2.0, 10.0)
    topups_per_hour: float = 0.004
    resets_per_hour: float = 0.002


class TrafficModel:
    """Spends the accounts' credits over `hours` from `start` on `clock`."""

    def __init__(
        self,
        accounts: Iterable[SimulatedAccount],
        *,
        clock: Callable[[], float],
        hours: float,
        line: Callable[[SimulatedAccount], int | None],
        shape: TrafficShape = TrafficShape(),
        seed: int = 0,
        stats_lag: float = 120.0,
        epoch: datetime = datetime(2026, 11, 23, 9, 0),
        rates: dict[str, float] | None = None,
    ) -> None:
        """`rates` (credits per hour) fixes a steady rate for the subusers it names,
        with no campaign, top-up or reset (tests); the others follow `shape`."""
        self._clock = clock
        self.stats_lag = stats_lag
        self.epoch = epoch
        self._lock = threading.Lock()
        self.crossings: list[Crossing] = []
        self._stats_cache: tuple[tuple[float, date], dict[str, int]] | None = None
        self.accounts = {a.username: a for a in accounts}
        start = clock()
        rng = random.Random(seed)
        self._plans: dict[str, Plan] = {}
        for account in self.accounts.values():
            plan = _plan(account, rng, shape, start, hours, line(account), epoch)
            if rates is not None and account.username in rates:
                plan.pieces = [Piece(start, rates[account.username] / 3600)]
                plan.jumps = []
            self._plans[account.username] = plan

    def settle(self, account: SimulatedAccount, until: float | None = None) -> None:
        """Bring `account.credit_remain` to `until` (default: now)."""
        plan = self._plans.get(account.username)
        if plan is None or account.unlimited:
            return
        with self._lock:
            self._settle(account, plan, self._clock() if until is None else until)

    def settle_all(self, until: float | None = None) -> None:
        for account in self.accounts.values():
            self.settle(account, until)

    def requests_today(self, day: date) -> dict[str, int]:
        """What `GET /v3/subusers/stats/sums` reports: emails requested on `day`, as
        known `stats_lag` seconds ago (one request spends one credit)."""
        now = self._clock()
        if self._stats_cache is not None and self._stats_cache[0] == (now, day):
            return self._stats_cache[1]  # the pages of one scan, asked at the same moment
        seen = now - self.stats_lag
        day_start = (datetime.combine(day, datetime.min.time()) - self.epoch).total_seconds()
        totals: dict[str, int] = {}
        with self._lock:
            for user, plan in self._plans.items():
                account = self.accounts[user]
                if account.unlimited:
                    continue
                if plan.settled < now:
                    self._settle(account, plan, now)
                sent = _sent_at(plan, seen) - _sent_at(plan, day_start)
                if sent >= 1:
                    totals[user] = int(sent)
            self._stats_cache = ((now, day), totals)
        return totals

    def _settle(self, account: SimulatedAccount, plan: Plan, until: float) -> None:
        if until <= plan.settled:
            return
        if int(plan.remain) != account.credit_remain:  # a write through the API moved it
            plan.remain = float(account.credit_remain)
        t = plan.settled
        while t < until:
            index = plan.piece
            piece = plan.pieces[index]
            end = plan.pieces[index + 1].start if index + 1 < len(plan.pieces) else math.inf
            jump = plan.jumps[plan.jump] if plan.jump < len(plan.jumps) else None
            nxt = min(end, until, jump.at if jump is not None else math.inf)
            spend = min(plan.remain, piece.per_second * (nxt - t))
            if spend > 0:
                before = plan.remain
                plan.remain -= spend
                plan.sent += spend
                if plan.line is not None and plan.above and plan.remain <= plan.line:
                    at = t + (before - plan.line) / piece.per_second
                    self.crossings.append(Crossing(account.username, at, piece.campaign))
                    plan.above = False
            t = nxt
            if jump is not None and t >= jump.at:
                plan.jump += 1
                if jump.reset:  # what v2's `last_reset` reports from now on
                    account.last_reset = (self.epoch + timedelta(seconds=t)).date().isoformat()
                plan.remain = float(account.credit) if jump.reset else plan.remain + jump.credits
                if plan.line is not None and plan.remain > plan.line:
                    plan.above = True
                elif plan.line is not None and plan.above:  # a reset to a small allowance
                    self.crossings.append(Crossing(account.username, t, True))
                    plan.above = False
            if t >= end:
                plan.piece += 1
        plan.settled = until
        plan.history.append((until, plan.sent))
        while len(plan.history) > 2 and plan.history[1][0] < until - 2 * self.stats_lag - 600:
            plan.history.popleft()
        account.credit_remain = int(plan.remain)

    def now_datetime(self) -> datetime:
        return self.epoch + timedelta(seconds=self._clock())


def _sent_at(plan: Plan, at: float) -> float:
    """Credits spent by `at`, from the settle history (the last record at or before it)."""
    sent = 0.0
    for t, total in plan.history:
        if t > at:
            break
        sent = total
    return sent


def _plan(  # noqa: PLR0917 (one private helper of the constructor)
    account: SimulatedAccount,
    rng: random.Random,
    shape: TrafficShape,
    start: float,
    hours: float,
    line: int | None,
    epoch: datetime,
) -> Plan:
    end = start + hours * 3600
    kind = rng.random()
    base = 0.0
    if kind >= shape.idle_share and account.active:
        base = shape.median_rate * math.exp(rng.gauss(0, shape.rate_sigma)) / 3600
    varying = kind >= 1 - shape.varying_share
    pieces: list[Piece] = []
    t = start
    while t < end:
        factor = (
            math.exp(rng.gauss(0, shape.varying_sigma) - shape.varying_sigma**2 / 2)
            if varying
            else rng.uniform(0.9, 1.1)
        )
        pieces.append(Piece(t, base * factor))
        t += shape.segment
    pieces.append(Piece(end, 0.0))
    # Campaigns: a burst on top of the base rate for a few minutes.
    for _ in range(_poisson(rng, shape.campaigns_per_hour * hours) if account.active else 0):
        at = rng.uniform(start, end)
        minutes = rng.uniform(*shape.campaign_minutes)
        credits = rng.randint(*shape.campaign_credits)
        pieces = _overlay(pieces, at, at + minutes * 60, credits / (minutes * 60))
    jumps = [
        Jump(rng.uniform(start, end), credits=rng.choice((5_000, 10_000, 50_000)))
        for _ in range(_poisson(rng, shape.topups_per_hour * hours))
    ]
    if account.credit and account.period:
        # Resets follow the plan (below). The draws that used to place them at random
        # are still made, so every other subuser's plan stays what it was.
        for _ in range(_poisson(rng, shape.resets_per_hour * hours)):
            rng.uniform(start, end)
        jumps += [Jump(at, reset=True) for at in reset_times(account, epoch, start, end)]
    jumps.sort(key=lambda j: j.at)
    remain = float(account.credit_remain)
    return Plan(
        pieces=pieces,
        jumps=jumps,
        line=line,
        settled=start,
        remain=remain,
        history=deque([(start, 0.0)]),
        above=line is None or remain > line,
    )


def reset_times(
    account: SimulatedAccount, epoch: datetime, start: float, end: float
) -> list[float]:
    """When the recurring allowance resets between `start` and `end` (seconds after
    `epoch`): every `account.period` after `account.last_reset`, at 00:00 UTC."""
    if not account.period:
        return []
    day = date.fromisoformat(account.last_reset)
    times: list[float] = []
    while True:
        day = _after(day, account.period)
        at = (datetime.combine(day, datetime.min.time()) - epoch).total_seconds()
        if at > end:
            return times
        if at > start:
            times.append(at)


def _after(day: date, period: str) -> date:
    if period == "daily":
        return day + timedelta(days=1)
    if period == "weekly":
        return day + timedelta(days=7)
    month = day.month % 12 + 1
    year = day.year + (day.month == 12)
    for last in (day.day, 30, 29, 28):  # the same day next month, or that month's last
        try:
            return date(year, month, min(day.day, last))
        except ValueError:
            continue
    raise AssertionError("unreachable")


def _overlay(pieces: list[Piece], start: float, end: float, extra: float) -> list[Piece]:
    """`pieces` with `extra` per second added between `start` and `end`."""
    out: list[Piece] = []
    for index, piece in enumerate(pieces):
        stop = pieces[index + 1].start if index + 1 < len(pieces) else math.inf
        cuts = sorted({piece.start, *(c for c in (start, end) if piece.start < c < stop)})
        for cut_index, cut in enumerate(cuts):
            cut_end = cuts[cut_index + 1] if cut_index + 1 < len(cuts) else stop
            inside = start <= cut and cut_end <= end
            out.append(
                Piece(
                    cut,
                    piece.per_second + (extra if inside else 0.0),
                    piece.campaign or inside,
                )
            )
    return out


def _poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw (Knuth's method; the means here are small)."""
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1
