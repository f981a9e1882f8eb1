"""The v2 client against the real simulator over HTTP: endpoints, formats, errors, faults."""

from __future__ import annotations

import logging
import socket
import time
from datetime import date

import pytest
import requests

from bot.domain.credits import Balance, ChangeKind, CreditChange, Period, apply_change
from bot.errors import (
    AuthenticationFailed,
    BadResponse,
    OutcomeUnknown,
    RateLimited,
    RequestRejected,
    SendGridError,
    Unavailable,
    UnknownAccount,
)
from bot.simulator import DEMO_API_KEY, FaultRule, SimulatorServer, SimulatorState
from tests.conftest import ClientFactory
from tests.helpers import wait_until

FORMATS = ["json", "xml"]


# --- every endpoint and task, both formats -----------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_retrieve_reads_remaining_allowance_and_last_reset(make_client: ClientFactory, fmt: str):
    balance = make_client(fmt=fmt).get_balance("acme-eu")
    assert balance == Balance(
        unlimited=False, remaining=31_200, allowance=50_000, last_reset=date(2026, 11, 1)
    )


@pytest.mark.parametrize("fmt", FORMATS)
def test_retrieve_of_unlimited_account_is_unlimited(make_client: ClientFactory, fmt: str):
    assert make_client(fmt=fmt).get_balance("stark-industries") == Balance.no_limit()


@pytest.mark.parametrize("shape", ["array", "object"])
def test_retrieve_accepts_array_wrapped_and_plain_objects(
    make_client: ClientFactory, sim_state: SimulatorState, shape: str
):
    sim_state.retrieve_shape = shape
    assert make_client().get_balance("globex").remaining == 640


@pytest.mark.parametrize("fmt", FORMATS)
def test_increment_then_retrieve_shows_the_sum(make_client: ClientFactory, fmt: str):
    client = make_client(fmt=fmt)
    client.increment_credits("initech", 500)
    assert client.get_balance("initech").remaining == 1_400


@pytest.mark.parametrize("fmt", FORMATS)
def test_decrement_subtracts_and_stops_at_zero(make_client: ClientFactory, fmt: str):
    client = make_client(fmt=fmt)
    client.decrement_credits("initech", 400)
    assert client.get_balance("initech").remaining == 500
    client.decrement_credits("initech", 10_000)
    assert client.get_balance("initech").remaining == 0


@pytest.mark.parametrize("fmt", FORMATS)
def test_total_sets_the_balance_exactly(make_client: ClientFactory, fmt: str):
    client = make_client(fmt=fmt)
    client.set_total_credits("acme-eu", 7)
    assert client.get_balance("acme-eu") == Balance(
        unlimited=False, remaining=7, allowance=None, last_reset=date(2026, 11, 1)
    )


@pytest.mark.parametrize("fmt", FORMATS)
def test_recurring_sets_the_allowance_and_sends_optional_fields(
    make_client: ClientFactory, simulator: SimulatorServer, fmt: str
):
    client = make_client(fmt=fmt)
    client.set_recurring_credits(
        "hooli", 3_000, Period.WEEKLY, start=date(2026, 12, 1), end=date(2027, 6, 30), initial=250
    )
    balance = client.get_balance("hooli")
    assert (balance.allowance, balance.remaining) == (3_000, 250)
    sent = simulator.state.writes(user="hooli")[-1].params
    assert sent == {
        "user": "hooli",
        "task": "recurring",
        "credits": "3000",
        "period": "weekly",
        "startdate": "2026-12-01",
        "enddate": "2027-06-30",
        "initial_credits": "250",
    }


@pytest.mark.parametrize("fmt", FORMATS)
def test_none_removes_the_limit(make_client: ClientFactory, fmt: str):
    client = make_client(fmt=fmt)
    client.remove_limit("globex")
    assert client.get_balance("globex").unlimited


@pytest.mark.parametrize("fmt", FORMATS)
def test_subuser_listing_includes_inactive_flag(make_client: ClientFactory, fmt: str):
    accounts = list(make_client(fmt=fmt).list_accounts())
    assert len(accounts) == 13
    by_name = {a.username: a for a in accounts}
    assert by_name["cyberdyne"].active is False
    assert by_name["acme-eu"].active is True
    assert by_name["acme-eu"].email == "mail-ops@acme.example"


@pytest.mark.parametrize("fmt", FORMATS)
def test_reseller_mode_reads_customer_limits_and_overview(make_client: ClientFactory, fmt: str):
    client = make_client(fmt=fmt, mode="reseller")
    assert client.get_balance("alice@example.com").remaining == 2_000
    assert client.get_balance("dave@example.com").unlimited
    overview = client.get_overview("carol@example.net")
    assert overview.package == "Bronze Package"
    assert overview.reputation == 87.0
    assert (overview.credits_allowed, overview.credits_used) == (10_000, 15_000)
    assert (overview.credits_remain, overview.credits_overage) == (0, 5_000)
    assert overview.billing_end == date(2026, 11, 30)


