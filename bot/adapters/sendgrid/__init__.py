"""SendGrid clients. `build_backend(settings)` returns the configured one."""

from __future__ import annotations

import logging

from bot.adapters.sendgrid.http import RetryPolicy
from bot.adapters.sendgrid.ratelimit import TokenBucket
from bot.adapters.sendgrid.v2 import SendGridV2Client
from bot.adapters.sendgrid.v3 import SendGridV3Client
from bot.config import Settings
from bot.errors import ConfigError
from bot.scrubbing import Scrubber

__all__ = ["RetryPolicy", "SendGridV2Client", "SendGridV3Client", "TokenBucket", "build_backend"]


def build_backend(
    settings: Settings, *, rate_share: float = 1.0, logger: logging.Logger | None = None
) -> SendGridV2Client | SendGridV3Client:
    """The SendGrid client the settings describe, with its own process-wide limiter.

    `rate_share` < 1 leaves part of SENDGRID_RATE_LIMIT unused by this process
    (the sweep leaves room for interactive commands).
    """
    limiter = TokenBucket(limit=max(1, int(settings.sendgrid_rate_limit * rate_share)))
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
            logger=logger or logging.getLogger("bot.sendgrid"),
            scrubber=scrubber,
        )
    if not settings.sendgrid_api_user or not settings.sendgrid_api_key:
        raise ConfigError(
            "SENDGRID_API_USER and SENDGRID_API_KEY are required (or use `console --demo`)"
        )
    return SendGridV2Client(
        api_user=settings.sendgrid_api_user,
        api_key=settings.sendgrid_api_key.reveal(),
        base_url=settings.sendgrid_api_url,
        mode=settings.sendgrid_mode,
        fmt=settings.sendgrid_format,
        timeout=settings.sendgrid_timeout,
        limiter=limiter,
        logger=logger or logging.getLogger("bot.sendgrid"),
        scrubber=scrubber,
    )
