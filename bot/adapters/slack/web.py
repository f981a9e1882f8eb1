"""Slack's Web API client as the bot builds it, and what a failed call means."""

from __future__ import annotations

import functools
import logging
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)


def build_web_client(
    *, token: str, base_url: str, timeout: int = 10, logger: logging.Logger | None = None
) -> WebClient:
    """A Web API client that retries connection errors, 429 (Retry-After) and 5xx."""
    return WebClient(
        token=token,
        base_url=base_url,
        timeout=timeout,
        logger=logger or logging.getLogger("bot.slack.web"),
        retry_handlers=[
            ConnectionErrorRetryHandler(max_retry_count=2),
            RateLimitErrorRetryHandler(max_retry_count=2),
            ServerErrorRetryHandler(max_retry_count=2),
        ],
    )


def failure_reason(error: SlackApiError) -> str:
    """Slack's error code (`channel_not_found`, `plan_upgrade_required`, …) or the status."""
    return str(error.response.get("error") or f"HTTP {error.response.status_code}")


class ResponseUrls:
    """Posts replies to response_urls through one pooled, kept-alive HTTP session.

    Bolt's `respond()` builds a new webhook client per reply and `urlopen`s a new
    connection (for hooks.slack.com a new TLS handshake) every time; a burst of 50
    replies paid that 50 times, on the same interpreter lock as the acks. Every
    response_url of a workspace is on the same host, so one pool serves them all.

    Proxies: `trust_env` is off (requests would read netrc and the proxy and CA
    variables on every post); the environment's proxy for a host (HTTPS_PROXY,
    NO_PROXY, as `urlopen` used them) is looked up once per host instead.
    """

    def __init__(self, *, timeout: float = 10.0, pool_size: int = 64) -> None:
        self._timeout = timeout
        self._session = requests.Session()
        self._session.trust_env = False
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=pool_size, max_retries=0)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

    def post(self, url: str, message: dict[str, Any]) -> requests.Response:
        """POST `message` (None values left out) as JSON; raises OSError subclasses
        (requests.RequestException) when it could not be delivered."""
        body: dict[str, Any] = {"text": ""}
        body.update((key, value) for key, value in message.items() if value is not None)
        if "blocks" in body:  # Block Kit objects or dicts, as respond() takes them
            body["blocks"] = [getattr(b, "to_dict", lambda b=b: b)() for b in body["blocks"]]
        return self._session.post(
            url, json=body, timeout=self._timeout, proxies=_environment_proxies(_origin(url))
        )

    def close(self) -> None:
        self._session.close()


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@functools.lru_cache(maxsize=32)
def _environment_proxies(origin: str) -> dict[str, str]:
    return dict(requests.utils.get_environ_proxies(origin))
