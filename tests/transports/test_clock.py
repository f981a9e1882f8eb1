"""The clock checks it still holds the scheduler lock before every job, and steps down
when it does not: never two clocks leading at once."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from bot.adapters.store import SqlStore
from bot.adapters.store.lock import SchedulerLock
from bot.commands.sweep import SweepReport
from bot.transports.clock import ClockJobs
from tests.helpers import wait_until

STEP_DOWN = "lost the scheduler lock; stepping down"


class Timeline:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


class Jobs:
    """What each clock ran, in order: the sweeper and the expiry job both record here."""

    def __init__(self) -> None:
        self.runs: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def sweeper(self, name: str) -> _Sweeper:
        return _Sweeper(self, name)

    def expire(self, name: str):
        def expire() -> int:
            self.record(name, "expiry")
            return 0

        return expire

    def record(self, name: str, job: str) -> None:
        with self._lock:
            self.runs.append((name, job))

    def by(self, name: str) -> list[str]:
        with self._lock:
            return [job for who, job in self.runs if who == name]


class _Sweeper:
    def __init__(self, jobs: Jobs, name: str) -> None:
        self._jobs, self._name = jobs, name

    def sweep(self) -> SweepReport:
        self._jobs.record(self._name, "sweep")
        return SweepReport(started=datetime.now(UTC))


def make_clock(store: SqlStore, name: str, jobs: Jobs, **lock_options) -> ClockJobs:
    return ClockJobs(
        sweeper=jobs.sweeper(name),  # type: ignore[arg-type]
        expire=jobs.expire(name),
        scheduler_lock=SchedulerLock(store.engine, holder=name, **lock_options),
        sweep_lock=SchedulerLock(store.engine, holder=name, name="sweep", advisory=False),
    )


@dataclass
class TwoClocks:
    """Two clocks on one PostgreSQL database, each with its own engine (as two processes)."""

    url: str
    jobs: Jobs
    first: ClockJobs
    second: ClockJobs


@pytest.fixture
def pg_clocks() -> Iterator[TwoClocks]:
    from tests.pg import postgres_url, reset_postgres

    url = postgres_url()
    if url is None:
        pytest.skip("TEST_DATABASE_URL is not set")
    reset_postgres(url)
    stores = (SqlStore.from_url(url), SqlStore.from_url(url))
    jobs = Jobs()
    first, second = make_clock(stores[0], "first", jobs), make_clock(stores[1], "second", jobs)
    yield TwoClocks(url, jobs, first, second)
    for clock in (first, second):
        clock.stop()  # releases the lock (a test that failed half-way may still hold it)
    for store in stores:
        store.close()


def lock_holders(url: str) -> list[int]:
    """Backends holding an advisory lock in this test's database (the scheduler lock)."""
    engine = create_engine(url)
    with engine.connect() as connection:
        pids = connection.execute(
            text(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            )
        ).scalars()
        found = list(pids)
    engine.dispose()
    return found


def terminate(url: str, pid: int) -> None:
    engine = create_engine(url)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
    engine.dispose()


def step_downs(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == STEP_DOWN]


@pytest.mark.postgres
def test_a_clock_whose_lock_connection_is_terminated_steps_down_and_the_other_leads(
    pg_clocks: TwoClocks, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, logger="bot.clock")
    url, jobs, first, second = pg_clocks.url, pg_clocks.jobs, pg_clocks.first, pg_clocks.second
    assert first.run_sweep() is not None
    assert second.run_sweep() is None
    (pid,) = lock_holders(url)

    terminate(url, pid)  # the leader's lock connection, as an admin or a failover would
    wait_until(lambda: not lock_holders(url))
    second.run_expiry()  # the second clock finds the lock free and takes it
    assert second.run_sweep() is not None
    first.run_expiry()
    assert first.run_sweep() is None

    assert jobs.by("first") == ["sweep"]
    assert jobs.by("second") == ["expiry", "sweep"]
    assert len(step_downs(caplog)) == 1
    assert len(lock_holders(url)) == 1
    first.run_sweep()
    assert len(step_downs(caplog)) == 1  # said once, not at every job


@pytest.mark.postgres
def test_the_clock_that_lost_the_lock_takes_it_again_only_when_it_is_free(
    pg_clocks: TwoClocks, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, logger="bot.clock")
    url, first, second = pg_clocks.url, pg_clocks.first, pg_clocks.second
    assert first.leading()
    (pid,) = lock_holders(url)
    terminate(url, pid)
    wait_until(lambda: not lock_holders(url))
    assert not first.leading()  # steps down first, whatever happens next
    assert first.leading()  # then, as a newcomer, finds the lock free and takes it
    assert not second.leading()
    assert len(step_downs(caplog)) == 1


@pytest.mark.postgres
def test_two_scheduled_clocks_never_both_lead_across_a_terminated_lock(
    pg_clocks: TwoClocks, caplog: pytest.LogCaptureFixture
):
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.triggers.interval import IntervalTrigger

    caplog.set_level(logging.INFO, logger="bot.clock")
    url, jobs = pg_clocks.url, pg_clocks.jobs
    clocks = {"first": pg_clocks.first, "second": pg_clocks.second}
    assert clocks["first"].leading()  # the first leads from the start
    schedulers = []
    for clock in clocks.values():
        scheduler = BackgroundScheduler(timezone=UTC)
        clock.schedule(scheduler, sweep_trigger=IntervalTrigger(seconds=0.2))
        scheduler.start()
        schedulers.append(scheduler)
    try:
        wait_until(lambda: len(jobs.by("first")) >= 3)
        (pid,) = lock_holders(url)
        terminate(url, pid)
        wait_until(lambda: not lock_holders(url))
        # The second clock's next job would find the lock free; ask now, so that it is
        # the second that takes it (the first, once it has stepped down, could too).
        assert clocks["second"].leading()
        wait_until(lambda: len(jobs.by("second")) >= 3)
        wait_until(lambda: step_downs(caplog))
    finally:
        for scheduler in schedulers:
            scheduler.shutdown()
    leaders = [who for who, _ in jobs.runs]
    handover = leaders.index("second")
    assert set(leaders[:handover]) == {"first"}
    assert set(leaders[handover:]) == {"second"}  # the first ran nothing once the second led


def test_a_clock_whose_lease_was_taken_steps_down_on_sqlite(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    """SQLite: a leader that did not renew in time (paused, stuck) finds its lease
    taken when it next checks, and runs nothing more."""
    caplog.set_level(logging.INFO, logger="bot.clock")
    store = SqlStore.from_url(f"sqlite:///{tmp_path / 'clock.sqlite3'}")
    timeline = Timeline()
    jobs = Jobs()
    lease = timedelta(minutes=2)
    first = make_clock(store, "first", jobs, lease=lease, clock=timeline)
    second = make_clock(store, "second", jobs, lease=lease, clock=timeline)
    assert first.run_sweep() is not None
    assert second.run_sweep() is None
    timeline.now += lease + timedelta(seconds=1)  # the first clock stalled past its lease
    assert second.run_sweep() is not None
    first.run_expiry()
    assert first.run_sweep() is None
    assert jobs.by("first") == ["sweep"]
    assert jobs.by("second") == ["sweep"]
    assert len(step_downs(caplog)) == 1
    store.close()
