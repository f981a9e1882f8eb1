"""When a pending request is owed a reminder or an escalation (pure; table-driven)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.domain.approvals import ApprovalRequest, ReminderPolicy, RequestStatus
from bot.domain.credits import ChangeKind, CreditChange

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
POLICY = ReminderPolicy(
    remind_after=timedelta(minutes=30),
    escalate_after=timedelta(hours=2),
    escalate_to="S0ESCALAT",
)


def request(*, reminders: int = 0, escalated: bool = False, status=RequestStatus.PENDING):
    return ApprovalRequest(
        id=1,
        change=CreditChange(ChangeKind.ADD, "globex", 500),
        requester_id="U0OPERAT1",
        requested_at=T0,
        expires_at=T0 + timedelta(hours=24),
        status=status,
        reminders=reminders,
        escalated_at=T0 + timedelta(hours=2) if escalated else None,
    )


@pytest.mark.parametrize(
    ("reminders", "escalated", "minutes", "expected"),
    [
        (0, False, 29, None),
        (0, False, 30, (1, False)),
        (1, False, 89, None),
        (1, False, 90, (2, False)),
        (2, False, 119, None),
        (2, False, 120, (2, True)),  # escalation alone: the reminder count stays
        (2, True, 209, None),
        (2, True, 210, (3, False)),
        (3, True, 450, (4, False)),
        (4, True, 24 * 60, None),  # expired: never reminded
    ],
)
def test_reminders_back_off_and_escalation_is_once(reminders, escalated, minutes, expected):
    due = POLICY.due(
        request(reminders=reminders, escalated=escalated), T0 + timedelta(minutes=minutes)
    )
    assert (None if due is None else (due.number, due.escalate)) == expected


def test_no_escalation_without_a_group_and_none_for_decided_requests():
    quiet = ReminderPolicy(remind_after=timedelta(minutes=30), escalate_after=timedelta(hours=1))
    due = quiet.due(request(reminders=1), T0 + timedelta(hours=1))
    assert due is None
    for status in (RequestStatus.APPROVED, RequestStatus.DENIED, RequestStatus.CANCELLED):
        assert POLICY.due(request(status=status), T0 + timedelta(hours=3)) is None
