"""The continuous low-credit watch (issue 15), on an injected clock: the simulator's
traffic model spends credits on the same clock the watch reads by, over HTTP, with
a real SQLite store and digests posted to the fake Slack."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.sendgrid import SendGridV3Client
from bot.adapters.slack.web import build_web_client
from bot.adapters.store import SqlStore
from bot.adapters.store.alerts import SqlAlertStore
from bot.commands.watch import AlertWatch, WatchSettings
from bot.domain.alerts import AlertLevel, Thresholds
from bot.simulator import (
    DEMO_API_KEY,
    DEMO_API_USER,
    FaultRule,
    SimulatedAccount,
    SimulatorServer,
    SimulatorState,
)
from bot.simulator.traffic import TrafficModel, TrafficShape
from bot.transports.slack.alerts import SlackAlertPoster
from tests.fakes.slack_api import FakeSlack
from tests.scenarios.conftest import USERS, BotFactory, backend_client

ALERTS = "C0ALERTS1"
EPOCH = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


class SharedClock:
    """Seconds for the simulator's traffic, the same moment as a datetime for the bot."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def monotonic(self) -> float:
        return self.seconds

    def now(self) -> datetime:
        return EPOCH + timedelta(seconds=self.seconds)

    def advance(self, **delta: float) -> None:
        self.seconds += timedelta(**delta).total_seconds()


@pytest.fixture
def clock() -> SharedClock:
    return SharedClock()


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack().running() as fake:
        yield fake


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    store = SqlStore.from_url(f"sqlite:///{tmp_path / 'watch.sqlite3'}")
    yield store
    store.close()


def accounts() -> list[SimulatedAccount]:
    return [
        SimulatedAccount("fast", "fast@example.com", credit_remain=10_000),
        SimulatedAccount("steady", "steady@example.com", credit_remain=50_000),
        SimulatedAccount("topped", "topped@example.com", credit_remain=5_000),
    ]


@pytest.fixture
def traffic_sim(clock: SharedClock) -> Iterator[SimulatorServer]:
    """Three subusers: `fast` spends 6,000 credits an hour, `steady` 60, `topped` 600."""
    subusers = accounts()
    state = SimulatorState(
        api_user=DEMO_API_USER, api_key=DEMO_API_KEY, subusers=subusers, rate_limit=None
    )
    state.traffic = TrafficModel(
        subusers,
        clock=clock.monotonic,
        hours=24,
        line=lambda _account: 1000,
        epoch=EPOCH.replace(tzinfo=None),
        stats_lag=0,
        rates={"fast": 6_000, "steady": 60, "topped": 600},
    )
    with SimulatorServer(state).running() as server:
        yield server


def make_watch(
    backend: object,
    slack: FakeSlack,
    store: SqlStore,
    clock: SharedClock,
    *,
    activity: object | None = None,
    **options: object,
) -> AlertWatch:
    poster = SlackAlertPoster(
        client=build_web_client(token="xoxb-alerts", base_url=slack.api_url),
        channel_id=ALERTS,
        sleep=lambda _s: None,
    )
    return AlertWatch(
        backend=backend,  # type: ignore[arg-type]
        store=SqlAlertStore(store),
        poster=poster,
        thresholds=Thresholds(below=1000, percent=10),
        activity=activity,  # type: ignore[arg-type]
        settings=WatchSettings(concurrency=1, read_ahead=False, **options),  # type: ignore[arg-type]
        clock=clock.now,
        logger=logging.getLogger("test.watch"),
    )


def reads_of(simulator: SimulatorServer, user: str) -> int:
    return sum(1 for c in simulator.state.calls() if c.user == user and c.task == "retrieve")


def digests(slack: FakeSlack) -> list[dict]:
    return [
        c.payload
        for c in slack.state.calls_to("chat.postMessage")
        if c.payload.get("channel") == ALERTS
    ]


def run_for(
    watch: AlertWatch, clock: SharedClock, *, hours: float, step_minutes: float = 1
) -> None:
    end = clock.seconds + hours * 3600
    while clock.seconds < end:
        watch.step()
        clock.advance(minutes=step_minutes)


