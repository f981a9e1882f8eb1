"""Slack's Web API client as the bot builds it, and what a failed call means."""

from __future__ import annotations

import functools
import json
import logging
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import certifi
import requests
import urllib3
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


class ReplyNotDelivered(OSError):
    """The response_url could not be reached, or its answer was cut short."""


@dataclass(frozen=True, slots=True)
class Posted:
    """What a response_url answered."""

    status_code: int


class ResponseUrls:
    """Posts replies to response_urls through pooled, kept-alive connections.

    Bolt's `respond()` builds a new webhook client per reply and `urlopen`s a new
    connection (for hooks.slack.com a new TLS handshake) every time; a burst of 50
    replies paid that 50 times, on the same interpreter lock as the acks. Every
    response_url of a workspace is on the same host, so one pool serves them all.
    The pool is urllib3's own, without `requests` on top: a reply is one JSON POST,
    and requests' per-call preparation (settings merged, hooks, cookies) was half of
    its CPU (issue 16). Certificates are checked against certifi's bundle, as
    requests did.

    Proxies: the environment's proxy for a host (HTTPS_PROXY, NO_PROXY, as `urlopen`
    used them) is looked up once per host; netrc and the CA variables are not read.
    """

    def __init__(self, *, timeout: float = 10.0, pool_size: int = 64) -> None:
        self._timeout = urllib3.Timeout(connect=timeout, read=timeout)
        self._options: dict[str, Any] = {
            "maxsize": pool_size,
            "retries": False,
            "ca_certs": certifi.where(),
        }
        self._direct = urllib3.PoolManager(num_pools=4, **self._options)
        self._proxied: dict[str, urllib3.ProxyManager] = {}
        self._lock = threading.Lock()

    def post(self, url: str, message: dict[str, Any]) -> Posted:
        """POST `message` (None values left out) as JSON; raises `ReplyNotDelivered`
        (an OSError) when it could not be delivered."""
        body: dict[str, Any] = {"text": ""}
        body.update((key, value) for key, value in message.items() if value is not None)
        if "blocks" in body:  # Block Kit objects or dicts, as respond() takes them
            body["blocks"] = [getattr(b, "to_dict", lambda b=b: b)() for b in body["blocks"]]
        try:
            response = self._manager(url).request(
                "POST",
                url,
                body=json.dumps(body).encode(),
                headers={"Content-Type": "application/json; charset=utf-8"},
                timeout=self._timeout,
            )
        except urllib3.exceptions.HTTPError as error:
            raise ReplyNotDelivered(f"the response_url failed ({type(error).__name__})") from None
        return Posted(status_code=response.status)

    def close(self) -> None:
        self._direct.clear()
        with self._lock:
            for manager in self._proxied.values():
                manager.clear()

    def _manager(self, url: str) -> urllib3.PoolManager:
        parts = urlsplit(url)
        proxy = _environment_proxies(f"{parts.scheme}://{parts.netloc}").get(parts.scheme)
        if proxy is None:
            return self._direct
        with self._lock:
            if proxy not in self._proxied:
                self._proxied[proxy] = urllib3.ProxyManager(proxy, num_pools=4, **self._options)
            return self._proxied[proxy]


@functools.lru_cache(maxsize=32)
def _environment_proxies(origin: str) -> dict[str, str]:
    return dict(requests.utils.get_environ_proxies(origin))
