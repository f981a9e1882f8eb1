"""What the SendGrid clients report: one sample per attempt, endpoints without accounts."""

from __future__ import annotations

import pytest

from bot.adapters.sendgrid.http import endpoint_of
from bot.errors import UnknownAccount
from bot.simulator import FaultRule
from tests.conftest import ClientFactory


class Recorded:
    """A Metrics port that remembers SendGrid calls and limiter waits."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, int]] = []
        self.waits: list[float] = []

    def sendgrid_call(self, endpoint: str, outcome: str, status: int) -> None:
        self.calls.append((endpoint, outcome, status))

    def limiter_waited(self, seconds: float) -> None:
        self.waits.append(seconds)

    def __getattr__(self, name: str):  # the rest of the port: not looked at here
        return lambda *args, **kwargs: None


@pytest.mark.parametrize(
    ("label", "endpoint"),
    [
        ("customer.limit task=retrieve user=acme-eu", "customer.limit retrieve"),
        ("customer.limit task=increment credits=500 user=x", "customer.limit increment"),
        (
            "reseller.manage method=limit task=total credits=5 user=a@b.c",
            "reseller.manage limit total",
        ),
        ("reseller.account task=overview user=a@b.c", "reseller.account overview"),
        ("customer.profile task=get user=-", "customer.profile get"),
        ("GET v3/subusers/acme-eu/credits", "GET v3/subusers/{user}/credits"),
        ("PATCH v3/subusers/a%40b/credits/remaining", "PATCH v3/subusers/{user}/credits/remaining"),
        ("GET v3/subusers", "GET v3/subusers"),
    ],
)
def test_metrics_endpoints_never_name_the_account(label: str, endpoint: str):
    assert endpoint_of(label) == endpoint


def test_every_attempt_is_reported_with_its_outcome_and_status(
    make_client: ClientFactory, sim_state
):
    metrics = Recorded()
    client = make_client(metrics=metrics)
    sim_state.add_fault(FaultRule(kind="status", arg="503", task="retrieve", times=1))
    client.get_balance("globex")  # 503, then answered
    with pytest.raises(UnknownAccount):
        client.get_balance("nobody-here")
    assert metrics.calls == [
        ("customer.limit retrieve", "Unavailable", 503),
        ("customer.limit retrieve", "ok", 200),
        ("customer.limit retrieve", "UnknownAccount", 200),
    ]
    assert metrics.waits == [0.0, 0.0, 0.0]
