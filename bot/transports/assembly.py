"""What a process runs besides answering: this instance's upkeep (heartbeat and
recovery, started by `serve`'s workers and `socket`), its graceful stop, and the
`clock` process's jobs. The collaborators come from `bot.services`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.triggers.cron import CronTrigger

from bot.adapters.store import SqlStore
from bot.adapters.store.alerts import SqlAlertStore
from bot.adapters.store.lock import SchedulerLock
from bot.commands.changes import ChangeService
from bot.commands.sweep import AlertPoster, SweepService
from bot.config import Settings
from bot.domain.alerts import Thresholds
from bot.domain.ports import CreditsBackend, Store
from bot.errors import BotError
from bot.observability.metrics import NO_METRICS, Metrics
from bot.services import (
    approval_notifier,
    build_changes,
    executor_name,
    slack_web_client,
    sweep_backend,
)
from bot.transports.clock import SWEEP_LEASE, ClockJobs

logger = logging.getLogger("bot")


class Heartbeat:
    """This process's proof of life in the shared database, every `interval` seconds.

    Peers treat a change as abandoned only when its owner stopped, or stopped
    beating (see `SqlStore.abandoned_changes`), so a live instance's work is
    never touched. Each beat also records outcomes the database could not take
    when SendGrid answered (the record is retried, never the write).
    """

    def __init__(self, store: Store, changes: ChangeService, *, interval: float = 5.0) -> None:
        self._store = store
        self._changes = changes
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="heartbeat", daemon=True)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def beat(self) -> None:
        try:
            self._store.heartbeat(self._changes.executor, now=datetime.now(UTC))
            self._changes.flush_unrecorded()
        except BotError:
            logger.warning("heartbeat: the database is not answering; will retry")

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self.beat()


def stop_gracefully(
    store: Store, changes: ChangeService, *, wait_idle: Callable[[float], bool], timeout: float
) -> None:
    """SIGTERM: refuse new work, let work in flight finish for up to `timeout` seconds,
    then record what is still unfinished (not sent → failed, sent → unknown) and
    say this instance has stopped, so peers never wait for it."""
    changes.stopping.set()
    if not wait_idle(timeout):
        logger.warning("stopping with work still in flight after %.0f s", timeout)
    try:
        changes.flush_unrecorded()
        abandoned = changes.abandon_own()
        store.stop_instance(changes.executor, now=datetime.now(UTC))
    except BotError:
        logger.exception("could not record the stop; peers will recover this instance's work")
        return
    if abandoned:
        logger.warning("%d change(s) still in flight at the stop were recorded", abandoned)


class Upkeep:
    """What every `serve`/`socket` instance does on its own, on one thread, started
    by the process entry point (never by the app factory).

    At start-up, and then every `beat` seconds: prove it is alive (`Heartbeat`),
    record outcomes the database could not take, and recover the changes of
    instances that are provably gone (cheap when there are none; a conditional
    update, so instances doing it at once settle each change once). Approval
    expiry is the clock's job (and `/credits pending` and clicks expire lazily).
    """

    def __init__(self, store: Store, changes: ChangeService, *, beat: float = 5.0) -> None:
        self._changes = changes
        self._heartbeat = Heartbeat(store, changes, interval=beat)
        self._beat = beat
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="upkeep", daemon=True)

    def start(self) -> Upkeep:
        self._recover()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _recover(self) -> None:
        try:
            recovered = self._changes.recover_abandoned()
        except BotError:
            logger.warning("recovering abandoned changes failed; will retry")
            return
        if recovered:
            logger.warning("%d change(s) left unfinished by a stopped process recovered", recovered)

    def _loop(self) -> None:
        while not self._stop.wait(self._beat):
            self._heartbeat.beat()
            self._recover()


SWEEP_CONCURRENCY = 8


def sweep_horizon(cron: str) -> timedelta:
    """How far ahead to warn: until the sweep after next, plus an hour."""
    trigger = CronTrigger.from_crontab(cron, timezone=UTC)
    now = datetime.now(UTC)
    first = trigger.get_next_fire_time(None, now)
    second = trigger.get_next_fire_time(first, first + timedelta(seconds=1)) if first else None
    interval = (second - first) if first and second else timedelta(minutes=15)
    return interval + timedelta(hours=1)


def build_sweep(
    settings: Settings,
    *,
    store: SqlStore,
    backend: CreditsBackend | None = None,
    poster: AlertPoster | None = None,
    metrics: Metrics = NO_METRICS,
) -> SweepService:
    return SweepService(
        backend=backend or sweep_backend(settings, store, metrics=metrics),
        store=SqlAlertStore(store),
        poster=poster,
        thresholds=Thresholds(below=settings.alert_below, percent=settings.alert_percent),
        watch=settings.watch,
        concurrency=SWEEP_CONCURRENCY,
        horizon=sweep_horizon(settings.alert_schedule),
        logger=logging.getLogger("bot.sweep"),
        metrics=metrics,
    )


def build_clock(
    settings: Settings,
    *,
    backend: CreditsBackend | None = None,
    metrics: Metrics = NO_METRICS,
    clock: Callable[[], datetime] | None = None,
) -> ClockJobs:
    """Everything the clock process runs: sweeps, approval expiry, recovery and
    reminders, behind the lock; only the change service, not the command service.
    `clock` is the time approvals are judged by (tests inject it)."""
    from bot.transports.slack.alerts import SlackAlertPoster  # noqa: PLC0415 (Slack if used)

    store = SqlStore.from_url(settings.database_url)
    client = slack_web_client(settings)
    poster: AlertPoster | None = None
    if client is not None and settings.alert_channel:
        poster = SlackAlertPoster(client=client, channel_id=settings.alert_channel)
    else:
        logger.warning("no SLACK_BOT_TOKEN or CREDITS_ALERT_CHANNEL: sweeps run but post nothing")
    backend = backend or sweep_backend(settings, store, metrics=metrics)
    changes = build_changes(
        settings,
        database=store,
        backend=backend,
        directory=None,
        notifier=approval_notifier(settings, client),
        kind="clock",
        metrics=metrics,
        clock=clock,
    )
    holder = executor_name()
    return ClockJobs(
        sweeper=build_sweep(settings, store=store, backend=backend, poster=poster, metrics=metrics),
        expire=lambda: changes.expire_due() + changes.recover_abandoned(),
        remind=changes.remind_due,
        heartbeat=Heartbeat(store, changes),
        scheduler_lock=SchedulerLock(store.engine, holder=holder),
        sweep_lock=SchedulerLock(
            store.engine, holder=holder, name="sweep", lease=SWEEP_LEASE, advisory=False
        ),
    )
