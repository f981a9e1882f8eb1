"""From a balance crossing its threshold to the alert: the continuous watch vs today's sweep.

    python bench/alert_latency.py [--quick] [--subusers 10000] [--hours H] [--stats-lag S]

10,000 subusers on the simulator's traffic model (bot/simulator/traffic.py:
steady, varying and idle senders, campaigns that spend thousands in minutes,
top-ups, resets), one SendGrid budget of 600 requests/minute for everything
(the bot's reads, the stats scans, the listing, and people's `show` commands,
40 a minute, through the same budget at interactive priority).

Time: ONE injected virtual clock, shared by the bot's scheduler (`AlertWatch`,
or `SweepService` for the baseline), the rate limiter (its clock and its sleep:
waiting for a grant is what moves time forward), the shared budget, the
simulator's own 600/min limit and the traffic model. Nothing else moves it, so
hours of traffic run in minutes and the figures do not depend on how busy this
machine is: a read costs no virtual time beyond waiting for its grant (SendGrid's
own latency is not modelled; with 8 reads in flight it does not bound 10/s), and
the bot's database work (a real SQLite file per run) costs real time only. This
is honest because the quantity measured, crossing → alert, is decided by which
accounts are read when under the budget, which the shared clock reproduces
exactly; the simulator's own limit counts any request past 600 in 60 s as a 429.

The simulator is called in process (its `SimulatorState`, the same code the HTTP
server runs, including `GET /v3/subusers/stats/sums`), not over HTTP: the HTTP
layer adds no virtual time and would make the run ~10× slower.

Runs, on identical traffic (same seed), each from cold (no stored state):
  v3  the watch with the activity scan;   v2  the watch, forecast only;
  baseline  today's `credits-bot sweep` on the default `*/15` cron (a tick is
            skipped while a sweep still runs, as APScheduler's max_instances=1).
Crossings are counted after a warm-up (the first full read of the fleet) and
until the end of traffic; each run goes on `--tail` minutes more so late alerts
are seen. A crossing is "abrupt" if a campaign was spending when it happened. An
alert posted before the crossing (the forecast's early warning, still standing
when it crosses) counts as latency 0.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from random import Random

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


from bot.adapters.sendgrid.ratelimit import (  # noqa: E402
    MemoryRateBudget,
    Priority,
    SlidingWindowLimiter,
)
from bot.adapters.sendgrid.v3 import STATS_PAGE, parse_credits  # noqa: E402
from bot.adapters.store import SqlStore  # noqa: E402
from bot.adapters.store.alerts import SqlAlertStore  # noqa: E402
from bot.commands.sweep import SweepReport, SweepService  # noqa: E402
from bot.commands.watch import AlertWatch, WatchSettings  # noqa: E402
from bot.domain.alerts import Change, Thresholds, low_line  # noqa: E402
from bot.domain.credits import Account, Balance  # noqa: E402
from bot.simulator import DEMO_API_KEY, DEMO_API_USER  # noqa: E402
from bot.simulator.state import SimulatedAccount, SimulatorState, generated_subusers  # noqa: E402
from bot.simulator.traffic import TrafficModel  # noqa: E402

LIMIT = 600
EPOCH = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
THRESHOLDS = Thresholds(below=1000, percent=10)
SHOWS_PER_MINUTE = 40


class VirtualClock:
    """Seconds since the start of the run; only `sleep` moves it."""

    def __init__(self) -> None:
        self.t = 0.0

    def monotonic(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds

    def advance_to(self, t: float) -> None:
        self.t = max(self.t, t)

    def now(self) -> datetime:
        return EPOCH + timedelta(seconds=self.t)


class DirectBackend:
    """The simulator's v3 answers, in process, behind the bot's limiter; every request
    is logged at its virtual time (the 60-second maximum is computed from this log)."""

    def __init__(
        self, state: SimulatorState, limiter: SlidingWindowLimiter, clock: VirtualClock, log: list
    ) -> None:
        self._state = state
        self._limiter = limiter
        self._clock = clock
        self._log = log
        self.refused = 0
        self.before: Callable[[], None] = lambda: None

    def _request(self, params: dict[str, str]) -> object:
        self.before()  # people's commands due by now go first (they share the budget)
        self._limiter.acquire()
        self._log.append(self._clock.t)
        assert self._state.limit is not None
        if self._state.limit.check(self._state.api_user) is not None:
            self.refused += 1  # a 429: the bench reports it (the target is none)
        return self._state.handle_v3(params)[0]

    def get_balance(self, user: str) -> Balance:
        return parse_credits(self._request({"user": user, "task": "retrieve"}))  # type: ignore[arg-type]

    def list_accounts(self) -> Iterator[Account]:
        offset = 0
        while True:
            page = self._request({"task": "get", "limit": "500", "offset": str(offset)})
            assert isinstance(page, list)
            for item in page:
                yield Account(item["username"], item["email"], not item["disabled"])
            if len(page) < 500:
                return
            offset += len(page)

    def activity(self, day: date) -> dict[str, int]:
        found: dict[str, int] = {}
        offset = 0
        while True:
            body = self._request(
                {
                    "task": "stats-sums",
                    "start_date": day.isoformat(),
                    "sort_by_metric": "requests",
                    "limit": str(STATS_PAGE),
                    "offset": str(offset),
                }
            )
            assert isinstance(body, dict)
            for item in body["stats"]:
                if item["metrics"]["requests"] <= 0:
                    return found
                found[item["name"]] = item["metrics"]["requests"]
            if len(body["stats"]) < STATS_PAGE:
                return found
            offset += STATS_PAGE


@dataclass
class Recorder:
    """The `AlertPoster`: when each subuser was announced, and how."""

    clock: VirtualClock
    events: dict[str, list[tuple[float, Change]]] = field(default_factory=lambda: defaultdict(list))
    digests: int = 0

    def post_digest(self, report: SweepReport) -> None:
        self.digests += 1
        for item in report.announcements:
            self.events[item.assessment.user].append((self.clock.t, item.change))


@dataclass
class Run:
    name: str
    latencies: dict[str, list[float]]
    missed: dict[str, int]
    crossings: int
    duplicates: int
    peak_60s: int
    refused: int
    reads: int
    digests: int
    seconds: float
    extra: str = ""


def line_of(account: SimulatedAccount) -> int | None:
    if account.unlimited or not account.active:
        return None
    allowance = account.credit if account.credit and account.period else None
    balance = Balance(unlimited=False, remaining=account.credit_remain, allowance=allowance)
    return low_line(balance, THRESHOLDS)


def simulate(
    mode: str, *, subusers: int, hours: float, warmup: float, tail: float, lag: float, seed: int
) -> Run:
    started = time.perf_counter()
    clock = VirtualClock()
    accounts = generated_subusers(subusers, seed=seed)
    state = SimulatorState(
        api_user=DEMO_API_USER, api_key=DEMO_API_KEY, subusers=accounts, rate_limit=LIMIT
    )
    assert state.limit is not None
    state.limit._clock = clock.monotonic  # the simulator's limit on the same clock
    end = (hours + tail / 60) * 3600
    traffic = TrafficModel(
        accounts,
        clock=clock.monotonic,
        hours=hours + tail / 60,
        line=line_of,
        seed=seed,
        stats_lag=lag,
        epoch=EPOCH.replace(tzinfo=None),
    )
    state.traffic = traffic
    log: list[float] = []
    budget = MemoryRateBudget(clock=clock.monotonic)

    def limiter(priority: Priority) -> SlidingWindowLimiter:
        return SlidingWindowLimiter(
            limit=LIMIT,
            budget=budget,
            priority=priority,
            reserve=0.2,
            clock=clock.monotonic,
            sleep=clock.sleep,
        )

    backend = DirectBackend(state, limiter(Priority.SWEEP), clock, log)
    people = DirectBackend(state, limiter(Priority.INTERACTIVE), clock, log)
    recorder = Recorder(clock)
    scratch = tempfile.mkdtemp(prefix="bench-alerts-")
    store = SqlStore.from_url(f"sqlite:///{scratch}/{mode}.db")
    alerts = SqlAlertStore(store)
    rng = Random(seed + 1)
    users = [a.username for a in accounts]
    next_show = 0.0

    def shows(watch: AlertWatch | None) -> None:
        nonlocal next_show
        while next_show <= clock.t:
            next_show = max(next_show, clock.t - 1.0)
            user = rng.choice(users)
            balance = people.get_balance(user)
            if watch is not None:
                watch.observe([(user, balance)])
            next_show += 60 / SHOWS_PER_MINUTE

    reads = 0
    extra = ""
    if mode == "baseline":
        sweeper = SweepService(
            backend=backend,
            store=alerts,
            poster=recorder,
            thresholds=THRESHOLDS,
            concurrency=1,
            horizon=timedelta(minutes=15) + timedelta(hours=1),
            clock=clock.now,
            logger=logging.getLogger("bench.sweep"),
        )
        tick = 0.0
        backend.before = lambda: shows(None)
        while clock.t < end:
            shows(None)
            if clock.t >= tick:
                reads += sweeper.sweep().read
                # Ticks that fell during the sweep were skipped (max_instances=1).
                tick = (clock.t // 900 + 1) * 900
                continue
            clock.advance_to(min(tick, next_show, end))
    else:
        watch = AlertWatch(
            backend=backend,
            store=alerts,
            poster=recorder,
            thresholds=THRESHOLDS,
            activity=backend if mode == "v3" else None,
            settings=WatchSettings(concurrency=1),
            clock=clock.now,
            logger=logging.getLogger("bench.watch"),
        )
        backend.before = lambda: shows(watch)
        try:
            while clock.t < end:
                shows(watch)
                watch.step()
                upcoming = watch.next_due()
                target = min(next_show, end)
                if upcoming is not None:
                    target = min(target, (upcoming - EPOCH).total_seconds())
                clock.advance_to(max(target, clock.t + 0.01))
            reads = watch.reads
            extra = f"; {watch.scans} stats scans, {watch.urgent} reads brought forward by them"
        finally:
            watch.close()
    store.close()
    traffic.settle_all(end)
    return score(
        mode,
        traffic,
        recorder,
        log,
        window=(warmup * 60, hours * 3600),
        end=end,
        refused=backend.refused + people.refused,
        reads=reads,
        extra=extra,
        seconds=time.perf_counter() - started,
    )


def score(
    mode: str,
    traffic: TrafficModel,
    recorder: Recorder,
    log: list[float],
    *,
    window: tuple[float, float],
    end: float,
    refused: int,
    reads: int,
    seconds: float,
    extra: str,
) -> Run:
    latencies: dict[str, list[float]] = {"gradual": [], "abrupt": []}
    missed = {"gradual": 0, "abrupt": 0}
    counted = 0
    for crossing in traffic.crossings:
        if not window[0] <= crossing.at <= window[1]:
            continue
        counted += 1
        kind = "abrupt" if crossing.abrupt else "gradual"
        events = recorder.events.get(crossing.user, [])
        before = [e for e in events if e[0] <= crossing.at]
        after = [e for e in events if e[0] > crossing.at and e[1] is not Change.RECOVERED]
        if before and before[-1][1] is not Change.RECOVERED:
            latencies[kind].append(0.0)
        elif after:
            latencies[kind].append(after[0][0] - crossing.at)
        else:
            missed[kind] += 1
            latencies[kind].append(end - crossing.at)  # censored: at least this long
    duplicates = 0
    for events in recorder.events.values():
        for (_, a), (_, b) in itertools.pairwise(events):
            if a is b and a is not Change.STILL_LOW:
                duplicates += 1
    return Run(
        mode,
        latencies,
        missed,
        counted,
        duplicates,
        peak_window(log, 60.0),
        refused,
        reads,
        recorder.digests,
        seconds,
        extra,
    )


def peak_window(times: list[float], window: float) -> int:
    """The most requests in any `window` seconds."""
    times = sorted(times)
    best, first = 0, 0
    for last, t in enumerate(times):
        while times[first] <= t - window:
            first += 1
        best = max(best, last - first + 1)
    return best


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


def describe(run: Run) -> None:
    both = run.latencies["gradual"] + run.latencies["abrupt"]
    print(
        f"  {run.name:8} crossings {run.crossings:5}  reads {run.reads:7,}  digests "
        f"{run.digests:4}  peak requests in 60 s {run.peak_60s} (budget {LIMIT})  429s "
        f"{run.refused}  duplicate alerts {run.duplicates}  ({run.seconds:.0f} s real{run.extra})"
    )
    for kind, values in (("all", both), *run.latencies.items()):
        missed = sum(run.missed.values()) if kind == "all" else run.missed[kind]
        print(
            f"    {kind:8} n={len(values):5}  p50 {pct(values, 0.5):7.0f} s  p95 "
            f"{pct(values, 0.95):7.0f} s  max {max(values, default=float('nan')):7.0f} s  "
            f"not alerted by the end {missed}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 h of traffic instead of 4 h")
    parser.add_argument("--subusers", type=int, default=10_000)
    parser.add_argument("--hours", type=float, default=None)
    parser.add_argument("--warmup", type=float, default=40.0, help="minutes")
    parser.add_argument("--tail", type=float, default=60.0, help="minutes")
    parser.add_argument("--stats-lag", type=float, default=120.0, help="seconds")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    hours = args.hours or (2.0 if args.quick else 4.0)
    logging.basicConfig(level=logging.ERROR)
    load = (
        " ".join(Path("/proc/loadavg").read_text().split()[:3])
        if os.path.exists("/proc/loadavg")
        else "n/a"
    )
    print(
        f"{args.subusers:,} subusers, {hours:g} h of traffic (+{args.tail:g} min tail, "
        f"crossings counted after {args.warmup:g} min), SendGrid budget {LIMIT}/min for "
        f"everything (reads at sweep priority, reserve 20%; {SHOWS_PER_MINUTE} shows/min "
        f"interactive), stats lag {args.stats_lag:g} s, seed {args.seed}; virtual time; "
        f"loadavg {load}"
    )
    common = {
        "subusers": args.subusers,
        "hours": hours,
        "warmup": args.warmup,
        "tail": args.tail,
        "lag": args.stats_lag,
        "seed": args.seed,
    }
    runs = {mode: simulate(mode, **common) for mode in ("v3", "v2", "baseline")}
    for run in runs.values():
        describe(run)
    v3 = runs["v3"].latencies["gradual"] + runs["v3"].latencies["abrupt"]
    base = runs["baseline"].latencies["gradual"] + runs["baseline"].latencies["abrupt"]
    x, y = pct(v3, 0.95), pct(base, 0.95)
    print(f"alert latency p95 {x:.0f} s; full-sweep baseline p95 {y:.0f} s; ratio {x / y:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
