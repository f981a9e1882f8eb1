"""Low-credit sweeps end to end: the simulator, a real store, digests posted to the fake Slack."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from slack_sdk.models.blocks import Block

from bot.adapters.sendgrid import SendGridV2Client, SendGridV3Client
from bot.adapters.slack.web import build_web_client
from bot.adapters.store import SqlStore
from bot.adapters.store.alerts import SqlAlertStore
from bot.adapters.store.lock import SchedulerLock
from bot.commands.sweep import SweepService
from bot.domain.alerts import Thresholds
from bot.simulator import (
    DEMO_API_KEY,
    DEMO_API_USER,
    FaultRule,
    SimulatedAccount,
    SimulatorServer,
    SimulatorState,
)
from bot.transports.clock import ClockJobs
from bot.transports.slack.alerts import SlackAlertPoster
from tests.fakes.slack_api import FakeSlack
from tests.helpers import wait_until
from tests.scenarios.conftest import backend_client

ALERTS = "C0ALERTS1"


class Timeline:
    """An injected clock the test moves forward."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack().running() as fake:
        yield fake


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    store = SqlStore.from_url(f"sqlite:///{tmp_path / 'alerts.sqlite3'}")
    yield store
    store.close()


Backend = SendGridV2Client | SendGridV3Client


@pytest.fixture(params=["v2", "v3"])
def backend_for(request: pytest.FixtureRequest) -> Callable[[SimulatorServer], Backend]:
    """Every sweep scenario runs against SendGrid v2 and v3: a client for a simulator."""

    def build(simulator: SimulatorServer) -> Backend:
        return backend_client(
            simulator, request.param, timeout=5, logger=logging.getLogger("test.sweep")
        )

    return build


def make_sweeper(
    backend: Backend,
    slack: FakeSlack,
    store: SqlStore,
    timeline: Timeline,
    sleeps: Sleeps | None = None,
    **options: object,
) -> SweepService:
    poster = SlackAlertPoster(
        client=build_web_client(token="xoxb-alerts", base_url=slack.api_url),
        channel_id=ALERTS,
        sleep=sleeps or Sleeps(),
    )
    return SweepService(
        backend=backend,
        store=SqlAlertStore(store),
        poster=poster,
        thresholds=Thresholds(below=1000, percent=10),
        clock=timeline,
        **options,  # type: ignore[arg-type]
    )


def digests(slack: FakeSlack) -> list[dict]:
    return [
        c.payload
        for c in slack.state.calls_to("chat.postMessage")
        if c.payload.get("channel") == ALERTS
    ]


def text_of(message: dict) -> str:
    return json.dumps(message, ensure_ascii=False)


def test_two_sweeps_in_a_row_alert_once(backend_for, simulator, slack, store):
    sweeper = make_sweeper(backend_for(simulator), slack, store, Timeline())
    first = sweeper.sweep()
    assert [a.assessment.user for a in first.alerts] == [
        "hooli",
        "umbrella",
        "globex",
        "initech",
        "tyrell",
    ]
    second = sweeper.sweep()
    assert second.alerts == []
    [digest] = digests(slack)
    text = text_of(digest)
    assert text.index("*hooli*") < text.index("*globex*")  # exhausted first
    assert "Low credits: 2 exhausted, 3 low" in text
    assert "cyberdyne" not in text  # inactive: skipped
    assert "stark-industries" not in text  # unlimited: never low


def test_recovery_is_announced_once(backend_for, simulator, slack, store):
    timeline = Timeline()
    sweeper = make_sweeper(backend_for(simulator), slack, store, timeline)
    sweeper.sweep()
    simulator.state.subusers["globex"].credit_remain = 9_000  # topped up
    timeline.advance(minutes=15)
    report = sweeper.sweep()
    assert [r.assessment.user for r in report.recoveries] == ["globex"]
    timeline.advance(minutes=15)
    assert sweeper.sweep().recoveries == []
    recovered = text_of(digests(slack)[1])
    assert "*globex* is back to 9,000 credits" in recovered


def test_snooze_silences_until_it_ends(backend_for, simulator, slack, store):
    timeline = Timeline()
    sweeper = make_sweeper(backend_for(simulator), slack, store, timeline)
    sweeper.sweep()
    SqlAlertStore(store).snooze("globex", until=timeline.now + timedelta(hours=24))
    simulator.state.subusers["globex"].credit_remain = 0  # gets worse while snoozed
    for _ in range(3):
        timeline.advance(hours=6)
        assert all(a.assessment.user != "globex" for a in sweeper.sweep().announcements)
    timeline.advance(hours=7)  # the snooze has ended
    reminder = [a for a in sweeper.sweep().alerts if a.assessment.user == "globex"]
    assert len(reminder) == 1
    assert "still low after a snooze" in text_of(digests(slack)[-1])


def test_failed_reads_are_listed_and_the_rest_still_alerted(backend_for, slack, store):
    fleet = [
        SimulatedAccount(username=f"sub-{i:03d}", email=f"s{i}@x.example", credit_remain=i * 20)
        for i in range(100)
    ]
    state = SimulatorState(
        api_user=DEMO_API_USER, api_key=DEMO_API_KEY, subusers=fleet, rate_limit=None
    )
    broken = {f"sub-{i:03d}" for i in (3, 21, 42, 77, 90)}  # 5% of reads fail, every retry
    for user in broken:
        state.add_fault(FaultRule(kind="status", arg="503", user=user))
    with SimulatorServer(state).running() as simulator:
        report = make_sweeper(backend_for(simulator), slack, store, Timeline()).sweep()
    assert {u for u, _ in report.failures} == broken
    low = {f"sub-{i:03d}" for i in range(51)} - broken  # 0..1,000 credits
    assert {a.assessment.user for a in report.alerts} == low
    text = "".join(text_of(m) for m in digests(slack))
    assert "Could not read 5 subuser(s)" in text
    assert "sub-042 (Unavailable)" in text


