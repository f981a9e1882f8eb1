"""The App Home and the request modal as Block Kit: parsed back through slack_sdk's
models (which check Slack's limits) at their fullest, and the Home refresh bounded."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from slack_sdk.models.views import View

from bot.adapters.slack.web import build_web_client
from bot.adapters.store.memory import MemoryAlertStore, MemoryStore
from bot.commands.home import AccountOutlook, HomeContent, HomeService
from bot.domain.alerts import AlertLevel, Thresholds
from bot.domain.approvals import ApprovalRequest, RequestStatus
from bot.domain.credits import ChangeKind, CreditChange
from bot.domain.policy import Role, RoleBook
from bot.transports.slack.surfaces import (
    MAX_HOME_BLOCKS,
    HomePublisher,
    home_view,
    request_modal,
    subuser_options,
)
from tests.fakes.slack_api import FakeSlack

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def checked(view: dict[str, Any]) -> dict[str, Any]:
    parsed = View(**view)
    parsed.validate_json()
    assert parsed.to_dict() == view
    return view


def request(number: int, requester: str = "UOP") -> ApprovalRequest:
    change = CreditChange(ChangeKind.ADD, f"sub-{number:03d}-" + "x" * 50, 10**9, reason="r" * 300)
    return ApprovalRequest(
        id=number,
        change=change,
        requester_id=requester,
        requested_at=NOW,
        expires_at=NOW + timedelta(days=1),
        status=RequestStatus.PENDING,
    )


@pytest.mark.parametrize("role", list(Role))
def test_the_fullest_home_of_every_role_is_valid_block_kit(role: Role):
    attention = tuple(AccountOutlook("u" * 64, AlertLevel.LOW, 999, NOW, 1.5) for _ in range(10))
    content = HomeContent(
        "UVIEWER",
        role,
        attention=attention,
        pending=tuple(request(n) for n in range(1, 11)),
        mine=tuple(request(n, "UVIEWER") for n in range(11, 16)),
        now=NOW,
    )
    view = checked(home_view(content))
    assert view["type"] == "home"
    assert len(view["blocks"]) <= MAX_HOME_BLOCKS


def test_an_approver_gets_no_buttons_on_their_own_request():
    content = HomeContent(
        "UAPP", Role.APPROVER, pending=(request(1, "UAPP"), request(2, "UOP")), now=NOW
    )
    blocks = checked(home_view(content))["blocks"]
    assert [b.get("block_id") for b in blocks if b["type"] == "actions"] == ["approval-2"]


def test_the_request_modal_is_valid_prefilled_or_not():
    checked(request_modal())
    view = checked(request_modal(user="acme-eu", reason="From https://x/" + "p" * 400))
    reason = next(b for b in view["blocks"] if b["block_id"] == "reason")
    assert len(reason["element"]["initial_value"]) <= 300


def test_options_stay_within_slacks_hundred():
    assert len(subuser_options([f"s{i}" for i in range(500)])) == 100


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack().running() as fake:
        yield fake


def test_a_refresh_redraws_only_the_most_recent_viewers(slack: FakeSlack):
    store = MemoryStore()
    home = HomeService(
        store=store,
        alerts=MemoryAlertStore(store),
        roles=RoleBook(viewers=frozenset({f"U{i}" for i in range(5)})),
        directory=None,
        thresholds=Thresholds(below=1_000, percent=10),
        clock=lambda: NOW,
    )
    for i in range(5):
        store.saw_home(f"U{i}", at=NOW - timedelta(minutes=i))
    store.saw_home("UOLD", at=NOW - timedelta(days=3))
    publisher = HomePublisher(
        client=build_web_client(token="xoxb-home", base_url=slack.api_url), home=home, limit=3
    )
    assert publisher.refresh_recent() == 3
    published = [c.payload["user_id"] for c in slack.state.calls_to("views.publish")]
    assert published == ["U0", "U1", "U2"]
