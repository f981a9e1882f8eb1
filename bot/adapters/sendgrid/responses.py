"""SendGrid v2 answers → Python values or exceptions. The only place that decides.

v2 is judged by its body, not its status (reference §0–§2): errors arrive with
HTTP 200 in three shapes, `retrieve` may be wrapped in a one-element array,
"unlimited" is `[]`, `{}` or an empty body, and numbers may be strings.

`decode_body()` turns status + headers + bytes into a plain value (dict, list,
str or None) or raises one of the `SendGridError` subclasses. The `parse_*`
functions turn decoded values into domain objects, raising `BadResponse` when a
body has an unexpected shape.

Bodies arrive here already scrubbed of every configured secret (`http.SendGridHttp`
scrubs before it decodes), so the previews and messages built below may quote them
and cut them short freely.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from datetime import date
from email.utils import parsedate_to_datetime
from typing import Any
from xml.etree.ElementTree import Element

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring

from bot.domain.credits import Account, Balance, Overview
from bot.errors import (
    AuthenticationFailed,
    BadResponse,
    RateLimited,
    RequestRejected,
    SendGridError,
    Unavailable,
    UnknownAccount,
)

Decoded = dict[str, Any] | list[Any] | str | None

# Phrases seen in SendGrid's error texts (reference §1.3, §6.1), lower-cased.
_AUTH_PHRASES = (
    "invalid username",
    "permission denied",
    "wrong credentials",
    "authorization required",
    "authentication",
    "not authorized",
    "unauthorized",
)
_UNKNOWN_ACCOUNT_PHRASES = (
    "no user found",
    "user does not exist",
    "customer does not exist",
    "subuser does not exist",
    "invalid user",
    "unknown user",
    "user not found",
)
_MAX_MESSAGE = 300


def decode_body(
    status: int, headers: Mapping[str, str], content: bytes, *, fmt: str, now: float | None = None
) -> Decoded:
    """Decode one v2 response, or raise the SendGridError it stands for.

    Order matters: 429 first (its body may be anything), then the body's own
    error shapes whatever the status, then 5xx, then other 4xx.
    """
    if status == 429:
        retry_after = retry_after_seconds(headers, now=now)
        raise RateLimited("SendGrid rate limit reached (HTTP 429)", retry_after=retry_after)
    try:
        body = _parse(content, fmt)
    except BadResponse:
        if status >= 500:
            raise Unavailable(f"SendGrid failed (HTTP {status})") from None
        raise
    messages, code = _error_in(body)
    if messages is not None:
        raise _classify(messages, code=code, status=status)
    if status >= 500:
        raise Unavailable(f"SendGrid failed (HTTP {status})")
    if status >= 400:
        raise RequestRejected(f"SendGrid refused the request (HTTP {status})")
    return body


def retry_after_seconds(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds to wait from `Retry-After` (seconds or HTTP date) or `X-RateLimit-Reset` (epoch)."""
    now = time.time() if now is None else now
    lowered = {k.lower(): v for k, v in headers.items()}
    raw = lowered.get("retry-after", "").strip()
    if raw:
        try:
            return max(0.0, float(raw))
        except ValueError:
            try:
                return max(0.0, parsedate_to_datetime(raw).timestamp() - now)
            except (TypeError, ValueError):
                pass
    reset = lowered.get("x-ratelimit-reset", "").strip()
    if reset:
        try:
            return max(0.0, float(reset) - now)
        except ValueError:
            return None
    return None


def expect_success(body: Decoded) -> None:
    """A write succeeded only if SendGrid said `success`."""
    if body == "success" or (isinstance(body, dict) and body.get("message") == "success"):
        return
    raise BadResponse(f"SendGrid did not confirm the change: {_preview(body)}")


def parse_balance(body: Decoded) -> Balance:
    """`customer.limit` / `reseller.manage method=limit` task=retrieve → Balance.

    Accepts an object, a one-element array, `[]`, `{}` or an empty body
    (the last three mean the limit was removed).
    """
    if isinstance(body, list):
        if not body:
            return Balance.no_limit()
        if len(body) != 1:
            raise BadResponse(f"expected one balance, got {len(body)}")
        body = body[0]
    if body is None or body in ("", {}):
        return Balance.no_limit()
    if not isinstance(body, dict):
        raise BadResponse(f"unexpected balance body: {_preview(body)}")
    if "credit_remain" not in body:
        raise BadResponse(f"balance without credit_remain: {_preview(body)}")
    allowance = _integer(body, "credit", required=False) or None
    return Balance(
        unlimited=False,
        remaining=_integer(body, "credit_remain"),
        allowance=allowance,
        last_reset=_date(body, "last_reset"),
    )


def parse_overview(body: Decoded) -> Overview:
    """`reseller.account task=overview` → Overview (XML nests it in `<overview>`)."""
    if isinstance(body, list) and len(body) == 1:
        body = body[0]
    if isinstance(body, dict) and isinstance(body.get("overview"), dict):
        body = body["overview"]
    if not isinstance(body, dict) or not body:
        raise BadResponse(f"unexpected overview body: {_preview(body)}")
    reputation = body.get("reputation")
    try:
        reputation_value = None if reputation in (None, "") else float(str(reputation))
    except ValueError:
        raise BadResponse("reputation is not a number") from None
    package = body.get("package")
    return Overview(
        package=str(package) if package not in (None, "") else None,
        reputation=reputation_value,
        requests=_integer(body, "requests", required=False),
        credits_allowed=_integer(body, "credits_allowed", required=False),
        credits_used=_integer(body, "credits_used", required=False),
        credits_remain=_integer(body, "credits_remain", required=False),
        credits_overage=_integer(body, "credits_overage", required=False),
        billing_start=_date(body, "billing_start_date"),
        billing_end=_date(body, "billing_end_date"),
        billing_process=_date(body, "billing_process_date"),
    )


