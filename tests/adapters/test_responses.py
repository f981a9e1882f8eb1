"""The one place that judges a v2 answer: a table of bodies → values or errors."""

from __future__ import annotations

from datetime import date

import pytest

from bot.adapters.sendgrid.responses import (
    decode_body,
    expect_success,
    parse_accounts,
    parse_balance,
    parse_overview,
    retry_after_seconds,
)
from bot.domain.credits import Balance
from bot.errors import (
    AuthenticationFailed,
    BadResponse,
    RateLimited,
    RequestRejected,
    SendGridError,
    Unavailable,
    UnknownAccount,
)

ERROR_BODIES: list[tuple[int, bytes, type[SendGridError]]] = [
    # reference §1.3, recorded and documented shapes; every one also with HTTP 200
    (
        200,
        b'{"message":"error","errors":["Invalid username and\\/or password"]}',
        AuthenticationFailed,
    ),
    (
        200,
        b'{"error":{"code":401,"message":"Permission denied, not authorized"}}',
        AuthenticationFailed,
    ),
    (
        200,
        b'{"errors":["Permission denied, wrong credentials"],"message":"error"}',
        AuthenticationFailed,
    ),
    (400, b'{"error": "error in end_date: end date is in the future"}', RequestRejected),
    (200, b'{"error": "error in end_date: end date is in the future"}', RequestRejected),
    (200, b'{"message":"error","errors":["User does not exist"]}', UnknownAccount),
    (400, b'{"errors":[{"field":null,"message":"No user found"}]}', UnknownAccount),
    (200, b'{"error":{"code":500,"message":"Internal error"}}', Unavailable),
    (503, b"<html>Service Unavailable</html>", Unavailable),
    (500, b"", Unavailable),
    (404, b"", RequestRejected),
    (200, b'{"credit": "20', BadResponse),
    (200, b"\xff\xfe not json", BadResponse),
    (200, b"12", BadResponse),
    (200, b"[" * 100_000, BadResponse),
]


@pytest.mark.parametrize(("status", "body", "expected"), ERROR_BODIES)
def test_error_bodies_raise_by_shape_whatever_the_status(
    status: int, body: bytes, expected: type[SendGridError]
):
    with pytest.raises(expected):
        decode_body(status, {}, body, fmt="json")


XML_ERRORS: list[tuple[bytes, type[SendGridError]]] = [
    (
        b"<result><message>error</message><errors><error>User does not exist</error></errors>"
        b"</result>",
        UnknownAccount,
    ),
    (
        b"<result><error><code>401</code><message>Permission denied</message></error></result>",
        AuthenticationFailed,
    ),
    (
        b"<result><message>error</message><errors><error>a</error><error>b</error></errors></result>",
        RequestRejected,
    ),
    (b"<credits><credit>1</credit>", BadResponse),
    (b'<!DOCTYPE x [<!ENTITY a "aaaa">]><credits>&a;</credits>', BadResponse),
]


@pytest.mark.parametrize(("body", "expected"), XML_ERRORS)
def test_xml_error_bodies(body: bytes, expected: type[SendGridError]):
    with pytest.raises(expected):
        decode_body(200, {}, body, fmt="xml")


def test_xml_error_keeps_every_message():
    with pytest.raises(RequestRejected) as caught:
        decode_body(
            200,
            {},
            b"<result><message>error</message><errors><error>a</error><error>b</error>"
            b"</errors></result>",
            fmt="xml",
        )
    assert caught.value.messages == ("a", "b")


