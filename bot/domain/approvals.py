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
from typing import Any, Protocol

from bot.domain.credits import Balance, CreditChange
from bot.domain.policy import Action, BudgetUse, Refusal, Role, refusal


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


class Store(Protocol):
    """The port to durable state: approval requests and the audit trail."""

    def create_request(
        self,
        change: CreditChange,
        *,
        requester_id: str,
        now: datetime,
        expires_at: datetime,
        approvals_needed: int = 1,
    ) -> ApprovalRequest: ...

    def approve_first(
        self, request_id: int, *, approver_id: str, now: datetime
    ) -> ApprovalRequest | None:
        """Record the first of two approvals (pending, unexpired, none yet); None if not."""
        ...

    def begin_budgeted_change(
        self,
        change: CreditChange,
        *,
        actor_id: str,
        owner: str,
        now: datetime,
        audit: AuditEvent,
        budget: int,
        window: timedelta,
    ) -> ChangeRecord | BudgetUse:
        """An auto-approved change's `intent` if it fits the budget (checked and recorded
        atomically across instances); otherwise what was already used."""
        ...

    def create_confirmation(
        self,
        change: CreditChange,
        *,
        actor_id: str,
        auto_approved: bool,
        now: datetime,
        expires_at: datetime,
    ) -> int: ...

    def take_confirmation(
        self, confirmation_id: int, *, actor_id: str, now: datetime, confirm: bool
    ) -> tuple[CreditChange, bool] | None:
        """`pending → confirmed|cancelled` once, by its author, before it expires."""
        ...

    def attach_message(self, request_id: int, *, channel_id: str, message_ts: str) -> None: ...

    def get_request(self, request_id: int) -> ApprovalRequest | None: ...

    def claim(
        self, request_id: int, *, approver_id: str, now: datetime, executor: str
    ) -> tuple[ApprovalRequest, ChangeRecord] | None:
        """`pending → executing` if still pending and unexpired, and its change recorded
        as `intent` in the same transaction; None if someone else won."""
        ...

    # --- the change lifecycle (see ChangeState) ---

    def begin_change(
        self, change: CreditChange, *, actor_id: str, owner: str, now: datetime, audit: AuditEvent
    ) -> ChangeRecord:
        """A direct change's `intent`, and its audit event, in one transaction."""
        ...

    def mark_sent(self, change_id: int, *, owner: str, before: Balance, now: datetime) -> bool:
        """`intent → sent` if still `intent` and owned by `owner`."""
        ...

    def still_sending(self, change_id: int, *, owner: str) -> bool:
        """Whether the change is still `sent` and `owner`'s: checked right before each
        attempt of its write leaves (see `bot.domain.credits.write_guard`)."""
        ...

    def settle(
        self,
        record: ChangeRecord,
        *,
        state: ChangeState,
        before: Balance | None,
        after: Balance | None,
        detail: str,
        now: datetime,
        note: AuditEvent | None = None,
    ) -> tuple[bool, ApprovalRequest | None]:
        """Record the final state of a change still owned by `record.owner`, in one
        transaction with its audit trail (the direct change's event completed, `note`
        appended) and its request's status. (False, None) if it was already final."""
        ...

    def abandoned_changes(self, now: datetime) -> list[ChangeRecord]:
        """Unfinished changes whose owner has stopped or is gone."""
        ...

    def unfinished_changes(self, owner: str) -> list[ChangeRecord]: ...

    # --- live instances ---

    def register_instance(self, instance_id: str, *, kind: str, now: datetime) -> None: ...

    def heartbeat(self, instance_id: str, *, now: datetime) -> None: ...

    def stop_instance(self, instance_id: str, *, now: datetime) -> None: ...

    def deny(
        self, request_id: int, *, approver_id: str, reason: str | None, now: datetime
    ) -> ApprovalRequest | None:
        """`pending → denied`; None if it was no longer pending."""
        ...

    def cancel(
        self, request_id: int, *, requester_id: str, now: datetime
    ) -> ApprovalRequest | None:
        """`pending → cancelled` by its requester; None if it was no longer pending."""
        ...

    def resolve(
        self,
        request_id: int,
        *,
        approver_id: str,
        applied: bool,
        detail: str,
        after: Balance,
        now: datetime,
    ) -> ApprovalRequest | None:
        """`unknown → approved | failed`; None if it was no longer unknown."""
        ...

    def expire_due(self, now: datetime) -> list[ApprovalRequest]: ...

    def mark_reminded(self, reminder: Reminder, *, now: datetime) -> ApprovalRequest | None:
        """Record a reminder if nobody recorded it first and the request is still
        pending (one conditional update); None otherwise."""
        ...

    def orphans_to_unknown(self, *, now: datetime) -> list[ApprovalRequest]:
        """Requests left `executing` with no change record (before the lifecycle was
        recorded) by a process that is gone → `unknown`."""
        ...

    def open_requests(self) -> list[ApprovalRequest]: ...

    def requests_by(self, requester_id: str, *, limit: int = 10) -> list[ApprovalRequest]:
        """The newest `limit` requests this person made, whatever became of them."""
        ...

    def saw_home(self, user_id: str, *, at: datetime) -> None:
        """This person opened the App Home (their Home is refreshed after sweeps)."""
        ...

    def home_viewers(self, *, since: datetime, limit: int) -> list[str]:
        """Who opened the App Home since `since`, most recent first."""
        ...

    def record(self, event: AuditEvent) -> int:
        """Append an event; returns its id."""
        ...

    def complete(
        self,
        event_id: int,
        *,
        action: AuditAction,
        outcome: str,
        before: Balance | None,
        after: Balance | None,
    ) -> None:
        """Fill in the outcome of an event written before a SendGrid call."""
        ...

    def audit(self, *, target: str | None = None, limit: int = 20) -> list[AuditEvent]: ...
