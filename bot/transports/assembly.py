"""Builds the parts a process needs from Settings (the composition root).

Every transport gets its services here, so Slack and the console run exactly
the same commands with the same policy and the same database.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from apscheduler.triggers.cron import CronTrigger

from bot.adapters.sendgrid import Priority, build_backend
from bot.adapters.store import SqlStore
from bot.adapters.store.alerts import SqlAlertStore
from bot.adapters.store.instances import this_host
from bot.adapters.store.lock import SchedulerLock
from bot.adapters.store.ratelimit import SqlRateBudget
from bot.commands.changes import ApprovalNotifier, ChangeService
from bot.commands.replies import ReasonLinks
from bot.commands.service import CommandService
from bot.commands.sweep import AlertPoster, SweepService
from bot.config import Settings
from bot.domain.alerts import Thresholds
from bot.domain.approvals import ReminderPolicy, Store
from bot.domain.credits import CreditsBackend
from bot.domain.policy import GroupDirectory, Limits, RoleBook
from bot.errors import BotError
from bot.observability.metrics import NO_METRICS, Metrics
from bot.transports.clock import SWEEP_LEASE, Clock

logger = logging.getLogger("bot")


def role_book(settings: Settings) -> RoleBook:
    return RoleBook(
        admins=settings.admins,
        approvers=settings.approvers,
        operators=settings.operators,
        viewers=settings.viewers,
    )


def executor_name() -> str:
    """Names this process in the requests it executes (host and PID namespace, pid, random)."""
    return f"{this_host()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Services:
    commands: CommandService
    changes: ChangeService
    store: Store


def build_services(
    settings: Settings,
    *,
    backend: CreditsBackend | None = None,
    directory: GroupDirectory | None = None,
    roles: RoleBook | None = None,
    store: Store | None = None,
    notifier: ApprovalNotifier | None = None,
    kind: str = "serve",
    metrics: Metrics = NO_METRICS,
    clock: Callable[[], datetime] | None = None,
) -> Services:
    """The services for these settings; collaborators may be injected.

    Opening the store applies pending migrations (`credits-bot migrate` does
    only that). The process is registered as a live instance, the owner of the
    changes it executes (see `Heartbeat`).
    """
    roles = roles if roles is not None else role_book(settings)
    store = store if store is not None else SqlStore.from_url(settings.database_url)
    if backend is None:
        budget = SqlRateBudget(store.engine) if isinstance(store, SqlStore) else None
        backend = build_backend(settings, budget=budget, metrics=metrics)
    executor = executor_name()
    store.register_instance(executor, kind=kind, now=datetime.now(UTC))
    changes = ChangeService(
        store=store,
        backend=backend,
        roles=roles,
        directory=directory,
        notifier=notifier,
        ttl=settings.approval_ttl,
        executor=executor,
        logger=logging.getLogger("bot.changes"),
        metrics=metrics,
        clock=clock or (lambda: datetime.now(UTC)),
        reminders=ReminderPolicy(
            remind_after=settings.remind_after,
            escalate_after=settings.escalate_after,
            escalate_to=settings.escalate_to,
        ),
        limits=policy_limits(settings),
        links=reason_links(settings),
        adjustments_keep_recurring=backend.adjustments_keep_recurring,
    )
    commands = CommandService(
        backend=backend,
        roles=roles,
        directory=directory,
        changes=changes,
        alerts=SqlAlertStore(store) if isinstance(store, SqlStore) else None,
        auto_approve_max=settings.auto_approve_max,
        logger=logging.getLogger("bot.commands"),
        store=store,
        metrics=metrics,
        thresholds=Thresholds(below=settings.alert_below, percent=settings.alert_percent),
        horizon=sweep_horizon(settings.alert_schedule),
    )
    return Services(commands=commands, changes=changes, store=store)


def policy_limits(settings: Settings) -> Limits:
    """The money policy's limits from settings (design §3, issue 12)."""
    return Limits(
        auto_approve_max=settings.auto_approve_max,
        auto_approve_budget=settings.effective_auto_approve_budget,
        confirm_above=settings.confirm_above,
        max_change=settings.max_change,
        two_approvals_above=settings.two_approvals_above,
        require_reason=settings.require_reason,
    )