def test_429_carries_retry_after_from_either_header():
    with pytest.raises(RateLimited) as by_seconds:
        decode_body(429, {"Retry-After": "7"}, b"", fmt="json")
    assert by_seconds.value.retry_after == 7
    with pytest.raises(RateLimited) as by_reset:
        decode_body(429, {"X-RateLimit-Reset": "1000030"}, b"{}", fmt="json", now=1_000_000)
    assert by_reset.value.retry_after == 30


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "2.5"}, 2.5),
        ({"Retry-After": "Thu, 01 Jan 1970 00:00:10 GMT"}, 5.0),
        ({"Retry-After": "soon"}, None),
        ({"X-RateLimit-Reset": "later"}, None),
        ({}, None),
    ],
)
def test_retry_after_parsing(headers: dict[str, str], expected: float | None):
    assert retry_after_seconds(headers, now=5.0) == expected


BALANCES: list[tuple[object, Balance]] = [
    (
        [{"credit": "0", "credit_remain": "200", "last_reset": "2014-01-16"}],
        Balance(unlimited=False, remaining=200, last_reset=date(2014, 1, 16)),
    ),
    (
        {"credit": "400", "credit_remain": "400", "last_reset": "2014-01-16"},
        Balance(unlimited=False, remaining=400, allowance=400, last_reset=date(2014, 1, 16)),
    ),
    ({"credit": 10, "credit_remain": 0, "last_reset": ""}, Balance(False, 0, 10)),
    ({"credit_remain": "5.0"}, Balance(False, 5)),
    ([], Balance.no_limit()),
    ({}, Balance.no_limit()),
    (None, Balance.no_limit()),
    ("", Balance.no_limit()),
]


@pytest.mark.parametrize(("body", "expected"), BALANCES)
def test_balance_shapes(body: object, expected: Balance):
    assert parse_balance(body) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "body",
    [
        [{"credit_remain": "1"}, {"credit_remain": "2"}],
        {"credit": "1"},
        {"credit_remain": "lots"},
        {"credit_remain": "1.5"},
        {"credit_remain": True},
        {"credit_remain": "1", "last_reset": "yesterday"},
        "success",
        ["x"],
    ],
)
def test_unexpected_balance_shapes_are_bad_responses(body: object):
    with pytest.raises(BadResponse):
        parse_balance(body)  # type: ignore[arg-type]


def test_xml_balance_and_unlimited():
    xml = b"<credits><credit>0</credit><credit_remain>2000</credit_remain></credits>"
    assert parse_balance(decode_body(200, {}, xml, fmt="xml")) == Balance(False, 2000)
    assert parse_balance(decode_body(200, {}, b"<credits/>", fmt="xml")).unlimited
    assert parse_balance(decode_body(200, {}, b"", fmt="xml")).unlimited


def test_overview_with_mixed_number_types():
    overview = parse_overview(
        {
            "reputation": "100",
            "requests": "500000",
            "package": "Silver Package",
            "credits_allowed": "50000",
            "credits_used": "100000",
            "credits_remain": 0,
            "credits_overage": "50000",
            "billing_start_date": "2010-08-30",
            "billing_end_date": "2010-09-29",
            "billing_process_date": "2010-09-30",
        }
    )
    assert overview.credits_remain == 0
    assert overview.credits_overage == 50_000
    assert overview.billing_process == date(2010, 9, 30)
    with pytest.raises(BadResponse):
        parse_overview([])


@pytest.mark.parametrize(
    "body",
    [{"message": "success"}, "success", b"<result><message>success</message></result>"],
)
def test_success_confirmations(body: object):
    if isinstance(body, bytes):
        body = decode_body(200, {}, body, fmt="xml")
    expect_success(body)  # type: ignore[arg-type]


@pytest.mark.parametrize("body", [None, {}, [], {"message": "Email does not exist"}])
def test_anything_else_is_no_confirmation(body: object):
    with pytest.raises(BadResponse):
        expect_success(body)  # type: ignore[arg-type]


def test_accounts_from_xml_with_one_user():
    xml = b"<users><user><username>solo</username><active>false</active></user></users>"
    [account] = parse_accounts(decode_body(200, {}, xml, fmt="xml"))
    assert (account.username, account.active, account.email) == ("solo", False, None)
