"""The `clock` process (and `credits-bot sweep`): scheduled sweeps, approval expiry,
and reminders of pending requests (with escalation).

Exactly one scheduler runs jobs: every job first takes the database scheduler
lock (PostgreSQL advisory lock, or a lease on SQLite), which for the holder means
confirming it still holds it. A second clock process stays idle, says so in its
log, and takes over if the first one dies or loses its lock connection; a clock
that finds its lock gone logs "lost the scheduler lock; stepping down" once and
runs no job until it wins the lock again like any newcomer. Sweeps also take a
short "sweep" lease, so a manual `credits-bot sweep` never runs at the same time
as the clock's, and a sweep already under way when its clock loses the lock is not
run twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, timedelta
from typing import TYPE_CHECKING, Any

from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger

from bot.adapters.store.lock import SchedulerLock
from bot.commands.sweep import SweepReport, SweepService
from bot.config import Settings
from bot.errors import BotError
from bot.observability.metrics import NO_METRICS, Metrics

if TYPE_CHECKING:
    from bot.transports.assembly import Heartbeat

logger = logging.getLogger("bot.clock")

SWEEP_JOB = "low-credit-sweep"
EXPIRY_JOB = "expire-approvals"
REMINDER_JOB = "remind-approvers"
JOB_DEFAULTS = {"coalesce": True, "max_instances": 1, "misfire_grace_time": 300}


class ClockJobs:
    """Jobs guarded by the scheduler lock."""

    def __init__(
        self,
        *,
        sweeper: SweepService,
        expire: Callable[[], int],
        scheduler_lock: SchedulerLock,
        sweep_lock: SchedulerLock,
        heartbeat: Heartbeat | None = None,
        remind: Callable[[], int] = lambda: 0,
    ) -> None:
        self.sweeper = sweeper
        self._expire = expire
        self._remind = remind
        self.heartbeat = heartbeat
        self._scheduler_lock = scheduler_lock
        self.sweep_lock = sweep_lock
        self._leading: bool | None = None
        self.sweeps = 0

    def schedule(self, scheduler: BaseScheduler, *, sweep_trigger: Any) -> None:
        scheduler.add_job(
            self.run_sweep, sweep_trigger, id=SWEEP_JOB, name=SWEEP_JOB, replace_existing=True
        )
        scheduler.add_job(
            self.run_expiry,
            "interval",
            minutes=1,
            id=EXPIRY_JOB,
            name=EXPIRY_JOB,
            replace_existing=True,
        )

        scheduler.add_job(
            self.run_reminders,
            "interval",
            minutes=1,
            id=REMINDER_JOB,
            name=REMINDER_JOB,
            replace_existing=True,
        )

    def leading(self) -> bool:
        """Take, or confirm and renew, the scheduler lock: called before every job.

        Logs only when leadership changes.
        """
        leading = self._scheduler_lock.acquire()
        if leading != self._leading:
            if leading:
                logger.info("this clock holds the scheduler lock and runs the jobs")
            elif self._leading:
                logger.warning("lost the scheduler lock; stepping down")
            else:
                logger.warning("another clock holds the scheduler lock; this one stays idle")
            self._leading = leading
        return leading

    def run_sweep(self) -> SweepReport | None:
        if not self.leading():
            return None
        return sweep_once(self.sweeper, self.sweep_lock, on_run=self._count)

    def run_expiry(self) -> None:
        if not self.leading():
            return
        try:
            self._expire()
        except BotError:
            logger.exception("expiring approval requests failed; will retry")

    def run_reminders(self) -> int:
        """Re-announce requests waiting too long; escalate once it is time (see
        `ReminderPolicy`). A request past its expiry is never reminded."""
        if not self.leading():
            return 0
        try:
            return self._remind()
        except BotError:
            logger.exception("reminding approvers failed; will retry")
            return 0

    def _count(self) -> None:
        self.sweeps += 1

    def stop(self) -> None:
        self._scheduler_lock.release()


def sweep_once(
    sweeper: SweepService, sweep_lock: SchedulerLock, *, on_run: Callable[[], None] = lambda: None
) -> SweepReport | None:
    """One sweep, unless another is running (then None)."""
    if not sweep_lock.acquire():
        logger.warning("a sweep is already running elsewhere; skipped")
        return None
    try:
        on_run()
        return sweeper.sweep()
    except BotError:
        logger.exception("the sweep failed; the next one will try again")
        return None
    finally:
        sweep_lock.release()


def run_clock(clock: ClockJobs, *, cron: str) -> None:
    """The `clock` process: a BlockingScheduler until stopped."""
    scheduler = BlockingScheduler(timezone=UTC, job_defaults=JOB_DEFAULTS)
    clock.schedule(scheduler, sweep_trigger=CronTrigger.from_crontab(cron, timezone=UTC))
    clock.leading()
    if clock.heartbeat is not None:
        clock.heartbeat.start()
    logger.info(
        "clock started: sweep on %r; approval expiry and recovery of stopped instances' "
        "changes every minute",
        cron,
    )
    try:
        scheduler.start()
    finally:
        if clock.heartbeat is not None:
            clock.heartbeat.stop()
        clock.stop()


SWEEP_LEASE = timedelta(minutes=30)


def serve_metrics(settings: Settings) -> Metrics:
    """With METRICS_PORT, the clock serves its own `/metrics` (sweeps, SendGrid, expiry)."""
    if settings.metrics_port is None:
        return NO_METRICS
    from prometheus_client import start_http_server  # noqa: PLC0415

    from bot.observability.prometheus import PrometheusMetrics  # noqa: PLC0415

    metrics = PrometheusMetrics()
    start_http_server(settings.metrics_port, registry=metrics.registry)
    logger.info("clock metrics on :%d/metrics", settings.metrics_port)
    return metrics
