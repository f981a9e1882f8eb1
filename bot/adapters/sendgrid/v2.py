"""SendGrid Web API v2 client for subuser and reseller-customer credits.

Implements `bot.domain.credits.CreditsBackend`. Every call is a form POST
(`api_user`, `api_key` and the call's parameters in the body, never in the URL)
to `{base_url}{module}.{action}.{json|xml}`, after taking a token from the
process-wide rate limiter. `responses.decode_body` decides what the answer means.

The retry policy and the limiter are `http.SendGridHttp`'s, shared with v3.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import date

import requests

from bot.adapters.sendgrid import responses
from bot.adapters.sendgrid.http import REDACTED, Limiter, RetryPolicy, SendGridHttp
from bot.domain.credits import Account, Balance, CreditChange, Overview, Period
from bot.errors import BadResponse, OutcomeUnknown
from bot.observability.metrics import NO_METRICS, Metrics
from bot.scrubbing import Scrubber

RESELLER_PAGE_SIZE = 500


class SendGridV2Client:
    """A `CreditsBackend` over SendGrid's v2 Web API (`customer.*` or `reseller.*`)."""

    # `increment`/`decrement`/`total` clear the recurring amount (reference §2.1).
    adjustments_keep_recurring = False
    has_overview = True
    has_recurring_dates = True

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
        proxy: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        metrics: Metrics = NO_METRICS,
        scrubber: Scrubber | None = None,
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
        self._page_size = page_size
        self._http = SendGridHttp(
            scrubber=scrubber or Scrubber([api_key]),
            timeout=timeout,
            limiter=limiter,
            retry=retry,
            logger=logger or logging.getLogger(__name__),
            session=session,
            proxy=proxy,
            sleep=sleep,
            metrics=metrics,
        )

    def __repr__(self) -> str:
        return (
            f"SendGridV2Client(api_user={self._api_user!r}, api_key={REDACTED!r}, "
            f"base_url={self.base_url!r}, mode={self.mode!r}, fmt={self.fmt!r})"
        )

    def close(self) -> None:
        self._http.session.close()

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

    def check_supported(self, change: CreditChange) -> None:
        """v2 has every change the bot makes."""

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
        url = f"{self.base_url}{module}.{self.fmt}"
        shown = " ".join(f"{k}={v}" for k, v in call_params.items() if k != "user")
        label = f"{module} {shown} user={params.get('user', '-')}"

        def send() -> requests.Response:
            data = {"api_user": self._api_user, "api_key": self._api_key, **call_params}
            return self._http.session.post(url, data=data, timeout=self.timeout)

        def decode(status: int, headers: Mapping[str, str], content: bytes) -> responses.Decoded:
            return responses.decode_body(status, headers, content, fmt=self.fmt)

        return self._http.call(label, send, decode, write=write)