def test_many_low_subusers_are_split_into_paced_messages_within_block_kit(
    backend_for, slack: FakeSlack, store: SqlStore
):
    low = [
        SimulatedAccount(username=f"low-{i:03d}", email=f"l{i}@x.example", credit_remain=i)
        for i in range(120)
    ]
    state = SimulatorState(
        api_user=DEMO_API_USER, api_key=DEMO_API_KEY, subusers=low, rate_limit=None
    )
    sleeps = Sleeps()
    with SimulatorServer(state).running() as simulator:
        report = make_sweeper(
            backend_for(simulator), slack, store, Timeline(), sleeps=sleeps
        ).sweep()
    assert len(report.alerts) == 120
    messages = digests(slack)
    assert len(messages) == 6  # 23 subusers a message
    for message in messages:
        assert len(message["blocks"]) <= 50
        for block in message["blocks"]:
            Block.parse(block).validate_json()
    everything = "".join(text_of(m) for m in messages)
    assert all(f"*low-{i:03d}*" in everything for i in range(120))
    assert sleeps.calls == [1.1] * 5  # one message per second to the channel


def test_forecast_warns_early_and_shows_in_the_digest(backend_for, simulator, slack, store):
    timeline = Timeline()
    sweeper = make_sweeper(
        backend_for(simulator), slack, store, timeline, horizon=timedelta(hours=2)
    )
    simulator.state.subusers["acme-us"].credit_remain = 10_000
    sweeper.sweep()
    for _ in range(2):  # 3,000 credits an hour
        timeline.advance(hours=1)
        simulator.state.subusers["acme-us"].credit_remain -= 3_000
        report = sweeper.sweep()
    # 4,000 left at 3,000/h: ~1.3 h, inside the 2-hour horizon, above the 1,000 threshold.
    [early] = [a for a in report.alerts if a.assessment.user == "acme-us"]
    assert early.assessment.reason == "runs out in ~1 h at the current pace"
    assert "runs out in ~1 h" in text_of(digests(slack)[-1])


def test_slack_refusing_the_digest_means_the_alerts_repeat(backend_for, simulator, slack, store):
    slack.state.missing_channels.add(ALERTS)
    sweeper = make_sweeper(backend_for(simulator), slack, store, Timeline())
    assert not sweeper.sweep().posted
    slack.state.missing_channels.clear()
    again = sweeper.sweep()
    assert again.posted
    assert len(again.alerts) == 5


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_two_clocks_on_one_database_only_one_runs_the_job(
    backend_for, backend: str, simulator, slack, tmp_path: Path
):
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.triggers.interval import IntervalTrigger

    from tests.pg import postgres_url, reset_postgres

    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'clocks.sqlite3'}"
    else:
        pg = postgres_url()
        if pg is None:
            pytest.skip("TEST_DATABASE_URL is not set")
        reset_postgres(pg)
        url = pg
    stores = [SqlStore.from_url(url), SqlStore.from_url(url)]
    clocks = [
        ClockJobs(
            sweeper=make_sweeper(backend_for(simulator), slack, store, Timeline()),
            expire=lambda: 0,
            scheduler_lock=SchedulerLock(store.engine, holder=f"clock-{n}"),
            sweep_lock=SchedulerLock(
                store.engine, holder=f"clock-{n}", name="sweep", advisory=False
            ),
        )
        for n, store in enumerate(stores)
    ]
    schedulers = []
    for clock in clocks:
        scheduler = BackgroundScheduler(timezone=UTC)
        clock.schedule(scheduler, sweep_trigger=IntervalTrigger(seconds=0.3))
        scheduler.start()
        schedulers.append(scheduler)
    time.sleep(2.0)  # the jobs run on their own timers; nothing to wait on but time
    for scheduler in schedulers:
        scheduler.shutdown()
    runs = sorted(clock.sweeps for clock in clocks)
    assert runs[0] == 0
    assert runs[1] >= 3
    assert len(digests(slack)) == 1  # the first sweep alerted; the later ones had nothing new
    # The leader stops: the other one takes over.
    clocks[1 if clocks[1].sweeps else 0].stop()
    follower = clocks[0 if clocks[1].sweeps else 1]
    assert follower.leading()
    follower.stop()
    for store in stores:
        store.close()


def test_two_clock_processes_on_one_database_one_leads(simulator, tmp_path: Path):
    import subprocess
    import sys

    from tests.fakes.processes import clean_env

    env = clean_env(
        SENDGRID_API_USER=DEMO_API_USER,
        SENDGRID_API_KEY=DEMO_API_KEY,
        SENDGRID_API_URL=simulator.url,
        DATABASE_URL=f"sqlite:///{tmp_path / 'clocks.sqlite3'}",
        LOG_LEVEL="INFO",
    )
    logs = [tmp_path / "clock-1.log", tmp_path / "clock-2.log"]
    processes = []
    for log in logs:
        with log.open("w") as sink:
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "bot", "clock"], env=env, stdout=sink, stderr=sink
                )
            )
        # One after the other: the first to start should be the one that leads.
        wait_until(lambda log=log: "clock started" in log.read_text(), timeout=30)
    try:
        texts = [log.read_text() for log in logs]
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=20)
    leading = [t for t in texts if "holds the scheduler lock and runs the jobs" in t]
    idle = [t for t in texts if "another clock holds the scheduler lock" in t]
    assert (len(leading), len(idle)) == (1, 1)
    assert "holds the scheduler lock and runs" in texts[0]  # the first one started leads
