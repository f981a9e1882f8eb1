"""SendGrid Web API v3 client for subuser credits (reference §6).

Implements `CreditsBackend` with an API key (`Authorization: Bearer`):

| change | v3 call |
|---|---|
| read | `GET /v3/subusers/{name}/credits` |
| add N / remove N | `PATCH /v3/subusers/{name}/credits/remaining` `{"allocation_update": ±N}` |
| set N | `PUT /v3/subusers/{name}/credits` `{"type": "nonrecurring", "total": N}` |
| recurring N P | `PUT … {"type": "recurring", "reset_frequency": P, "total": N}` |
| unlimit | `PUT … {"type": "unlimited"}` |
| list | `GET /v3/subusers?limit=&offset=` until a short page |
| the key's scopes | `GET /v3/scopes` (`credits-bot doctor`) |

v3 has no start date, end date or initial credits for recurring credits, and
no reseller overview: those are refused with a clear message before anything
is sent. Errors (`{"errors": [{"field", "message"}]}`, 400 "No user found",
401, 429 with `X-RateLimit-*`) are judged by the same `responses.decode_body`
as v2, and the same retry policy applies.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import date
from typing import Any
from urllib.parse import quote

import requests

from bot.adapters.sendgrid import responses
from bot.adapters.sendgrid.http import REDACTED, Limiter, RetryPolicy, SendGridHttp
from bot.domain.credits import Account, Balance, ChangeKind, CreditChange, Overview, Period
from bot.errors import BadResponse, OutcomeUnknown, UserError
from bot.observability.metrics import NO_METRICS, Metrics
from bot.scrubbing import Scrubber

PAGE_SIZE = 500
# The API key scopes this client needs (reference §6.1): reading and changing
# credits, and listing subusers for the sweep.
REQUIRED_SCOPES = frozenset(
    {
        "subusers.read",
        "subusers.credits.read",
        "subusers.credits.update",
        "subusers.credits.remaining.read",
        "subusers.credits.remaining.update",
    }
)
UNSUPPORTED_RECURRING = (
    "SendGrid's v3 API has no start date, end date or initial credits for recurring "
    "credits; leave them out, or use v2 (SENDGRID_API_VERSION=v2)."
)
NO_OVERVIEW = "The account overview is a SendGrid v2 reseller call; it is not available on v3."


class SendGridV3Client:
    """A `CreditsBackend` over SendGrid's v3 subuser credits endpoints."""

    # `PATCH …/credits/remaining` keeps a recurring allowance (the spec's example
    # answers `type: recurring`); only `PUT …/credits` replaces it.
    adjustments_keep_recurring = True
    has_overview = False
    has_recurring_dates = False

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str = "https://api.sendgrid.com/",
        timeout: float = 10.0,
        limiter: Limiter | None = None,
        retry: RetryPolicy | None = None,
        logger: logging.Logger | None = None,
        session: requests.Session | None = None,
        proxy: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        metrics: Metrics = NO_METRICS,
        scrubber: Scrubber | None = None,
        page_size: int = PAGE_SIZE,
    ) -> None:
        self._api_key = api_key
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
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
        return f"SendGridV3Client(api_key={REDACTED!r}, base_url={self.base_url!r})"

    def close(self) -> None:
        self._http.session.close()

    # --- reads -----------------------------------------------------------------------

    def get_balance(self, user: str) -> Balance:
        return parse_credits(self._call("GET", _credits_path(user), write=False))

    def get_overview(self, user: str) -> Overview:
        raise UserError(NO_OVERVIEW)

    def list_accounts(self) -> Iterator[Account]:
        offset = 0
        while True:
            page = self._call(
                "GET",
                "v3/subusers",
                params={"limit": str(self._page_size), "offset": str(offset)},
                write=False,
            )
            if not isinstance(page, list):
                raise BadResponse("the subuser list is not a list")
            for item in page:
                if not isinstance(item, dict) or not isinstance(item.get("username"), str):
                    raise BadResponse("a subuser without a username")
                yield Account(
                    username=item["username"],
                    email=item.get("email") or None,
                    active=not bool(item.get("disabled")),
                )
            if len(page) < self._page_size:
                return
            offset += len(page)

    def activity(self, day: date) -> dict[str, int]:
        """Emails requested on `day` so far, per subuser that sent any
        (`GET /v3/subusers/stats/sums`, sorted by `requests`, paged until the first
        subuser that sent nothing). See docs/alerts.md for what `requests` is taken to
        mean for credits, and how fresh it is assumed to be."""
        found: dict[str, int] = {}
        offset = 0
        while True:
            body = self._call(
                "GET",
                "v3/subusers/stats/sums",
                params={
                    "start_date": day.isoformat(),
                    "end_date": day.isoformat(),
                    "sort_by_metric": "requests",
                    "sort_by_direction": "desc",
                    "limit": str(STATS_PAGE),
                    "offset": str(offset),
                },
                write=False,
            )
            stats = body.get("stats") if isinstance(body, dict) else None
            if not isinstance(stats, list):
                raise BadResponse("the subuser stats are not a list")
            for item in stats:
                metrics = item.get("metrics") if isinstance(item, dict) else None
                name = item.get("name") if isinstance(item, dict) else None
                sent = metrics.get("requests") if isinstance(metrics, dict) else None
                if not isinstance(name, str) or not isinstance(sent, int):
                    raise BadResponse("a subuser stat without a name or requests")
                if sent <= 0:
                    return found
                found[name] = sent
            if len(stats) < STATS_PAGE:
                return found
            offset += len(stats)

    def scopes(self) -> frozenset[str]:
        """The API key's scopes (`GET /v3/scopes`), for `credits-bot doctor`."""
        body = self._call("GET", "v3/scopes", write=False)
        if not isinstance(body, dict) or not isinstance(body.get("scopes"), list):
            raise BadResponse("the scope list is not a list")
        return frozenset(str(scope) for scope in body["scopes"])

    # --- writes ------------------------------------------------------------------------

    def check_supported(self, change: CreditChange) -> None:
        if change.kind is ChangeKind.RECURRING and (change.start or change.end or change.initial):
            raise UserError(UNSUPPORTED_RECURRING)

    def increment_credits(self, user: str, credits: int) -> None:
        self._write("PATCH", _credits_path(user) + "/remaining", {"allocation_update": credits})

    def decrement_credits(self, user: str, credits: int) -> None:
        self._write("PATCH", _credits_path(user) + "/remaining", {"allocation_update": -credits})

    def set_total_credits(self, user: str, credits: int) -> None:
        self._write("PUT", _credits_path(user), {"type": "nonrecurring", "total": credits})

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
        if start or end or initial is not None:
            raise UserError(UNSUPPORTED_RECURRING)
        body = {"type": "recurring", "reset_frequency": period.value, "total": credits}
        self._write("PUT", _credits_path(user), body)

    def remove_limit(self, user: str) -> None:
        self._write("PUT", _credits_path(user), {"type": "unlimited"})

    # --- plumbing ----------------------------------------------------------------------

    def _write(self, method: str, path: str, body: dict[str, Any]) -> None:
        try:
            parse_credits(self._call(method, path, json_body=body, write=True))
        except BadResponse as exc:
            raise OutcomeUnknown(
                f"SendGrid's answer to the change could not be read ({exc}); "
                "it may or may not have been applied"
            ) from None

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json_body: dict[str, Any] | None = None,
        write: bool,
    ) -> responses.Decoded:
        url = self.base_url + path
        headers = {"Authorization": f"Bearer {self._api_key}", "Accept": "application/json"}

        def send() -> requests.Response:
            return self._http.session.request(
                method, url, params=params, json=json_body, headers=headers, timeout=self.timeout
            )

        def decode(status: int, headers: Mapping[str, str], content: bytes) -> responses.Decoded:
            return responses.decode_body(status, headers, content, fmt="json")

        return self._http.call(f"{method} {path}", send, decode, write=write)


# The spec's default page is 5 and it states no maximum; 500 is the page size SendGrid
# documents for its other stats listings.
STATS_PAGE = 500


def _credits_path(user: str) -> str:
    return f"v3/subusers/{quote(user, safe='')}/credits"


def parse_credits(body: responses.Decoded) -> Balance:
    """`SubuserCredits` → Balance (integers, nulls for unlimited)."""
    if not isinstance(body, dict) or body.get("type") not in (
        "unlimited",
        "recurring",
        "nonrecurring",
    ):
        raise BadResponse("not a SubuserCredits object")
    if body["type"] == "unlimited":
        return Balance.no_limit()
    remain = body.get("remain")
    if not isinstance(remain, int) or isinstance(remain, bool):
        raise BadResponse("remain is not an integer")
    if body["type"] == "recurring":
        total = body.get("total")
        frequency = body.get("reset_frequency")
        try:
            period = Period(frequency) if frequency else None
        except ValueError:
            raise BadResponse(f"unknown reset_frequency {frequency!r}") from None
        return Balance(
            unlimited=False,
            remaining=remain,
            allowance=total if isinstance(total, int) else None,
            period=period,
        )
    return Balance(unlimited=False, remaining=remain)
