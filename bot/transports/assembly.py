"""Builds the parts a process needs from Settings (the composition root).

Every transport gets its services here, so Slack and the console run exactly
the same commands with the same policy and the same database.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from apscheduler.triggers.cron import CronTrigger

from bot.adapters.sendgrid import Priority, build_backend
from bot.adapters.store import SqlStore
from bot.adapters.store.alerts import SqlAlertStore
from bot.adapters.store.lock import SchedulerLock
from bot.adapters.store.ratelimit import SqlRateBudget
from bot.commands.changes import ApprovalNotifier, ChangeService
from bot.commands.service import CommandService
from bot.commands.sweep import AlertPoster, SweepService
from bot.config import Settings
from bot.domain.alerts import Thresholds
from bot.domain.approvals import Store
from bot.domain.credits import CreditsBackend
from bot.domain.policy import GroupDirectory, RoleBook
from bot.errors import BotError
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
    """Names this process in the requests it executes (host, pid, random)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


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
) -> Services:
    """The services for these settings; collaborators may be injected.

    Opening the store applies pending migrations (`credits-bot migrate` does
    only that).
    """
    roles = roles if roles is not None else role_book(settings)
    store = store if store is not None else SqlStore.from_url(settings.database_url)
    if backend is None:
        budget = SqlRateBudget(store.engine) if isinstance(store, SqlStore) else None
        backend = build_backend(settings, budget=budget)
    changes = ChangeService(
        store=store,
        backend=backend,
        roles=roles,
        directory=directory,
        notifier=notifier,
        ttl=settings.approval_ttl,
        executor=executor_name(),
        logger=logging.getLogger("bot.changes"),
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
    )
    return Services(commands=commands, changes=changes, store=store)


class Housekeeping:
    """At start-up: mark orphaned executions unknown. Then, every `interval` s: expire.

    Expiry is one conditional UPDATE, so several instances doing it at once
    still expire (and announce) each request once.
    """

    def __init__(self, changes: ChangeService, *, interval: float = 60.0) -> None:
        self._changes = changes
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="housekeeping", daemon=True)

    def start(self) -> Housekeeping:
        recovered = self._changes.recover_orphans()
        if recovered:
            logger.warning(
                "%d request(s) left executing by a stopped process: now unknown", recovered
            )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._changes.expire_due()
            except BotError:
                logger.exception("expiring approval requests failed; will retry")


SWEEP_CONCURRENCY = 8


def sweep_horizon(cron: str) -> timedelta:
    """How far ahead to warn: until the sweep after next, plus an hour."""
    trigger = CronTrigger.from_crontab(cron, timezone=UTC)
    now = datetime.now(UTC)
    first = trigger.get_next_fire_time(None, now)
    second = trigger.get_next_fire_time(first, first + timedelta(seconds=1)) if first else None
    interval = (second - first) if first and second else timedelta(minutes=15)
    return interval + timedelta(hours=1)


def sweep_backend(settings: Settings, store: SqlStore) -> CreditsBackend:
    """SendGrid for the sweep: the fleet's budget, behind interactive commands."""
    return build_backend(settings, budget=SqlRateBudget(store.engine), priority=Priority.SWEEP)


def build_sweep(
    settings: Settings,
    *,
    store: SqlStore,
    backend: CreditsBackend | None = None,
    poster: AlertPoster | None = None,
) -> SweepService:
    return SweepService(
        backend=backend or sweep_backend(settings, store),
        store=SqlAlertStore(store),
        poster=poster,
        thresholds=Thresholds(below=settings.alert_below, percent=settings.alert_percent),
        watch=settings.watch,
        concurrency=SWEEP_CONCURRENCY,
        horizon=sweep_horizon(settings.alert_schedule),
        logger=logging.getLogger("bot.sweep"),
    )


def build_clock(settings: Settings, *, backend: CreditsBackend | None = None) -> Clock:
    """Everything the clock process runs: sweeps and approval expiry, behind the lock."""
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
            notifier = SlackApprovalNotifier(client=client, channel_id=settings.approval_channel)
    if poster is None:
        logger.warning("no SLACK_BOT_TOKEN or CREDITS_ALERT_CHANNEL: sweeps run but post nothing")
    backend = backend or sweep_backend(settings, store)
    services = build_services(settings, backend=backend, store=store, notifier=notifier)
    holder = executor_name()
    return Clock(
        sweeper=build_sweep(settings, store=store, backend=backend, poster=poster),
        expire=services.changes.expire_due,
        scheduler_lock=SchedulerLock(store.engine, holder=holder),
        sweep_lock=SchedulerLock(
            store.engine, holder=holder, name="sweep", lease=SWEEP_LEASE, advisory=False
        ),
    )
