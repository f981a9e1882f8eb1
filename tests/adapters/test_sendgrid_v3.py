"""The v3 client against the simulator's v3 endpoints: calls, errors, faults, exactly once."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import pytest

from bot.adapters.sendgrid import SendGridV3Client, SlidingWindowLimiter
from bot.adapters.sendgrid.ratelimit import NoLimit
from bot.domain.credits import Balance, ChangeKind, CreditChange, Period, apply_change
from bot.errors import (
    AuthenticationFailed,
    OutcomeUnknown,
    RateLimited,
    RequestRejected,
    Unavailable,
    UnknownAccount,
    UserError,
)
from bot.simulator import DEMO_API_KEY, FaultRule, SimulatorServer, sample_state
from tests.conftest import FAST_RETRY
from tests.helpers import wait_until

V3Factory = Callable[..., SendGridV3Client]


@pytest.fixture
def make_v3(simulator: SimulatorServer) -> V3Factory:
    def build(*, key_faults: str = "", **overrides: Any) -> SendGridV3Client:
        options: dict[str, Any] = {
            "api_key": DEMO_API_KEY + (f"~{key_faults}" if key_faults else ""),
            "base_url": simulator.base_url,
            "timeout": 2.0,
            "limiter": NoLimit(),
            "retry": FAST_RETRY,
            "logger": logging.getLogger("test.v3"),
        }
        options.update(overrides)
        return SendGridV3Client(**options)

    return build


def test_reads_recurring_nonrecurring_and_unlimited(make_v3: V3Factory):
    client = make_v3()
    assert client.get_balance("acme-eu") == Balance(False, 31_200, 50_000, Period.MONTHLY)
    assert client.get_balance("acme-us") == Balance(False, 120_000)
    assert client.get_balance("stark-industries") == Balance.no_limit()


def test_every_change_and_what_was_sent(make_v3: V3Factory, simulator: SimulatorServer):
    client = make_v3()
    client.increment_credits("globex", 500)
    client.decrement_credits("globex", 40)
    assert client.get_balance("globex").remaining == 1_100
    client.set_total_credits("initech", 7)
    assert client.get_balance("initech") == Balance(False, 7)
    client.set_recurring_credits("hooli", 3_000, Period.WEEKLY)
    assert client.get_balance("hooli") == Balance(False, 3_000, 3_000, Period.WEEKLY)
    client.remove_limit("tyrell")
    assert client.get_balance("tyrell").unlimited
    assert [(w.task, w.params.get("credits")) for w in simulator.state.writes()] == [
        ("increment", "500"),
        ("decrement", "40"),
        ("total", "7"),
        ("recurring", "3000"),
        ("none", None),
    ]


def test_listing_pages_until_a_short_page(make_v3: V3Factory, simulator: SimulatorServer):
    accounts = list(make_v3(page_size=5).list_accounts())
    assert len(accounts) == 13
    assert {a.username for a in accounts if not a.active} == {"cyberdyne", "wonka"}
    assert [c.params["offset"] for c in simulator.state.calls()] == ["0", "5", "10"]


def test_unsupported_options_are_refused_before_anything_is_sent(
    make_v3: V3Factory, simulator: SimulatorServer
):
    client = make_v3()
    change = CreditChange(ChangeKind.RECURRING, "hooli", 100, period=Period.DAILY, initial=10)
    with pytest.raises(UserError, match="no start date, end date or initial credits"):
        apply_change(client, change)
    with pytest.raises(UserError, match="not available on v3"):
        client.get_overview("alice@example.com")
    assert simulator.state.calls() == []


def test_errors(make_v3: V3Factory):
    with pytest.raises(AuthenticationFailed, match="authorization required"):
        make_v3(api_key="wrong").get_balance("acme-eu")
    with pytest.raises(UnknownAccount, match="No user found"):
        make_v3().get_balance("nobody")
    with pytest.raises(UnknownAccount):
        make_v3().increment_credits("nobody", 5)


def test_user_goes_in_the_path_encoded(make_v3: V3Factory, simulator: SimulatorServer):
    with pytest.raises(UnknownAccount):
        make_v3().increment_credits("acme-eu/../globex?x=1&y", 5)
    [call] = simulator.state.calls()
    assert call.user == "acme-eu/../globex?x=1&y"
    assert simulator.state.writes() == []


def test_write_timing_out_after_it_was_applied_is_sent_once(
    make_v3: V3Factory, simulator: SimulatorServer
):
    with pytest.raises(OutcomeUnknown):
        make_v3(key_faults="slow-write:1500", timeout=0.3).increment_credits("globex", 500)
    received = wait_until(lambda: [c for c in simulator.state.calls() if c.task == "increment"])
    assert len(received) == 1
    assert received[0].applied


@pytest.mark.parametrize("fault", ["drop", "truncated", "malformed", "status:502"])
def test_write_without_a_readable_answer_is_unknown_and_not_repeated(
    make_v3: V3Factory, simulator: SimulatorServer, fault: str
):
    with pytest.raises(OutcomeUnknown):
        make_v3(key_faults=fault).set_total_credits("globex", 5)
    assert len([c for c in simulator.state.calls() if c.task == "total"]) == 1


def test_read_faults_are_retried(make_v3: V3Factory, simulator: SimulatorServer):
    simulator.state.add_fault(FaultRule(kind="status", arg="503", times=1))
    assert make_v3().get_balance("globex").remaining == 640
    with pytest.raises(Unavailable):
        make_v3(key_faults="status:500").get_balance("globex")


def test_429_honours_rate_limit_headers():
    state = sample_state(rate_limit=1, rate_window=1.0)
    with SimulatorServer(state).running() as server:
        client = SendGridV3Client(
            api_key=DEMO_API_KEY,
            base_url=server.base_url,
            limiter=SlidingWindowLimiter(limit=1000),
            retry=FAST_RETRY,
        )
        started = time.monotonic()
        client.get_balance("globex")
        client.get_balance("globex")  # 429 first, then waits and succeeds
        assert time.monotonic() - started >= 0.9
        outcomes = [c.outcome for c in state.calls()]
        assert outcomes[:2] == ["ok", "rate-limited"]
        assert outcomes[-1] == "ok"
        with pytest.raises(RateLimited):
            SendGridV3Client(
                api_key=DEMO_API_KEY + "~ratelimit:3600",
                base_url=server.base_url,
                limiter=NoLimit(),
                retry=FAST_RETRY,
            ).get_balance("globex")


def test_bad_values_are_rejected(make_v3: V3Factory):
    client = make_v3()
    with pytest.raises(RequestRejected):
        client.set_total_credits("globex", 0)


def test_key_never_in_errors_or_logs(make_v3: V3Factory, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    client = make_v3(key_faults="error200:echo")
    with pytest.raises(RequestRejected) as caught:
        client.get_balance("globex")
    for text in (str(caught.value), repr(client), caplog.text):
        assert DEMO_API_KEY not in text