@pytest.mark.parametrize("fmt", FORMATS)
def test_reseller_mode_writes_go_to_reseller_manage(
    make_client: ClientFactory, simulator: SimulatorServer, fmt: str
):
    client = make_client(fmt=fmt, mode="reseller")
    client.increment_credits("alice@example.com", 100)
    assert client.get_balance("alice@example.com").remaining == 2_100
    write = simulator.state.writes()[-1]
    assert (write.module, write.params["method"]) == ("reseller.manage", "limit")


def test_reseller_listing_pages_with_limit_and_offset(
    make_client: ClientFactory, simulator: SimulatorServer
):
    accounts = list(make_client(mode="reseller", page_size=2).list_accounts())
    assert [a.username for a in accounts] == [
        "alice@example.com",
        "bob@example.org",
        "carol@example.net",
        "dave@example.com",
    ]
    offsets = [c.params["offset"] for c in simulator.state.calls()]
    assert offsets == ["0", "2", "4"]


# --- errors SendGrid reports in the body ----------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_wrong_credentials_with_http_200_are_an_authentication_failure(
    make_client: ClientFactory, fmt: str
):
    with pytest.raises(AuthenticationFailed, match="wrong credentials"):
        make_client(fmt=fmt, api_key="not-the-password").get_balance("acme-eu")


@pytest.mark.parametrize("fmt", FORMATS)
def test_unknown_subuser_is_unknown_account(make_client: ClientFactory, fmt: str):
    with pytest.raises(UnknownAccount):
        make_client(fmt=fmt).get_balance("no-such-subuser")


def test_value_sendgrid_refuses_is_request_rejected(make_client: ClientFactory):
    with pytest.raises(RequestRejected, match="unsigned integer"):
        make_client().increment_credits("acme-eu", -5)


@pytest.mark.parametrize(
    ("shape", "expected"),
    [("1", RequestRejected), ("2", Unavailable), ("3", RequestRejected)],
)
@pytest.mark.parametrize("fmt", FORMATS)
def test_each_http_200_error_shape_raises(
    make_client: ClientFactory, shape: str, expected: type[SendGridError], fmt: str
):
    client = make_client(fmt=fmt, key_faults=f"error200:{shape}")
    with pytest.raises(expected, match="Internal error"):
        client.set_total_credits("acme-eu", 10)


# --- faults on reads: retried when it makes sense --------------------------------------


@pytest.mark.parametrize("fault", ["status:500", "status:503", "drop", "ratelimit:0"])
def test_transient_read_fault_is_retried_once_and_succeeds(
    make_client: ClientFactory, simulator: SimulatorServer, fault: str
):
    kind, _, arg = fault.partition(":")
    simulator.state.add_fault(FaultRule(kind=kind, arg=arg or None, times=1))
    assert make_client().get_balance("acme-eu").remaining == 31_200
    assert [c.outcome for c in simulator.state.calls()] == [f"fault:{kind}", "ok"]


def test_read_that_keeps_failing_gives_up_as_unavailable(
    make_client: ClientFactory, simulator: SimulatorServer
):
    with pytest.raises(Unavailable, match="HTTP 503"):
        make_client(key_faults="status:503").get_balance("acme-eu")
    assert len(simulator.state.calls()) == 3  # FAST_RETRY.attempts


def test_read_timeout_is_retried_then_unavailable(
    make_client: ClientFactory, simulator: SimulatorServer
):
    with pytest.raises(Unavailable, match=r"did not answer within 0\.2 s"):
        make_client(key_faults="latency:600", timeout=0.2).get_balance("acme-eu")
    wait_until(lambda: len(simulator.state.calls()) >= 3)
    assert len(simulator.state.calls()) == 3


def test_429_retry_waits_for_retry_after(make_client: ClientFactory, simulator: SimulatorServer):
    simulator.state.add_fault(FaultRule(kind="ratelimit", arg="1", times=1))
    from bot.adapters.sendgrid import SlidingWindowLimiter

    client = make_client(limiter=SlidingWindowLimiter(limit=1000))
    started = time.monotonic()
    assert client.get_balance("acme-eu").remaining == 31_200
    assert time.monotonic() - started >= 0.95


def test_429_beyond_the_patience_limit_raises_rate_limited(
    make_client: ClientFactory, simulator: SimulatorServer
):
    with pytest.raises(RateLimited) as caught:
        make_client(key_faults="ratelimit:3600").get_balance("acme-eu")
    assert caught.value.retry_after == 3600
    assert len(simulator.state.calls()) == 1


