"""The composition root: `build_services(settings)` builds every collaborator of a
process once, and starts nothing.

One database (`SqlStore`), one SendGrid client on the fleet's rate budget, one Slack
Web API client, one user-group directory, one approval notifier, one change service
and one command service. The Slack app factory (`create_app(services)`) only
registers listeners on them; the process entry points (`serve`'s workers, `socket`)
start this instance's upkeep (heartbeat and recovery, `transports.assembly.Upkeep`);
the `clock` process builds only what its jobs need (`transports.assembly.build_clock`).
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from apscheduler.triggers.cron import CronTrigger
from slack_sdk import WebClient

from bot.adapters.sendgrid import Priority, build_backend
from bot.adapters.slack.directory import SlackUserGroups
from bot.adapters.slack.web import build_web_client
from bot.adapters.store import SqlStore
from bot.adapters.store.alerts import SqlAlertStore
from bot.adapters.store.instances import this_host
from bot.adapters.store.ratelimit import SqlRateBudget
from bot.adapters.store.sql import DEFAULT_THREADS
from bot.commands.changes import ChangeService
from bot.commands.home import HomeService
from bot.commands.replies import ReasonLinks
from bot.commands.service import CommandService
from bot.commands.sweep import AlertPoster
from bot.commands.watch import AlertWatch, BackgroundFeed, WatchSettings
from bot.config import Settings
from bot.domain.alerts import Thresholds
from bot.domain.approvals import ReminderPolicy
from bot.domain.policy import Limits, RoleBook
from bot.domain.ports import (
    AlertStore,
    ApprovalNotifier,
    CreditsBackend,
    GroupDirectory,
    Store,
)
from bot.observability.metrics import NO_METRICS, Metrics


@dataclass(frozen=True, slots=True, kw_only=True)
class Services:
    """Every collaborator of one process, each built once."""

    settings: Settings
    database: SqlStore
    backend: CreditsBackend
    web_client: WebClient | None
    directory: GroupDirectory | None
    notifier: ApprovalNotifier | None
    changes: ChangeService
    commands: CommandService
    home: HomeService
    alert_feed: BackgroundFeed
    metrics: Metrics

    def close(self) -> None:
        """Let the alert feed finish what commands read, then close the database's
        connections (nothing else holds any)."""
        self.alert_feed.close()
        self.database.close()


def build_services(
    settings: Settings,
    *,
    kind: str = "serve",
    slack: bool = True,
    backend: CreditsBackend | None = None,
    web_client: WebClient | None = None,
    metrics: Metrics = NO_METRICS,
    clock: Callable[[], datetime] | None = None,
    database_threads: int = DEFAULT_THREADS,
) -> Services:
    """The services of a `kind` process (`serve`, `socket`, `console`) for these settings.

    Opening the database applies pending migrations (`credits-bot migrate` does only
    that); the process is registered as a live instance, the owner of the changes it
    executes. `slack=False` (the console): no Web API client, so no user-group roles
    and no approval posts. `backend` and `web_client` may be given (tests, benches).
    `database_threads`: how many of the process's threads may hold a connection at once
    (the pool keeps that many open once opened).
    """
    database = SqlStore.from_url(settings.database_url, threads=database_threads)
    backend = backend or interactive_backend(settings, database, metrics=metrics)
    web_client = web_client or (slack_web_client(settings) if slack else None)
    directory = SlackUserGroups(client=web_client) if web_client is not None else None
    notifier = approval_notifier(settings, web_client)
    changes = build_changes(
        settings,
        database=database,
        backend=backend,
        directory=directory,
        notifier=notifier,
        kind=kind,
        metrics=metrics,
        clock=clock,
    )
    alerts = SqlAlertStore(database)
    # Balances commands read feed the low-credit state at once (issue 15); the alert,
    # if any, is posted from here without waiting for the clock.
    seen = AlertWatch(
        backend=backend,
        store=alerts,
        poster=alert_poster(settings, web_client),
        thresholds=Thresholds(below=settings.alert_below, percent=settings.alert_percent),
        settings=WatchSettings(
            horizon=sweep_horizon(settings.alert_schedule),
            max_staleness=settings.max_staleness,
            digest_interval=timedelta(0),
            concurrency=1,
        ),
        clock=clock or (lambda: datetime.now(UTC)),
        logger=logging.getLogger("bot.watch"),
    )
    alert_feed = BackgroundFeed(seen.observe, logger=logging.getLogger("bot.watch"))
    commands = CommandService(
        changes=changes,
        alerts=alerts,
        auto_approve_max=settings.auto_approve_max,
        logger=logging.getLogger("bot.commands"),
        metrics=metrics,
        # show and low judge a balance as the digest does
        thresholds=Thresholds(below=settings.alert_below, percent=settings.alert_percent),
        horizon=sweep_horizon(settings.alert_schedule),
        balances_seen=alert_feed,
    )
    return Services(
        settings=settings,
        database=database,
        backend=backend,
        web_client=web_client,
        directory=directory,
        notifier=notifier,
        changes=changes,
        commands=commands,
        home=build_home(settings, database=database, alerts=alerts, directory=directory),
        alert_feed=alert_feed,
        metrics=metrics,
    )


def build_changes(
    settings: Settings,
    *,
    database: SqlStore,
    backend: CreditsBackend,
    directory: GroupDirectory | None,
    notifier: ApprovalNotifier | None,
    kind: str,
    metrics: Metrics = NO_METRICS,
    clock: Callable[[], datetime] | None = None,
) -> ChangeService:
    """The change service (requests, decisions, expiry, reminders, recovery), its
    process registered as a live instance under a fresh executor name."""
    executor = executor_name()
    database.register_instance(executor, kind=kind, now=datetime.now(UTC))
    return ChangeService(
        store=database,
        backend=backend,
        roles=role_book(settings),
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


def build_home(
    settings: Settings,
    *,
    database: Store,
    alerts: AlertStore,
    directory: GroupDirectory | None,
) -> HomeService:
    """What the App Home shows, read from the stores (no SendGrid call)."""
    return HomeService(
        store=database,
        alerts=alerts,
        roles=role_book(settings),
        directory=directory,
        thresholds=Thresholds(below=settings.alert_below, percent=settings.alert_percent),
        logger=logging.getLogger("bot.home"),
    )


def interactive_backend(
    settings: Settings, database: SqlStore, *, metrics: Metrics = NO_METRICS
) -> CreditsBackend:
    """SendGrid for people's commands: the fleet's one rate budget, in the database."""
    return build_backend(settings, budget=SqlRateBudget(database.engine), metrics=metrics)


def sweep_backend(
    settings: Settings, database: SqlStore, *, metrics: Metrics = NO_METRICS
) -> CreditsBackend:
    """SendGrid for the sweep: the fleet's budget, behind interactive commands."""
    return build_backend(
        settings, budget=SqlRateBudget(database.engine), priority=Priority.SWEEP, metrics=metrics
    )


