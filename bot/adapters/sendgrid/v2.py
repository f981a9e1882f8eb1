"""SendGrid Web API v2 client for subuser and reseller-customer credits.

Implements `bot.domain.credits.CreditsBackend`. Every call is a form POST
(`api_user`, `api_key` and the call's parameters in the body, never in the URL)
to `{base_url}{module}.{action}.{json|xml}`, after taking a token from the
process-wide rate limiter. `responses.decode_body` decides what the answer means.

Retry policy (tenacity, each attempt through the limiter again):
- reads (`retrieve`, `overview`, listings) retry on connection errors, timeouts,
  5xx and 429, with jittered exponential backoff or SendGrid's `Retry-After`;
- writes retry only when the request provably never left (connection refused,
  connect timeout) or SendGrid answered 429. A write that was sent and got no
  answer raises `OutcomeUnknown`, never a second attempt.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol

import requests
from requests.adapters import HTTPAdapter
from tenacity import RetryCallState, Retrying, stop_after_attempt, stop_after_delay
from tenacity.wait import wait_exponential_jitter
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from bot.adapters.sendgrid import responses
from bot.adapters.sendgrid.ratelimit import TokenBucket
from bot.domain.credits import Account, Balance, Overview, Period
from bot.errors import (
    BadResponse,
    OutcomeUnknown,
    RateLimited,
    SendGridError,
    Unavailable,
)

REDACTED = "********"
RESELLER_PAGE_SIZE = 500


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


class SendGridV2Client:
    """A `CreditsBackend` over SendGrid's v2 Web API (`customer.*` or `reseller.*`)."""

    def __init__(
        self,
        *,
        api_user: str,
        api_key: str,
        base_url: str = "https://api.sendgrid.com/apiv2/",
        mode: str = "subuser",
        fmt: str = "json",
        timeout: float = 10.0,
        limiter: Limiter | None = None,
        retry: RetryPolicy | None = None,
        logger: logging.Logger | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        page_size: int = RESELLER_PAGE_SIZE,
    ) -> None:
        if mode not in ("subuser", "reseller"):
            raise ValueError(f"mode must be subuser or reseller, not {mode!r}")
        if fmt not in ("json", "xml"):
            raise ValueError(f"fmt must be json or xml, not {fmt!r}")
        self._api_user = api_user
        self._api_key = api_key
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.mode = mode
        self.fmt = fmt
        self.timeout = timeout
        self._limiter: Limiter = limiter or TokenBucket(limit=600)
        self._retry = retry or RetryPolicy()
        self._logger = logger or logging.getLogger(__name__)
        self._session = session or _new_session()
        self._sleep = sleep
        self._page_size = page_size
        self._backoff = wait_exponential_jitter(
            multiplier=self._retry.backoff_initial,
            max=self._retry.backoff_max,
            jitter=self._retry.backoff_initial,
        )

    def __repr__(self) -> str:
        return (
            f"SendGridV2Client(api_user={self._api_user!r}, api_key={REDACTED!r}, "
            f"base_url={self.base_url!r}, mode={self.mode!r}, fmt={self.fmt!r})"
        )

    def close(self) -> None:
        self._session.close()

    # --- reads ------------------------------------------------------------------

    def get_balance(self, user: str) -> Balance:
        """The account's balance (`task=retrieve`)."""
        body = self._call(*self._limit_endpoint(), {"task": "retrieve", "user": user}, write=False)
        return responses.parse_balance(body)

    def get_overview(self, user: str) -> Overview:
        """A reseller customer's overview (`reseller.account task=overview`)."""
        body = self._call("reseller.account", None, {"task": "overview", "user": user}, write=False)
        return responses.parse_overview(body)

    def list_accounts(self) -> Iterator[Account]:
        """Every subuser (subuser mode) or reseller customer (paged, reseller mode)."""
        if self.mode == "subuser":
            yield from responses.parse_accounts(
                self._call("customer.profile", None, {"task": "get"}, write=False)
            )
            return
        offset = 0
        while True:
            page = responses.parse_accounts(
                self._call(
                    "reseller.manage",
                    "profile",
                    {"task": "get", "limit": str(self._page_size), "offset": str(offset)},
                    write=False,
                )
            )
            yield from page
            if len(page) < self._page_size:
                return
            offset += len(page)

    # --- writes (each sent at most once once it may have left) ---------------------

    def increment_credits(self, user: str, credits: int) -> None:
        self._write(user, task="increment", credits=str(credits))

    def decrement_credits(self, user: str, credits: int) -> None:
        self._write(user, task="decrement", credits=str(credits))

    def set_total_credits(self, user: str, credits: int) -> None:
        self._write(user, task="total", credits=str(credits))

    def set_recurring_credits(
        self,
        user: str,
        credits: int,
        period: Period,
        *,
        start: date | None = None,
        end: date | None = None,
        initial: int | None = None,
    ) -> None:
        optional = {
            "startdate": start.isoformat() if start else None,
            "enddate": end.isoformat() if end else None,
            "initial_credits": str(initial) if initial is not None else None,
        }
        self._write(
            user,
            task="recurring",
            credits=str(credits),
            period=period.value,
            **{k: v for k, v in optional.items() if v is not None},
        )

    def remove_limit(self, user: str) -> None:
        self._write(user, task="none")

    # --- plumbing ---------------------------------------------------------------

    def _limit_endpoint(self) -> tuple[str, str | None]:
        if self.mode == "subuser":
            return "customer.limit", None
        return "reseller.manage", "limit"

    def _write(self, user: str, **params: str) -> None:
        try:
            responses.expect_success(
                self._call(*self._limit_endpoint(), {"user": user, **params}, write=True)
            )
        except BadResponse as exc:
            # An answer we cannot read says nothing about whether the change happened.
            raise OutcomeUnknown(
                f"SendGrid's answer to the change could not be read ({exc}); "
                "it may or may not have been applied"
            ) from None

    def _call(
        self, module: str, method: str | None, params: Mapping[str, str], *, write: bool
    ) -> responses.Decoded:
        call_params = dict(params)
        if method is not None:
            call_params = {"method": method, **call_params}
        retrying = Retrying(
            retry=lambda state: self._should_retry(state, write=write),
            stop=stop_after_attempt(self._retry.attempts) | stop_after_delay(self._retry.max_delay),
            wait=self._wait,
            sleep=self._sleep,
            reraise=True,
        )
        return retrying(self._attempt, module, call_params, write=write)

    def _attempt(self, module: str, params: Mapping[str, str], *, write: bool) -> responses.Decoded:
        url = f"{self.base_url}{module}.{self.fmt}"
        label = f"{module} {' '.join(f'{k}={v}' for k, v in params.items() if k != 'user')}"
        self._limiter.acquire()
        started = time.monotonic()
        try:
            response = self._session.post(
                url,
                data={"api_user": self._api_user, "api_key": self._api_key, **params},
                timeout=self.timeout,
            )
            body = responses.decode_body(
                response.status_code, response.headers, response.content, fmt=self.fmt
            )
        except requests.RequestException as exc:
            error = self._transport_error(exc, write=write)
            self._log(label, params, started, error)
            raise error from None
        except SendGridError as exc:
            error = self._scrub(exc)
            if write and isinstance(error, Unavailable) and response.status_code in (502, 504):
                # A gateway gave up waiting; SendGrid itself may have applied the write.
                error = OutcomeUnknown(
                    f"SendGrid's gateway answered {response.status_code} to a change; "
                    "it may or may not have been applied"
                )
            if isinstance(error, RateLimited):
                self._limiter.pause_for(error.retry_after if error.retry_after else 1.0)
            self._log(label, params, started, error)
            raise error from None
        self._log(label, params, started, None)
        return body

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
        """Remove the API key from anything SendGrid echoed back into an error."""
        if self._api_key and any(self._api_key in str(a) for a in (*exc.args, *exc.messages)):
            exc.args = tuple(str(a).replace(self._api_key, REDACTED) for a in exc.args)
            exc.messages = tuple(m.replace(self._api_key, REDACTED) for m in exc.messages)
        return exc

    def _log(
        self, label: str, params: Mapping[str, str], started: float, error: Exception | None
    ) -> None:
        elapsed_ms = (time.monotonic() - started) * 1000
        user = params.get("user", "-")
        if error is None:
            self._logger.debug("sendgrid %s user=%s ok in %.0f ms", label, user, elapsed_ms)
        else:
            self._logger.warning(
                "sendgrid %s user=%s failed in %.0f ms: %s: %s",
                label,
                user,
                elapsed_ms,
                type(error).__name__,
                error,
            )


def _new_session() -> requests.Session:
    session = requests.Session()
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
