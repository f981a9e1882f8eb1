"""Fuzzing the one place that judges SendGrid's answers: any body, any status → a value
or one of the project's own errors, never anything else."""

from __future__ import annotations

import contextlib
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.adapters.sendgrid.responses import (
    decode_body,
    expect_success,
    parse_accounts,
    parse_balance,
    parse_overview,
)
from bot.adapters.sendgrid.v3 import parse_credits
from bot.errors import BotError

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=20,
)
# Bodies shaped like SendGrid's, with values that are not.
keys = st.sampled_from(
    [
        "credit",
        "credit_remain",
        "last_reset",
        "message",
        "errors",
        "error",
        "code",
        "username",
        "active",
        "email",
        "reputation",
        "package",
        "type",
        "remain",
        "total",
        "reset_frequency",
        "overview",
        "credits_remain",
        "billing_end_date",
    ]
)
shaped = st.recursive(
    json_values,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=6),
    max_leaves=15,
)
statuses = st.sampled_from([200, 201, 204, 400, 401, 403, 404, 429, 500, 502, 503])
headers = st.dictionaries(
    st.sampled_from(["Retry-After", "X-RateLimit-Reset", "Content-Type"]),
    st.text(max_size=30),
    max_size=3,
)
PARSERS = (parse_balance, parse_overview, parse_accounts, expect_success, parse_credits)


def judge(status: int, head: dict[str, str], body: bytes, fmt: str) -> None:
    try:
        decoded = decode_body(status, head, body, fmt=fmt, now=0.0)
    except BotError:
        return
    for parser in PARSERS:
        with contextlib.suppress(BotError):  # our errors are the allowed outcome
            parser(decoded)  # type: ignore[arg-type]


@settings(max_examples=400, deadline=None)
@given(statuses, headers, shaped)
def test_any_json_value_decodes_or_raises_our_errors(status, head, value):
    judge(status, head, json.dumps(value, allow_nan=True).encode(), "json")


@settings(max_examples=300, deadline=None)
@given(statuses, headers, st.binary(max_size=300))
def test_any_bytes_decode_or_raise_our_errors(status, head, body):
    judge(status, head, body, "json")
    judge(status, head, body, "xml")


xml_names = st.sampled_from(
    [
        "result",
        "credits",
        "credit",
        "credit_remain",
        "message",
        "errors",
        "error",
        "users",
        "user",
        "username",
        "overview",
        "code",
        "active",
    ]
)


@st.composite
def xml_documents(draw: st.DrawFn) -> bytes:
    def element(depth: int) -> str:
        name = draw(xml_names)
        if depth > 2 or draw(st.booleans()):
            text = draw(
                st.text(alphabet=st.characters(codec="ascii", exclude_characters="<&"), max_size=12)
            )
            return f"<{name}>{text}</{name}>"
        children = "".join(element(depth + 1) for _ in range(draw(st.integers(0, 3))))
        return f"<{name}>{children}</{name}>"

    return element(0).encode()


@settings(max_examples=300, deadline=None)
@given(statuses, xml_documents())
def test_any_xml_document_decodes_or_raises_our_errors(status, document):
    judge(status, {}, document, "xml")
