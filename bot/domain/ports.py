"""The ports: what the commands and the domain need from the world, as small
`Protocol`s. Each has a real implementation in `bot/adapters/` (SendGrid, SQL, Slack)
or the Slack transport, and an in-memory one for tests where it is worth having.

- `CreditsBackend`: SendGrid's credits API (v2 or v3);
- `Store`: approval requests, changes, confirmations and the audit trail;
- `AlertStore`: low-credit alert state, thresholds, snapshots, digests;
- `ApprovalNotifier`: wherever approvals are shown (Slack);
- `GroupDirectory`: the members of a Slack user group.

(The digest's poster, `AlertPoster`, takes the sweep's report, a commands value, so it
stays beside the sweep in `bot/commands/sweep.py`.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime, timedelta
from typing import Protocol

from bot.domain.alerts import AlertState
from bot.domain.approvals import (
    ApprovalRequest,
    AuditEvent,
    ChangeRecord,
    ChangeState,
    Reminder,
)
from bot.domain.credits import Account, Balance, CreditChange, Overview, Period
from bot.domain.policy import BudgetUse


class CreditsBackend(Protocol):
    """The port to SendGrid: what the domain needs from a credits API.

    `adjustments_keep_recurring`: whether add/remove keep a recurring allowance
    (v3) or turn it into a one-off balance (v2).
    """

    adjustments_keep_recurring: bool

    def check_supported(self, change: CreditChange) -> None:
        """Raise UserError if this API cannot make `change` (before anything is sent)."""
        ...

    def get_balance(self, user: str) -> Balance: ...

    def get_overview(self, user: str) -> Overview: ...

    def list_accounts(self) -> Iterator[Account]: ...

    def increment_credits(self, user: str, credits: int) -> None: ...

    def decrement_credits(self, user: str, credits: int) -> None: ...

    def set_total_credits(self, user: str, credits: int) -> None: ...

    def set_recurring_credits(
        self,
        user: str,
        credits: int,
        period: Period,
        *,
        start: date | None = None,
        end: date | None = None,
        initial: int | None = None,
    ) -> None: ...

    def remove_limit(self, user: str) -> None: ...


# The owner of a change being sent sets this while its write may leave: the SendGrid
# client calls it right before every attempt of a write goes out, and it raises (so
# nothing is sent) once the change is no longer the caller's to send — recovered as
# abandoned by a peer that took its process for gone, or given up at a graceful stop
# while the write waited (a 429's Retry-After, the rate budget). A write is then
# never sent after anyone was told to verify.


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

    def record(self, event: AuditEvent) -> int:
        """Append an event; returns its id."""
        ...

    def audit(self, *, target: str | None = None, limit: int = 20) -> list[AuditEvent]: ...


class GroupDirectory(Protocol):
    """Port: the members of a Slack user group. Raises DirectoryError when unknown."""

    def members(self, group_id: str) -> frozenset[str]: ...


class ApprovalNotifier(Protocol):
    """The port to wherever approvals are shown (Slack). Methods raise NotifyError."""

    def post_request(
        self,
        request: ApprovalRequest,
        *,
        current: Balance,
        expected: Balance | None,
        warning: str | None = None,
    ) -> tuple[str, str]:
        """Post the request with Approve/Deny; returns (channel_id, message_ts)."""
        ...

    def show_progress(self, request: ApprovalRequest) -> None:
        """Edit the posted request to show the approvals given so far (buttons kept)."""
        ...

    def show_outcome(self, request: ApprovalRequest) -> None:
        """Edit the posted request to show what became of it."""
        ...

    def tell_requester(self, request: ApprovalRequest) -> None: ...

    def tell_user(self, user_id: str, text: str) -> None:
        """A direct message (e.g. the outcome of a change whose reply was lost)."""
        ...

    def log(self, text: str) -> None:
        """Post to the shared log channel (CREDITS_LOG_CHANNEL), if there is one."""
        ...

    def remind(self, request: ApprovalRequest, text: str) -> None:
        """Re-announce a pending request in its thread (in the channel if never posted)."""
        ...


class AlertStore(Protocol):
    def states(self, users: Sequence[str]) -> dict[str, AlertState]: ...

    def save_states(self, states: Sequence[AlertState]) -> None: ...

    def add_snapshots(self, balances: Sequence[tuple[str, Balance]], *, at: datetime) -> None: ...

    def prune_snapshots(self, *, before: datetime) -> None: ...

    def thresholds(self) -> dict[str, int]: ...

    def set_threshold(self, user: str, below: int, *, by: str, at: datetime) -> None: ...

    def snooze(self, user: str, *, until: datetime) -> None: ...

    def edit_digest(
        self,
        channel_id: str,
        message_ts: str,
        *,
        seen: str,
        edit: Callable[[str], str],
        now: datetime,
    ) -> str:
        """Edit a posted digest's content (opaque to the store) under a lock."""
        ...