def reason_links(settings: Settings) -> ReasonLinks:
    return ReasonLinks(ticket_pattern=settings.ticket_pattern, ticket_url=settings.ticket_url)


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


class Housekeeping:
    """What every `serve`/`socket` instance does on its own, on one thread.

    At start-up, and then every `beat` seconds: prove it is alive (`Heartbeat`),
    record outcomes the database could not take, and recover the changes of
    instances that are provably gone (cheap when there are none; a conditional
    update, so instances doing it at once settle each change once). Every
    `interval` seconds: expire overdue approval requests.
    """

    def __init__(
        self,
        store: Store,
        changes: ChangeService,
        *,
        interval: float = 60.0,
        beat: float = 5.0,
    ) -> None:
        self._changes = changes
        self._heartbeat = Heartbeat(store, changes, interval=beat)
        self._interval = interval
        self._beat = beat
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="housekeeping", daemon=True)

    def start(self) -> Housekeeping:
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
        since_expiry = 0.0
        while not self._stop.wait(self._beat):
            self._heartbeat.beat()
            self._recover()
            since_expiry += self._beat
            if since_expiry >= self._interval:
                since_expiry = 0.0
                try:
                    self._changes.expire_due()
                except BotError:
                    logger.warning("expiring approval requests failed; will retry")


SWEEP_CONCURRENCY = 8


def sweep_horizon(cron: str) -> timedelta:
    """How far ahead to warn: until the sweep after next, plus an hour."""
    trigger = CronTrigger.from_crontab(cron, timezone=UTC)
    now = datetime.now(UTC)
    first = trigger.get_next_fire_time(None, now)
    second = trigger.get_next_fire_time(first, first + timedelta(seconds=1)) if first else None
    interval = (second - first) if first and second else timedelta(minutes=15)
    return interval + timedelta(hours=1)


def sweep_backend(
    settings: Settings, store: SqlStore, *, metrics: Metrics = NO_METRICS
) -> CreditsBackend:
    """SendGrid for the sweep: the fleet's budget, behind interactive commands."""
    return build_backend(
        settings, budget=SqlRateBudget(store.engine), priority=Priority.SWEEP, metrics=metrics
    )


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
) -> Clock:
    """Everything the clock process runs: sweeps, approval expiry and reminders, behind
    the lock. `clock` is the time approvals are judged by (tests inject it)."""
    from bot.adapters.slack_web import build_web_client  # noqa: PLC0415 (Slack only if used)
    from bot.transports.slack.alerts import SlackAlertPoster  # noqa: PLC0415
    from bot.transports.slack.approvals import SlackApprovalNotifier  # noqa: PLC0415

    store = SqlStore.from_url(settings.database_url)
    poster: AlertPoster | None = None
    notifier: ApprovalNotifier | None = None
    if settings.slack_bot_token:
        client = build_web_client(
            token=settings.slack_bot_token.reveal(), base_url=settings.slack_api_url
        )
        if settings.alert_channel:
            poster = SlackAlertPoster(client=client, channel_id=settings.alert_channel)
        if settings.approval_channel:
            notifier = SlackApprovalNotifier(
                client=client,
                channel_id=settings.approval_channel,
                log_channel_id=settings.log_channel,
                links=reason_links(settings),
            )
    if poster is None:
        logger.warning("no SLACK_BOT_TOKEN or CREDITS_ALERT_CHANNEL: sweeps run but post nothing")
    backend = backend or sweep_backend(settings, store, metrics=metrics)
    services = build_services(
        settings,
        backend=backend,
        store=store,
        notifier=notifier,
        kind="clock",
        metrics=metrics,
        clock=clock,
    )
    changes = services.changes
    holder = executor_name()
    return Clock(
        sweeper=build_sweep(settings, store=store, backend=backend, poster=poster, metrics=metrics),
        expire=lambda: changes.expire_due() + changes.recover_abandoned(),
        remind=changes.remind_due,
        heartbeat=Heartbeat(store, changes),
        scheduler_lock=SchedulerLock(store.engine, holder=holder),
        sweep_lock=SchedulerLock(
            store.engine, holder=holder, name="sweep", lease=SWEEP_LEASE, advisory=False
        ),
    )
