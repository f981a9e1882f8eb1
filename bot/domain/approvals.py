"""Approval requests: the state machine, who may decide, and the audit trail's events.

```
            approve (one conditional UPDATE)      SendGrid ok
pending ──────────────────────────────► executing ─────────────► approved
   │  deny                                 │  │ SendGrid said no
   ├──────► denied                         │  └──────────────────► failed
   │  the requester cancels                │ no answer after the write was sent,
   ├──────► cancelled                      │ or the process died mid-write
   │  TTL passed                           └──────────────────────► unknown
   └──────► expired                                    │ an approver re-reads the
                                                       │ balance and resolves it
                                                       └──► approved | failed
```

Only `pending → executing` can start a SendGrid write, and it is a single
conditional update, so a request executes at most once however many people
click, on however many instances. `unknown` is never retried: a person checks
the balance and acts.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.domain.credits import Balance, CreditChange
from bot.domain.policy import Action, Refusal, Role, refusal


class RequestStatus(enum.StrEnum):
    PENDING = "pending"
    EXECUTING = "executing"
    APPROVED = "approved"
    FAILED = "failed"
    UNKNOWN = "unknown"
    DENIED = "denied"
    EXPIRED = "expired"
    CANCELLED = "cancelled"

    @property
    def is_open(self) -> bool:
        """Still needs someone: waiting for a decision, running, or to be verified."""
        return self in (RequestStatus.PENDING, RequestStatus.EXECUTING, RequestStatus.UNKNOWN)


@dataclass(frozen=True, slots=True)
class ApprovalRequest:
    """A change an operator asked for, and what became of it."""

    id: int
    change: CreditChange
    requester_id: str
    requested_at: datetime
    expires_at: datetime
    status: RequestStatus = RequestStatus.PENDING
    decided_by: str | None = None
    decided_at: datetime | None = None
    reason: str | None = None
    channel_id: str | None = None
    message_ts: str | None = None
    before: Balance | None = None
    after: Balance | None = None
    detail: str | None = None
    reminders: int = 0  # reminders posted so far
    escalated_at: datetime | None = None
    approvals_needed: int = 1
    first_approver: str | None = None  # the first of two, while the second is awaited

    def expired_at(self, now: datetime) -> bool:
        return self.status is RequestStatus.PENDING and now >= self.expires_at


@dataclass(frozen=True, slots=True)
class ReminderPolicy:
    """When a pending request is re-announced, and when the escalation group is called in.

    Reminders back off: the k-th (k = 1, 2, …) is due `remind_after × (2^k − 1)` after
    the request (30 min, 1 h 30, 3 h 30, … with the 30-minute default), so a request
    nobody can decide does not flood its thread. Escalation happens once, at
    `escalate_after`, and only with a group to escalate to.
    """

    remind_after: timedelta
    escalate_after: timedelta | None = None
    escalate_to: str | None = None  # a user-group ID (S…)

    def next_reminder_at(self, request: ApprovalRequest) -> datetime:
        return request.requested_at + self.remind_after * ((1 << (request.reminders + 1)) - 1)

    def due(self, request: ApprovalRequest, now: datetime) -> Reminder | None:
        """The reminder `request` is owed at `now`, if any."""
        if request.status is not RequestStatus.PENDING or now >= request.expires_at:
            return None
        escalate = (
            self.escalate_to is not None
            and self.escalate_after is not None
            and request.escalated_at is None
            and now >= request.requested_at + self.escalate_after
        )
        remind = now >= self.next_reminder_at(request)
        if not (remind or escalate):
            return None
        return Reminder(
            request=request,
            number=request.reminders + (1 if remind else 0),
            escalate=escalate,
            waited=now - request.requested_at,
        )


@dataclass(frozen=True, slots=True)
class Reminder:
    request: ApprovalRequest
    number: int  # the reminders count once this one is posted
    escalate: bool
    waited: timedelta


class ChangeState(enum.StrEnum):
    """Where a credit change is in its one durable lifecycle (direct and approved alike).

    ```
    intent ──(about to send)──► sent ──► applied | failed | unknown
       └──(stopped before sending)──► failed
    ```
    `intent` is recorded before anything is read or sent; `sent` just before the
    write leaves, by a conditional update only the owner makes. So a record whose
    owner is gone says exactly what is known: `intent` → nothing was sent (failed),
    `sent` → it may have been applied (unknown). A write is never sent again.
    """

    INTENT = "intent"
    SENT = "sent"
    APPLIED = "applied"
    FAILED = "failed"
    UNKNOWN = "unknown"

    @property
    def is_final(self) -> bool:
        return self in (ChangeState.APPLIED, ChangeState.FAILED, ChangeState.UNKNOWN)


class ChangeOrigin(enum.StrEnum):
    DIRECT = "direct"  # an approver's, admin's or auto-approved change
    REQUEST = "request"  # an approved request being executed


@dataclass(frozen=True, slots=True)
class ChangeRecord:
    """One credit change's lifecycle record, owned by the instance executing it."""

    id: int
    origin: ChangeOrigin
    change: CreditChange
    actor_id: str
    owner: str
    state: ChangeState
    request_id: int | None = None
    audit_event_id: int | None = None
    before: Balance | None = None
    after: Balance | None = None
    detail: str | None = None


def may_cancel(actor_id: str, role: Role, request: ApprovalRequest) -> Refusal | None:
    """Operators and up withdraw a request, and only the person who asked."""
    return refusal(Action.CANCEL_REQUEST, role, actor_id=actor_id, request=request)


def may_resolve(role: Role) -> Refusal | None:
    """Approvers and admins record what became of an unconfirmed change (after
    re-reading the balance); the requester too, if they are an approver: there is
    nothing left to approve, only a fact to record."""
    return refusal(Action.RESOLVE_REQUEST, role)


def may_decide(actor_id: str, role: Role, request: ApprovalRequest) -> Refusal | None:
    """Approvers and admins decide others' requests; nobody decides their own, and
    of two approvals, nobody gives both."""
    return refusal(Action.DECIDE_REQUEST, role, actor_id=actor_id, request=request)


class AuditAction(enum.StrEnum):
    REQUESTED = "requested"  # an operator's change, waiting for approval
    APPROVED = "approved"  # an approver clicked Approve (execution follows)
    DENIED = "denied"
    EXPIRED = "expired"
    EXECUTED = "executed"  # SendGrid applied an approved change
    CHANGED = "changed"  # a direct change (approver/admin, or auto-approved add)
    FAILED = "failed"  # SendGrid refused or could not be reached; nothing changed
    UNKNOWN = "unknown"  # the write may or may not have been applied
    ORPHANED = "orphaned"  # found executing after a restart; marked unknown
    REFUSED = "refused"  # someone tried to decide without the right
    THRESHOLD = "threshold"  # a per-subuser low-credit threshold was set
    SNOOZED = "snoozed"  # low-credit alerts for a subuser silenced for a while
    CANCELLED = "cancelled"  # the requester withdrew a request
    RESOLVED = "resolved"  # an approver recorded what became of an unknown outcome
    REMINDED = "reminded"  # a pending request re-announced (or escalated)


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One line of the audit trail. Never holds a secret."""

    at: datetime
    actor_id: str
    action: AuditAction
    target: str | None = None
    request_id: int | None = None
    arguments: dict[str, Any] | None = None
    outcome: str | None = None
    before: Balance | None = None
    after: Balance | None = None
    id: int | None = None