@pytest.mark.parametrize("version", ["v2", "v3"])
def test_a_fast_burner_is_read_far_more_often_than_a_steady_one(
    version, traffic_sim, slack, store, clock
):
    backend = backend_client(traffic_sim, version, timeout=5)
    watch = make_watch(backend, slack, store, clock, horizon=timedelta(0))
    try:
        run_for(watch, clock, hours=6)
    finally:
        watch.close()
    fast, steady = reads_of(traffic_sim, "fast"), reads_of(traffic_sim, "steady")
    # fast crosses its line after 1.5 h and runs dry at 1 h 40: read again and again as
    # it nears each; steady (~800 h away) only to learn its rate, then not before
    # CREDITS_MAX_STALENESS (6 h).
    assert steady == 2  # first sight, and the read that learns its rate
    assert fast >= 3 * steady, (fast, steady)  # 7 vs 2 (and all of fast's within 1 h 40)
    [low, exhausted] = digests(slack)
    assert "fast" in low["text"]
    assert "fast" in exhausted["text"]


def test_the_fast_burner_is_alerted_within_minutes_of_crossing(traffic_sim, slack, store, clock):
    backend = backend_client(traffic_sim, "v2", timeout=5)
    watch = make_watch(backend, slack, store, clock, horizon=timedelta(0))
    try:
        run_for(watch, clock, hours=1.5)
        # 10,000 credits at 6,000 an hour reach the 1,000 line after 1 h 30 min.
        run_for(watch, clock, hours=3 / 60)
    finally:
        watch.close()
    [digest] = digests(slack)
    assert "fast" in digest["text"]  # the fallback text names the account
    states = SqlAlertStore(store).states(["fast"])
    assert states["fast"].announced is AlertLevel.LOW


def test_a_top_up_is_not_alerted_and_keeps_the_burn_rate(traffic_sim, slack, store, clock):
    backend = backend_client(traffic_sim, "v2", timeout=5)
    watch = make_watch(backend, slack, store, clock, horizon=timedelta(0))
    alerts = SqlAlertStore(store)
    try:
        run_for(watch, clock, hours=2)
        rate_before = alerts.states(["topped"])["topped"].usage.per_hour
        traffic_sim.state.subusers["topped"].credit_remain += 20_000  # a top-up
        clock.advance(minutes=1)
        watch.observe([("topped", backend.get_balance("topped"))])
        run_for(watch, clock, hours=2)
    finally:
        watch.close()
    assert not [d for d in digests(slack) if "topped" in d["text"]]
    state = alerts.states(["topped"])["topped"]
    assert state.level is AlertLevel.OK
    assert rate_before
    assert state.usage is not None
    assert state.usage.per_hour == pytest.approx(600, rel=0.2)
    assert state.runway_hours() == pytest.approx(state.usage.remaining / 600, rel=0.2)


def test_a_refused_stats_scan_falls_back_to_the_forecast(traffic_sim, slack, store, clock, caplog):
    backend = backend_client(traffic_sim, "v3", timeout=5)
    assert isinstance(backend, SendGridV3Client)
    traffic_sim.state.add_fault(FaultRule(kind="status", arg="403", task="stats-sums"))
    caplog.set_level(logging.WARNING, logger="test.watch")
    watch = make_watch(backend, slack, store, clock, activity=backend, horizon=timedelta(0))
    try:
        run_for(watch, clock, hours=1.6)
    finally:
        watch.close()
    refusals = [r for r in caplog.records if "activity scan was refused" in r.getMessage()]
    assert len(refusals) == 1  # logged once
    assert [d for d in digests(slack) if "fast" in d["text"]]  # by the forecast


def test_the_stats_scan_brings_an_abrupt_drop_forward(traffic_sim, slack, store, clock):
    backend = backend_client(traffic_sim, "v3", timeout=5)
    watch = make_watch(backend, slack, store, clock, activity=backend, horizon=timedelta(0))
    try:
        run_for(watch, clock, hours=1)
        before = reads_of(traffic_sim, "steady")
        # A campaign: steady spends 49,500 credits in a moment (its forecast is far off).
        traffic_sim.state.subusers["steady"].credit_remain -= 49_500
        traffic_sim.state.traffic._plans["steady"].sent += 49_500
        run_for(watch, clock, hours=0.1)
    finally:
        watch.close()
    assert reads_of(traffic_sim, "steady") > before
    assert [d for d in digests(slack) if "steady" in d["text"]]
    assert watch.urgent >= 1


