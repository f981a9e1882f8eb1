"""What every SendGrid client shares: the limiter, the retry policy, transport errors.

Retry policy (tenacity, each attempt through the limiter again):
- reads retry on connection errors, timeouts, 5xx and 429, with jittered
  exponential backoff or SendGrid's `Retry-After`;
- writes retry only when the request provably never left (connection refused,
  connect timeout) or SendGrid answered 429. A write that was sent and got no
  readable answer raises `OutcomeUnknown`, never a second attempt.

Every body is scrubbed of the configured secrets before anything reads it, so no
decoder, preview or error message built from it can hold a credential (or part of
one) that SendGrid echoed back.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import requests
from requests.adapters import HTTPAdapter
from tenacity import RetryCallState, Retrying, stop_after_attempt, stop_after_delay
from tenacity.wait import wait_exponential_jitter
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from bot.adapters.sendgrid.ratelimit import SlidingWindowLimiter
from bot.domain.credits import write_guard
from bot.errors import BadResponse, OutcomeUnknown, RateLimited, SendGridError, Unavailable
from bot.observability.metrics import NO_METRICS, Metrics
from bot.scrubbing import REDACTED, Scrubber

__all__ = ["REDACTED", "Decoder", "Limiter", "RetryPolicy", "SendGridHttp", "new_session"]

T = TypeVar("T")
# status, headers, body (already scrubbed) → a value, or a SendGridError
Decoder = Callable[[int, Mapping[str, str], bytes], T]


class Limiter(Protocol):
    def acquire(self) -> float: ...

    def pause_for(self, seconds: float) -> None: ...


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to try. `max_retry_after` caps how long a 429 may make us wait."""

    attempts: int = 4
    max_delay: float = 30.0
    backoff_initial: float = 0.2
    backoff_max: float = 4.0
    max_retry_after: float = 20.0


class SendGridHttp:
    """Sends one logical call with the retry policy; `decode` judges each answer.

    `scrubber` holds the secrets to remove from every body and error: at least the
    client's own credential.
    """

    def __init__(
        self,
        *,
        scrubber: Scrubber,
        timeout: float,
        limiter: Limiter | None,
        retry: RetryPolicy | None,
        logger: logging.Logger | None,
        session: requests.Session | None,
        sleep: Callable[[float], None],
        metrics: Metrics = NO_METRICS,
        proxy: str | None = None,
    ) -> None:
        self._metrics = metrics
        self._scrubber = scrubber
        self.timeout = timeout
        self._limiter: Limiter = limiter or SlidingWindowLimiter(limit=600)
        self._retry = retry or RetryPolicy()
        self._logger = logger or logging.getLogger("bot.sendgrid")
        self.session = session or new_session(proxy)
        self._sleep = sleep
        self._backoff = wait_exponential_jitter(
            multiplier=self._retry.backoff_initial,
            max=self._retry.backoff_max,
            jitter=self._retry.backoff_initial,
        )

    def call(
        self,
        label: str,
        send: Callable[[], requests.Response],
        decode: Decoder[T],
        *,
        write: bool,
    ) -> T:
        retrying = Retrying(
            retry=lambda state: self._should_retry(state, write=write),
            stop=stop_after_attempt(self._retry.attempts) | stop_after_delay(self._retry.max_delay),
            wait=self._wait,
            sleep=self._sleep,
            reraise=True,
        )
        result: T = retrying(self._attempt, label, send, decode, write=write)
        return result

    def _attempt(
        self,
        label: str,
        send: Callable[[], requests.Response],
        decode: Decoder[T],
        *,
        write: bool,
    ) -> T:
        self._metrics.limiter_waited(self._limiter.acquire())
        if write:
            guard = write_guard.get()
            if guard is not None:
                guard()  # raises if this write is no longer ours to send: nothing leaves
        started = time.monotonic()
        response: requests.Response | None = None
        try:
            response = send()
            content = self._scrubber.scrub_bytes(response.content)
            result = decode(response.status_code, response.headers, content)
        except requests.RequestException as exc:
            error = self._transport_error(exc, write=write)
            self._log(label, started, error)
            self._metrics.sendgrid_call(endpoint_of(label), type(error).__name__, 0)
            raise error from None
        except SendGridError as exc:
            error = self._scrub(exc)
            status = response.status_code if response is not None else 0
            if write and isinstance(error, Unavailable) and status in (502, 504):
                # A gateway gave up waiting; SendGrid itself may have applied the write.
                error = OutcomeUnknown(
                    f"SendGrid's gateway answered {status} to a change; "
                    "it may or may not have been applied"
                )
            if isinstance(error, RateLimited):
                self._limiter.pause_for(error.retry_after if error.retry_after else 1.0)
            self._log(label, started, error)
            self._metrics.sendgrid_call(endpoint_of(label), type(error).__name__, status)
            raise error from None
        self._log(label, started, None)
        self._metrics.sendgrid_call(endpoint_of(label), "ok", response.status_code)
        return result

    def _transport_error(self, exc: requests.RequestException, *, write: bool) -> SendGridError:
        kind = type(exc).__name__
        if _never_sent(exc):
            return Unavailable(f"SendGrid could not be reached ({kind})", sent=False)
        if write:
            return OutcomeUnknown(
                f"no complete answer from SendGrid after the change was sent ({kind}); "
                "it may or may not have been applied"
            )
        if isinstance(
            exc, requests.exceptions.ChunkedEncodingError | requests.exceptions.ContentDecodingError
        ):
            return BadResponse(f"SendGrid's answer was cut short ({kind})")
        if isinstance(exc, requests.Timeout):
            return Unavailable(f"SendGrid did not answer within {self.timeout:g} s")
        return Unavailable(f"SendGrid connection failed ({kind})")

    def _should_retry(self, state: RetryCallState, *, write: bool) -> bool:
        if state.outcome is None or not state.outcome.failed:
            return False
        exc = state.outcome.exception()
        if isinstance(exc, RateLimited):
            return exc.retry_after is None or exc.retry_after <= self._retry.max_retry_after
        if isinstance(exc, Unavailable):
            return not write or not exc.sent
        return False

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RateLimited):
            return 0.0  # the limiter holds every caller until Retry-After has passed
        return float(self._backoff(state))

    def _scrub(self, exc: SendGridError) -> SendGridError:
        """Second line of defence: bodies are scrubbed before decoding, but an error
        may also quote a header or a value the decoder was handed another way."""
        exc.args = tuple(self._scrubber.scrub(str(a)) for a in exc.args)
        exc.messages = tuple(self._scrubber.scrub(m) for m in exc.messages)
        return exc

    def _log(self, label: str, started: float, error: Exception | None) -> None:
        elapsed_ms = (time.monotonic() - started) * 1000
        if error is None:
            self._logger.debug("sendgrid %s ok in %.0f ms", label, elapsed_ms)
        else:
            self._logger.warning(
                "sendgrid %s failed in %.0f ms: %s: %s",
                label,
                elapsed_ms,
                type(error).__name__,
                error,
            )


