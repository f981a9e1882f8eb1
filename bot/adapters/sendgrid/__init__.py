"""SendGrid clients. `build_backend(settings)` returns the configured one."""

from __future__ import annotations

import logging

from bot.adapters.sendgrid.http import RetryPolicy
from bot.adapters.sendgrid.ratelimit import (
    MemoryRateBudget,
    Priority,
    RateBudget,
    SlidingWindowLimiter,
)
from bot.adapters.sendgrid.v2 import SendGridV2Client
from bot.adapters.sendgrid.v3 import SendGridV3Client
from bot.config import Settings
from bot.errors import ConfigError
from bot.observability.metrics import NO_METRICS, Metrics
from bot.scrubbing import Scrubber

__all__ = [
    "Priority",
    "RetryPolicy",
    "SendGridV2Client",
    "SendGridV3Client",
    "SlidingWindowLimiter",
    "build_backend",
]


def build_backend(
    settings: Settings,
    *,
    budget: RateBudget | None = None,
    priority: Priority = Priority.INTERACTIVE,
    logger: logging.Logger | None = None,
    metrics: Metrics = NO_METRICS,
) -> SendGridV2Client | SendGridV3Client:
    """The SendGrid client the settings describe, drawing on the fleet's rate budget.

    `budget` is shared by every process on the SendGrid account (the assembly
    passes the database's `SqlRateBudget`); without one, this process keeps its
    own. `priority=Priority.SWEEP` leaves SENDGRID_INTERACTIVE_RESERVE percent of
    SENDGRID_RATE_LIMIT to interactive commands.
    """
    limiter = SlidingWindowLimiter(
        limit=settings.sendgrid_rate_limit,
        window=settings.sendgrid_rate_window,
        budget=budget if budget is not None else MemoryRateBudget(),
        priority=priority,
        reserve=settings.sendgrid_interactive_reserve / 100,
    )
    # Every configured secret, not only SendGrid's: whatever a body echoes is removed.
    scrubber = Scrubber(settings.secrets())
    if settings.sendgrid_api_version == "v3":
        if not settings.sendgrid_api_key:
            raise ConfigError("SENDGRID_API_KEY (an API key) is required for SendGrid v3")
        return SendGridV3Client(
            api_key=settings.sendgrid_api_key.reveal(),
            base_url=settings.sendgrid_api_url,
            timeout=settings.sendgrid_timeout,
            limiter=limiter,
            proxy=settings.sendgrid_proxy,
            logger=logger or logging.getLogger("bot.sendgrid"),
            metrics=metrics,
            scrubber=scrubber,
        )
    if not settings.sendgrid_api_user and not settings.sendgrid_api_key:
        raise ConfigError(
            "SENDGRID_API_KEY is required: a v3 API key with the subusers.read and "
            "subusers.credits.* scopes (v2: SENDGRID_API_USER and SENDGRID_API_KEY; "
            "`console --demo` needs neither)"
        )
    if not settings.sendgrid_api_user or not settings.sendgrid_api_key:
        raise ConfigError(
            "SENDGRID_API_USER and SENDGRID_API_KEY are required for SendGrid v2 "
            "(or use `console --demo`)"
        )
    return SendGridV2Client(
        api_user=settings.sendgrid_api_user,
        api_key=settings.sendgrid_api_key.reveal(),
        base_url=settings.sendgrid_api_url,
        mode=settings.sendgrid_mode,
        fmt=settings.sendgrid_format,
        timeout=settings.sendgrid_timeout,
        limiter=limiter,
        proxy=settings.sendgrid_proxy,
        logger=logger or logging.getLogger("bot.sendgrid"),
        metrics=metrics,
        scrubber=scrubber,
    )