@pytest.mark.parametrize("fault", ["malformed", "truncated", "xml-error"])
def test_unreadable_read_is_bad_response(make_client: ClientFactory, fault: str):
    with pytest.raises(BadResponse):
        make_client(key_faults=fault).get_balance("acme-eu")


def test_connection_refused_is_unavailable_and_marked_not_sent(make_client: ClientFactory):
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        closed_port = placeholder.getsockname()[1]
    client = make_client(base_url=f"http://127.0.0.1:{closed_port}/apiv2/")
    for call in (lambda: client.get_balance("acme-eu"), lambda: client.increment_credits("a", 1)):
        with pytest.raises(Unavailable) as caught:
            call()
        assert caught.value.sent is False


# --- writes: exactly once ------------------------------------------------------------


def test_write_timing_out_after_it_was_applied_is_sent_exactly_once(
    make_client: ClientFactory, simulator: SimulatorServer
):
    client = make_client(key_faults="slow-write:1500", timeout=0.3)
    with pytest.raises(OutcomeUnknown, match="may or may not have been applied"):
        client.increment_credits("acme-eu", 500)
    received = wait_until(lambda: [c for c in simulator.state.calls() if c.task == "increment"])
    assert len(received) == 1
    assert received[0].applied


def test_apply_change_rereads_after_an_unknown_outcome(
    make_client: ClientFactory, simulator: SimulatorServer
):
    simulator.state.add_fault(FaultRule(kind="slow-write", arg="1000", task="increment"))
    result = apply_change(
        make_client(timeout=0.3), CreditChange(kind=ChangeKind.ADD, user="globex", credits=500)
    )
    assert result.outcome_unknown
    assert isinstance(result.error, OutcomeUnknown)
    assert result.before.remaining == 640
    assert result.after is not None
    assert result.after.remaining == 1_140
    assert len(simulator.state.writes(task="increment")) == 1


@pytest.mark.parametrize("fault", ["drop", "truncated", "malformed", "empty", "status:502"])
def test_write_without_a_readable_answer_is_outcome_unknown_and_not_repeated(
    make_client: ClientFactory, simulator: SimulatorServer, fault: str
):
    with pytest.raises(OutcomeUnknown):
        make_client(key_faults=fault).increment_credits("acme-eu", 500)
    assert len([c for c in simulator.state.calls() if c.task == "increment"]) == 1


@pytest.mark.parametrize("fault", ["status:500", "status:503"])
def test_write_answered_5xx_is_unavailable_and_not_repeated(
    make_client: ClientFactory, simulator: SimulatorServer, fault: str
):
    with pytest.raises(Unavailable):
        make_client(key_faults=fault).increment_credits("acme-eu", 500)
    assert len([c for c in simulator.state.calls() if c.task == "increment"]) == 1


def test_write_answered_429_is_retried_and_applied_once(
    make_client: ClientFactory, simulator: SimulatorServer
):
    simulator.state.add_fault(FaultRule(kind="ratelimit", arg="0", task="increment", times=1))
    client = make_client()
    client.increment_credits("acme-eu", 500)
    assert [c.outcome for c in simulator.state.calls() if c.task == "increment"] == [
        "fault:ratelimit",
        "ok",
    ]
    assert client.get_balance("acme-eu").remaining == 31_700


def test_injection_in_user_never_changes_another_parameter(
    make_client: ClientFactory, simulator: SimulatorServer
):
    client = make_client()
    with pytest.raises(UnknownAccount):
        client.increment_credits("acme-eu&task=none&user=globex", 5)
    [call] = simulator.state.calls()
    assert call.params == {
        "user": "acme-eu&task=none&user=globex",
        "task": "increment",
        "credits": "5",
    }
    assert not simulator.state.writes()


# --- secrets -----------------------------------------------------------------------


def test_api_key_never_appears_in_errors_logs_or_repr(
    make_client: ClientFactory, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG)
    client = make_client(key_faults="error200:echo")
    with pytest.raises(RequestRejected) as caught:
        client.get_balance("acme-eu")
    assert "api_key=********" in str(caught.value)
    texts = [str(caught.value), *caught.value.messages, repr(client), caplog.text]
    assert all(DEMO_API_KEY not in text for text in texts)


def test_api_key_is_sent_in_the_body_not_the_url(
    make_client: ClientFactory, simulator: SimulatorServer
):
    prepared = []
    session = requests.Session()
    session.hooks["response"].append(lambda r, *a, **k: prepared.append(r.request))
    make_client(session=session).get_balance("acme-eu")
    assert DEMO_API_KEY not in prepared[0].url
    assert prepared[0].method == "POST"