def slack_web_client(settings: Settings) -> WebClient | None:
    """The Web API client, if there is a bot token."""
    if settings.slack_bot_token is None:
        return None
    return build_web_client(
        token=settings.slack_bot_token.reveal(), base_url=settings.slack_api_url
    )


def alert_poster(settings: Settings, client: WebClient | None) -> AlertPoster | None:
    """Low-credit digests in CREDITS_ALERT_CHANNEL, if there is a client and a channel."""
    from bot.transports.slack.alerts import SlackAlertPoster  # noqa: PLC0415

    if client is None or not settings.alert_channel:
        return None
    return SlackAlertPoster(client=client, channel_id=settings.alert_channel)


def sweep_horizon(cron: str) -> timedelta:
    """How far ahead to warn: until the sweep after next, plus an hour."""
    trigger = CronTrigger.from_crontab(cron, timezone=UTC)
    now = datetime.now(UTC)
    first = trigger.get_next_fire_time(None, now)
    second = trigger.get_next_fire_time(first, first + timedelta(seconds=1)) if first else None
    interval = (second - first) if first and second else timedelta(minutes=15)
    return interval + timedelta(hours=1)


def approval_notifier(settings: Settings, client: WebClient | None) -> ApprovalNotifier | None:
    """Approval cards in CREDITS_APPROVAL_CHANNEL, if there is a client and a channel."""
    from bot.transports.slack.approvals import slack_approval_notifier  # noqa: PLC0415

    if client is None or not settings.approval_channel:
        return None
    return slack_approval_notifier(
        client=client,
        channel_id=settings.approval_channel,
        log_channel_id=settings.log_channel,
        links=reason_links(settings),
    )


def role_book(settings: Settings) -> RoleBook:
    return RoleBook(
        admins=settings.admins,
        approvers=settings.approvers,
        operators=settings.operators,
        viewers=settings.viewers,
    )


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


def executor_name() -> str:
    """Names this process in the requests it executes (host and PID namespace, pid, random)."""
    return f"{this_host()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