def parse_accounts(body: Decoded) -> list[Account]:
    """`customer.profile task=get` / `reseller.manage method=profile task=get` → accounts."""
    if body is None or body in ("", {}):
        return []
    if isinstance(body, dict) and len(body) == 1:
        # XML `<users><user>…</user></users>` with a single user decodes as {"user": {...}}.
        (only,) = body.values()
        body = only if isinstance(only, list) else [only]
    if not isinstance(body, list):
        raise BadResponse(f"unexpected account list: {_preview(body)}")
    accounts = []
    for item in body:
        if not isinstance(item, dict) or not isinstance(item.get("username"), str):
            raise BadResponse(f"account without a username: {_preview(item)}")
        email = item.get("email")
        active = str(item.get("active", "true")).strip().lower() not in ("false", "0", "no")
        accounts.append(Account(username=item["username"], email=email or None, active=active))
    return accounts


# --- decoding -----------------------------------------------------------------


def _parse(content: bytes, fmt: str) -> Decoded:
    text = content.strip()
    if not text:
        return None
    if fmt == "xml":
        return _parse_xml(text)
    try:
        decoded: Decoded = json.loads(text)
    except (ValueError, RecursionError):
        raise BadResponse(f"SendGrid sent a body that is not JSON: {_preview(text)}") from None
    if not isinstance(decoded, dict | list | str):
        raise BadResponse(f"SendGrid sent an unexpected JSON value: {_preview(decoded)}")
    return decoded


def _parse_xml(text: bytes) -> Decoded:
    try:
        root = fromstring(text, forbid_dtd=True)
    except (ParseError, DefusedXmlException, ValueError, RecursionError):
        raise BadResponse(f"SendGrid sent a body that is not XML: {_preview(text)}") from None
    return _xml_value(root)


def _xml_value(element: Element) -> Decoded:
    children = list(element)
    if not children:
        return (element.text or "").strip()
    tags = [child.tag for child in children]
    if len(children) > 1 and len(set(tags)) == 1:
        return [_xml_value(child) for child in children]
    if len(children) == 1 and element.tag in (tags[0] + "s", "errors"):
        return [_xml_value(children[0])]
    return {child.tag: _xml_value(child) for child in children}


def _error_in(body: Decoded) -> tuple[tuple[str, ...] | None, int | None]:
    """The error messages and code in `body`, or (None, None) if it is no error."""
    if not isinstance(body, dict):
        return None, None
    error = body.get("error")
    if isinstance(error, dict):
        code = error.get("code")
        return (_text(error.get("message", "error")),), _code(code)
    if isinstance(error, str):
        return (_text(error),), None
    errors = body.get("errors")
    if body.get("message") == "error" or (
        isinstance(errors, list) and errors and "message" not in body
    ):
        return _messages(errors), None
    return None, None


def _messages(errors: Any) -> tuple[str, ...]:
    if isinstance(errors, str):
        errors = [errors]
    if not isinstance(errors, list) or not errors:
        return ("error",)
    out = []
    for item in errors:
        if isinstance(item, dict):  # v3-style {"field":…, "message":…}
            out.append(_text(item.get("message") or item.get("error") or item))
        else:
            out.append(_text(item))
    return tuple(out)


def _classify(messages: tuple[str, ...], *, code: int | None, status: int) -> SendGridError:
    joined = "; ".join(messages)
    lowered = joined.lower()
    if code in (401, 403) or status in (401, 403) or any(p in lowered for p in _AUTH_PHRASES):
        return AuthenticationFailed(
            f"SendGrid refused the credentials: {joined}", messages=messages
        )
    if any(p in lowered for p in _UNKNOWN_ACCOUNT_PHRASES):
        return UnknownAccount(f"SendGrid does not know this account: {joined}", messages=messages)
    if "too many requests" in lowered or code == 429:
        return RateLimited(f"SendGrid rate limit reached: {joined}", messages=messages)
    if status >= 500 or (code is not None and code >= 500):
        return Unavailable(f"SendGrid failed: {joined}", messages=messages)
    return RequestRejected(f"SendGrid refused the request: {joined}", messages=messages)


def _code(value: Any) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


def _text(value: Any) -> str:
    text = re.sub(r"\s+", " ", str(value)).strip()
    return text[:_MAX_MESSAGE]


def _preview(value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = value if isinstance(value, str) else repr(value)
    return _text(text)[:120]


def _integer(body: Mapping[str, Any], key: str, *, required: bool = True) -> int | None:
    value = body.get(key)
    if value is None or value == "":
        if required:
            raise BadResponse(f"{key} is missing")
        return None
    if isinstance(value, bool):
        raise BadResponse(f"{key} is not a number: {value!r}")
    try:
        return int(str(value).strip())
    except ValueError:
        try:
            number = float(str(value))
        except ValueError:
            raise BadResponse(f"{key} is not a number: {_preview(value)}") from None
        if not number.is_integer():
            raise BadResponse(f"{key} is not a whole number: {_preview(value)}") from None
        return int(number)


def _date(body: Mapping[str, Any], key: str) -> date | None:
    value = body.get(key)
    if value in (None, "", "0000-00-00"):
        return None
    try:
        return date.fromisoformat(str(value).strip()[:10])
    except ValueError:
        raise BadResponse(f"{key} is not a date: {_preview(value)}") from None