_V2_WORDS = re.compile(r"^(?:method|task)=(\S+)$")
_V3_ACCOUNT = re.compile(r"^(v3/subusers/)[^/]+(/.*)$")
_ANY_ACCOUNT = r"\1{user}\2"


def endpoint_of(label: str) -> str:
    """A call's label without the account or amounts, for a bounded metrics label:
    `customer.limit retrieve`, `PATCH v3/subusers/{user}/credits/remaining`."""
    words = label.split()
    if len(words) >= 2 and words[0].isupper():  # v3: METHOD path
        return f"{words[0]} {_V3_ACCOUNT.sub(_ANY_ACCOUNT, words[1])}"
    kept = [m.group(1) for w in words[1:] if (m := _V2_WORDS.match(w))]
    return " ".join(words[:1] + kept)


def new_session(proxy: str | None = None) -> requests.Session:
    """A session for SendGrid: through `proxy` if one is given, else direct.

    `trust_env` is off: requests would otherwise read netrc, the *_PROXY
    variables and the CA-bundle variables on every call (a tenth of a sweep's
    CPU), and a proxy meant for something else would silently carry SendGrid's
    traffic. The only proxy is the one configured (SENDGRID_PROXY).
    """
    session = requests.Session()
    session.trust_env = False
    if proxy:
        session.proxies = {"http": proxy, "https": proxy}
    # No retries inside urllib3: the retry policy above decides, per read/write.
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=64, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _never_sent(exc: BaseException) -> bool:
    """True when the request provably never reached the server (connect phase failed)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    seen: set[int] = set()
    stack: list[Any] = [exc]
    while stack:
        item = stack.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, NewConnectionError | ConnectTimeoutError):
            return True
        stack.extend([getattr(item, "reason", None), item.__cause__, item.__context__])
        stack.extend(a for a in getattr(item, "args", ()) if isinstance(a, BaseException))
    return False