@pytest.mark.parametrize("api_version", ["v2", "v3"])
def test_a_show_that_finds_a_crossing_alerts_without_another_call(
    start_bot: BotFactory, api_version
):
    bot = start_bot(CREDITS_ALERT_CHANNEL=ALERTS)
    bot.simulator.state.clear_calls()

    def alert_posts(at_least: int, timeout: float) -> list[dict[str, Any]]:
        # The reply goes first; the alert decision follows it off the reply's path.
        deadline = time.monotonic() + timeout
        while True:
            posts = [
                c.payload
                for c in bot.slack.state.calls_to("chat.postMessage")
                if c.payload.get("channel") == ALERTS
            ]
            if len(posts) >= at_least or time.monotonic() > deadline:
                return posts
            time.sleep(0.02)

    reply = bot.command("show hooli", USERS["admin"])
    assert "hooli" in reply.text
    posts = alert_posts(1, timeout=5.0)
    assert len(posts) == 1
    assert "hooli" in posts[0]["text"]
    reads = [c for c in bot.simulator.state.calls() if c.user == "hooli"]
    assert len(reads) == 1  # the show's own read; the alert cost no SendGrid call
    # A second show finds the same level: announced once.
    bot.command("show hooli", USERS["admin"])
    assert len(alert_posts(2, timeout=2.0)) == 1


def test_a_reset_to_an_allowance_below_the_line_is_alerted_just_after_it(slack, store):
    """A daily plan of 500 credits (line 1,000), topped up to 5,000 and not sending: at
    midnight SendGrid resets it to 500. Nothing is spent, so no forecast or stats scan
    sees it coming; the plan's period does. On v3 (the period is in the balance)."""
    clock = SharedClock()
    clock.seconds = 14 * 3600  # 23:00
    daily = SimulatedAccount(
        "daily",
        "daily@example.com",
        credit=500,
        credit_remain=5_000,
        period="daily",
        last_reset="2026-11-23",
    )
    state = SimulatorState(
        api_user=DEMO_API_USER, api_key=DEMO_API_KEY, subusers=[daily], rate_limit=None
    )
    state.traffic = TrafficModel(
        [daily],
        clock=clock.monotonic,
        hours=6,
        line=lambda _account: 1000,
        epoch=EPOCH.replace(tzinfo=None),
        stats_lag=0,
        shape=TrafficShape(idle_share=1.0, campaigns_per_hour=0, topups_per_hour=0),
    )
    with SimulatorServer(state).running() as simulator:
        backend = backend_client(simulator, "v3", timeout=5)
        watch = make_watch(backend, slack, store, clock, horizon=timedelta(0))
        try:
            run_for(watch, clock, hours=1 + 5 / 60)  # to 00:05
        finally:
            watch.close()
    [digest] = digests(slack)
    assert "daily" in digest["text"]
    assert [c.at for c in state.traffic.crossings] == [15 * 3600]  # the reset, at 00:00
    assert SqlAlertStore(store).states(["daily"])["daily"].announced is AlertLevel.LOW


def test_a_burst_of_shows_of_one_new_subuser_is_decided_on_its_latest_balance(
    traffic_sim, slack, store, clock, caplog
):
    """50 `show`s of the same subuser reach the watch in one batch: it decides on the
    latest balance once (the batch used to insert the same new state 50 times and
    lose every read of it to the unique key)."""
    backend = backend_client(traffic_sim, "v2", timeout=5)
    watch = make_watch(backend, slack, store, clock, horizon=timedelta(0))
    caplog.set_level(logging.WARNING)
    try:
        first = backend.get_balance("steady")
        traffic_sim.state.subusers["steady"].credit_remain = 400  # below the 1,000 line
        latest = backend.get_balance("steady")
        watch.observe([("steady", first)] * 25 + [("steady", latest)] * 25)
    finally:
        watch.close()
    state = SqlAlertStore(store).states(["steady"])["steady"]
    assert state.level is AlertLevel.LOW
    assert "IntegrityError" not in caplog.text
