"""`MemoryStore` and `MemoryAlertStore`: the store ports held in one process's memory.

The same contract as `SqlStore` and `SqlAlertStore` (one suite runs on all of
them): every transition is conditional, so whoever loses a race changes
nothing; `settle` finishes a change, its audit trail and its request in one
step; timestamps come back in UTC; instance liveness is `instance_is_live`.
One lock serialises every call, as a database transaction would.

For tests, the console and demos: nothing survives the process. `down()` makes
every call raise `StoreError` until `up()`, as an unreachable database does.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.adapters.store.instances import FORGET_INSTANCES_AFTER, instance_is_live
from bot.domain.alerts import AlertState, Usage
from bot.domain.approvals import (
    ApprovalRequest,
    AuditAction,
    AuditEvent,
    ChangeOrigin,
    ChangeRecord,
    ChangeState,
    Reminder,
    RequestStatus,
)
from bot.domain.credits import Balance, CreditChange, change_arguments, change_from_arguments
from bot.domain.policy import BudgetUse
from bot.errors import StoreError

_UNFINISHED = (ChangeState.INTENT, ChangeState.SENT)
# What an auto-approval budget counts: everything but a change known to have failed.
_BUDGETED = (ChangeState.INTENT, ChangeState.SENT, ChangeState.APPLIED, ChangeState.UNKNOWN)
# `unknown` too: recovery may have taken a slow owner for gone; what the owner
# learnt from SendGrid is the truth (as in `SqlStore.settle`).
_SETTLEABLE = (ChangeState.INTENT, ChangeState.SENT, ChangeState.UNKNOWN)
_AUDIT_FOR_STATE = {
    ChangeState.APPLIED: AuditAction.CHANGED,
    ChangeState.FAILED: AuditAction.FAILED,
    ChangeState.UNKNOWN: AuditAction.UNKNOWN,
}
_REQUEST_FOR_STATE = {
    ChangeState.APPLIED: RequestStatus.APPROVED,
    ChangeState.FAILED: RequestStatus.FAILED,
    ChangeState.UNKNOWN: RequestStatus.UNKNOWN,
}
ORPHAN_DETAIL = "the bot restarted while this change was being sent to SendGrid"


@dataclass(frozen=True, slots=True)
class _Instance:
    kind: str
    started_at: datetime
    heartbeat_at: datetime
    stopped_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class _Confirmation:
    change: CreditChange
    actor_id: str
    auto_approved: bool
    expires_at: datetime
    status: str = "pending"  # → confirmed | cancelled


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One balance seen by a sweep."""

    user: str
    at: datetime
    remaining: int | None
    unlimited: bool


class MemoryStore:
    """The `Store` port in memory; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._down = False
        self._requests: dict[int, ApprovalRequest] = {}
        self._executors: dict[int, str] = {}
        self._changes: dict[int, ChangeRecord] = {}
        # When each auto-approved change was recorded (what a budget window counts).
        self._auto_approved_at: dict[int, datetime] = {}
        self._confirmations: dict[int, _Confirmation] = {}
        self._events: dict[int, AuditEvent] = {}
        self._instances: dict[str, _Instance] = {}
        self._next_id = {"request": 0, "change": 0, "event": 0, "confirmation": 0}
        # The alert store's tables live here too, so one `down()` takes both away.
        self.alert_states: dict[str, AlertState] = {}
        self.alert_thresholds: dict[str, int] = {}
        self.balance_snapshots: list[Snapshot] = []
        self.digest_messages: dict[tuple[str, str], str] = {}  # (channel, ts) → content

    # --- being unreachable ------------------------------------------------------------

    def down(self) -> None:
        """Every call raises `StoreError` from now on, as when the database is away."""
        with self._lock:
            self._down = True

    def up(self) -> None:
        """The database is back: calls work again, with everything kept."""
        with self._lock:
            self._down = False

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Hold the store for one call; StoreError if it is down."""
        with self._lock:
            if self._down:
                raise StoreError("the database failed (the memory store is down)")
            yield

    def close(self) -> None:
        """Nothing to release."""

    def _new_id(self, kind: str) -> int:
        self._next_id[kind] += 1
        return self._next_id[kind]

    # --- approval requests ------------------------------------------------------------

    def create_request(
        self,
        change: CreditChange,
        *,
        requester_id: str,
        now: datetime,
        expires_at: datetime,
        approvals_needed: int = 1,
    ) -> ApprovalRequest:
        with self.transaction():
            request = ApprovalRequest(
                id=self._new_id("request"),
                change=change,
                requester_id=requester_id,
                requested_at=_utc(now),
                expires_at=_utc(expires_at),
                approvals_needed=approvals_needed,
            )
            self._requests[request.id] = request
            return request

    def attach_message(self, request_id: int, *, channel_id: str, message_ts: str) -> None:
        with self.transaction():
            request = self._requests.get(request_id)
            if request is not None:
                self._requests[request_id] = replace(
                    request, channel_id=channel_id, message_ts=message_ts
                )

    def get_request(self, request_id: int) -> ApprovalRequest | None:
        with self.transaction():
            return self._requests.get(request_id)

    def approve_first(
        self, request_id: int, *, approver_id: str, now: datetime
    ) -> ApprovalRequest | None:
        """The first of two approvals: recorded if the request is pending, unexpired and
        has no first approver yet; None if someone else was first."""
        with self.transaction():
            return self._transition(
                request_id,
                (RequestStatus.PENDING,),
                unexpired_at=_utc(now),
                first_of_two=True,
                first_approver=approver_id,
            )

    def claim(
        self, request_id: int, *, approver_id: str, now: datetime, executor: str
    ) -> tuple[ApprovalRequest, ChangeRecord] | None:
        with self.transaction():
            now = _utc(now)
            claimed = self._transition(
                request_id,
                (RequestStatus.PENDING,),
                unexpired_at=now,
                final_approver=approver_id,
                status=RequestStatus.EXECUTING,
                decided_by=approver_id,
                decided_at=now,
            )
            if claimed is None:
                return None
            self._executors[request_id] = executor
            record = self._insert_change(
                claimed.change,
                origin=ChangeOrigin.REQUEST,
                actor_id=approver_id,
                owner=executor,
                request_id=claimed.id,
            )
            return claimed, record

    def deny(
        self, request_id: int, *, approver_id: str, reason: str | None, now: datetime
    ) -> ApprovalRequest | None:
        with self.transaction():
            now = _utc(now)
            return self._transition(
                request_id,
                (RequestStatus.PENDING,),
                unexpired_at=now,
                status=RequestStatus.DENIED,
                decided_by=approver_id,
                decided_at=now,
                reason=reason,
            )

    def cancel(
        self, request_id: int, *, requester_id: str, now: datetime
    ) -> ApprovalRequest | None:
        with self.transaction():
            return self._transition(
                request_id,
                (RequestStatus.PENDING,),
                requested_by=requester_id,
                status=RequestStatus.CANCELLED,
                decided_by=requester_id,
                decided_at=_utc(now),
            )

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
        # As `SqlStore.resolve`: who resolved it is in the audit trail, not the request.
        with self.transaction():
            return self._transition(
                request_id,
                (RequestStatus.UNKNOWN,),
                status=RequestStatus.APPROVED if applied else RequestStatus.FAILED,
                detail=detail,
                after=after,
            )

    def mark_reminded(self, reminder: Reminder, *, now: datetime) -> ApprovalRequest | None:
        with self.transaction():
            request = self._requests.get(reminder.request.id)
            if (
                request is None
                or request.status is not RequestStatus.PENDING
                or request.reminders != reminder.request.reminders
            ):
                return None
            values: dict[str, Any] = {"reminders": reminder.number}
            if reminder.escalate:
                if request.escalated_at is not None:
                    return None
                values["escalated_at"] = _utc(now)
            request = replace(request, **values)
            self._requests[request.id] = request
            return request

    def expire_due(self, now: datetime) -> list[ApprovalRequest]:
        with self.transaction():
            now = _utc(now)
            due = [
                r.id
                for r in self._requests.values()
                if r.status is RequestStatus.PENDING and r.expires_at <= now
            ]
            expired = []
            for request_id in sorted(due):
                request = replace(
                    self._requests[request_id], status=RequestStatus.EXPIRED, decided_at=now
                )
                self._requests[request_id] = request
                expired.append(request)
            return expired

    def orphans_to_unknown(self, *, now: datetime) -> list[ApprovalRequest]:
        with self.transaction():
            recorded = {c.request_id for c in self._changes.values() if c.request_id is not None}
            executing = [
                r.id
                for r in self._requests.values()
                if r.status is RequestStatus.EXECUTING and r.id not in recorded
            ]
            executors = {self._executors[i] for i in executing if i in self._executors}
            live = self._live_instances(executors, _utc(now))
            orphans = []
            for request_id in sorted(executing):
                if self._executors.get(request_id) in live:
                    continue
                request = replace(
                    self._requests[request_id], status=RequestStatus.UNKNOWN, detail=ORPHAN_DETAIL
                )
                self._requests[request_id] = request
                orphans.append(request)
            return orphans

    def open_requests(self) -> list[ApprovalRequest]:
        with self.transaction():
            return [r for _, r in sorted(self._requests.items()) if r.status.is_open]

    def _transition(
        self,
        request_id: int,
        from_statuses: tuple[RequestStatus, ...],
        *,
        unexpired_at: datetime | None = None,
        requested_by: str | None = None,
        first_of_two: bool = False,
        final_approver: str | None = None,
        **values: Any,
    ) -> ApprovalRequest | None:
        """Applies only if the request is still in `from_statuses` (and unexpired, and
        asked for by `requested_by`, when given; the conditions of
        `SqlStore._transition_in`). None: someone else won. Call with the lock held."""
        request = self._requests.get(request_id)
        if request is None or request.status not in from_statuses:
            return None
        if first_of_two and (request.approvals_needed < 2 or request.first_approver is not None):
            return None
        # The final approval: the only one needed, or the second, after someone else's.
        if (
            final_approver is not None
            and request.approvals_needed >= 2
            and request.first_approver in (None, final_approver)
        ):
            return None
        if unexpired_at is not None and not request.expires_at > unexpired_at:
            return None
        if requested_by is not None and request.requester_id != requested_by:
            return None
        request = replace(request, **values)
        self._requests[request_id] = request
        return request

    # --- the change lifecycle ------------------------------------------------------------

    def begin_change(
        self, change: CreditChange, *, actor_id: str, owner: str, now: datetime, audit: AuditEvent
    ) -> ChangeRecord:
        with self.transaction():
            event_id = self._insert_event(audit)
            return self._insert_change(
                change,
                origin=ChangeOrigin.DIRECT,
                actor_id=actor_id,
                owner=owner,
                audit_event_id=event_id,
            )

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
        """As `SqlStore.begin_budgeted_change`: the auto-approved credits in the window
        (by `actor_id`, and to the target) are summed and the intent recorded under the
        one lock. Intents, sent, applied and unknown changes count; failed ones do not."""
        with self.transaction():
            now = _utc(now)
            since = now - window
            counted = [
                self._changes[i]
                for i, at in self._auto_approved_at.items()
                if at > since and self._changes[i].state in _BUDGETED
            ]
            use = BudgetUse(
                by_actor=sum(c.change.credits or 0 for c in counted if c.actor_id == actor_id),
                on_target=sum(
                    c.change.credits or 0 for c in counted if c.change.user == change.user
                ),
            )
            if not use.allows(change.credits or 0, budget):
                return use
            event_id = self._insert_event(audit)
            record = self._insert_change(
                change,
                origin=ChangeOrigin.DIRECT,
                actor_id=actor_id,
                owner=owner,
                audit_event_id=event_id,
            )
            self._auto_approved_at[record.id] = now
            return record

    # --- confirmations -------------------------------------------------------------------

    def create_confirmation(
        self,
        change: CreditChange,
        *,
        actor_id: str,
        auto_approved: bool,
        now: datetime,
        expires_at: datetime,
    ) -> int:
        with self.transaction():
            confirmation_id = self._new_id("confirmation")
            self._confirmations[confirmation_id] = _Confirmation(
                change=_as_stored(change),
                actor_id=actor_id,
                auto_approved=auto_approved,
                expires_at=_utc(expires_at),
            )
            return confirmation_id

    def take_confirmation(
        self, confirmation_id: int, *, actor_id: str, now: datetime, confirm: bool
    ) -> tuple[CreditChange, bool] | None:
        """`pending → confirmed|cancelled` once, by its author, before it expires.
        Returns (change, auto_approved)."""
        with self.transaction():
            pending = self._confirmations.get(confirmation_id)
            if (
                pending is None
                or pending.actor_id != actor_id
                or pending.status != "pending"
                or not pending.expires_at > _utc(now)
            ):
                return None
            status = "confirmed" if confirm else "cancelled"
            self._confirmations[confirmation_id] = replace(pending, status=status)
            return pending.change, pending.auto_approved

    def mark_sent(self, change_id: int, *, owner: str, before: Balance, now: datetime) -> bool:
        with self.transaction():
            record = self._changes.get(change_id)
            if record is None or record.owner != owner or record.state is not ChangeState.INTENT:
                return False
            self._changes[change_id] = replace(record, state=ChangeState.SENT, before=before)
            return True

    def still_sending(self, change_id: int, *, owner: str) -> bool:
        with self.transaction():
            record = self._changes.get(change_id)
            return record is not None and record.owner == owner and record.state is ChangeState.SENT

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
        assert state.is_final
        with self.transaction():
            current = self._changes.get(record.id)
            if current is None or current.owner != record.owner or current.state not in _SETTLEABLE:
                return False, None
            self._changes[record.id] = replace(
                current, state=state, before=before or current.before, after=after, detail=detail
            )
            if record.audit_event_id is not None:
                self._complete(
                    record.audit_event_id,
                    action=_AUDIT_FOR_STATE[state],
                    outcome=detail,
                    before=before,
                    after=after,
                )
            if note is not None:
                self._insert_event(note)
            request = None
            if record.request_id is not None:
                request = self._transition(
                    record.request_id,
                    (RequestStatus.EXECUTING, RequestStatus.UNKNOWN),
                    status=_REQUEST_FOR_STATE[state],
                    before=before,
                    after=after,
                    detail=detail,
                )
            return True, request

    def abandoned_changes(self, now: datetime) -> list[ChangeRecord]:
        with self.transaction():
            unfinished = [c for _, c in sorted(self._changes.items()) if c.state in _UNFINISHED]
            live = self._live_instances({c.owner for c in unfinished}, _utc(now))
            return [c for c in unfinished if c.owner not in live]

    def unfinished_changes(self, owner: str) -> list[ChangeRecord]:
        with self.transaction():
            return [
                c
                for _, c in sorted(self._changes.items())
                if c.owner == owner and c.state in _UNFINISHED
            ]

    def changes(self) -> list[ChangeRecord]:
        """Every change record, oldest first, whatever its state (for tests and demos)."""
        with self.transaction():
            return [c for _, c in sorted(self._changes.items())]

    def _insert_change(
        self,
        change: CreditChange,
        *,
        origin: ChangeOrigin,
        actor_id: str,
        owner: str,
        request_id: int | None = None,
        audit_event_id: int | None = None,
    ) -> ChangeRecord:
        record = ChangeRecord(
            id=self._new_id("change"),
            origin=origin,
            change=_as_stored(change),
            actor_id=actor_id,
            owner=owner,
            state=ChangeState.INTENT,
            request_id=request_id,
            audit_event_id=audit_event_id,
        )
        self._changes[record.id] = record
        return record

    # --- live instances --------------------------------------------------------------------

    def register_instance(self, instance_id: str, *, kind: str, now: datetime) -> None:
        """Record a starting instance (and forget instances silent for a week that own
        no unfinished change). An id already registered is a `StoreError`."""
        with self.transaction():
            now = _utc(now)
            if instance_id in self._instances:
                raise StoreError(f"the database failed (instance {instance_id} exists)")
            busy = {c.owner for c in self._changes.values() if c.state in _UNFINISHED}
            for old, instance in list(self._instances.items()):
                if instance.heartbeat_at < now - FORGET_INSTANCES_AFTER and old not in busy:
                    del self._instances[old]
            self._instances[instance_id] = _Instance(kind=kind, started_at=now, heartbeat_at=now)

    def heartbeat(self, instance_id: str, *, now: datetime) -> None:
        with self.transaction():
            instance = self._instances.get(instance_id)
            if instance is not None:
                self._instances[instance_id] = replace(instance, heartbeat_at=_utc(now))

    def stop_instance(self, instance_id: str, *, now: datetime) -> None:
        with self.transaction():
            instance = self._instances.get(instance_id)
            if instance is not None:
                self._instances[instance_id] = replace(instance, stopped_at=_utc(now))

    def _live_instances(self, ids: set[str], now: datetime) -> set[str]:
        """Which of `ids` may still be working; an id never registered is gone."""
        live = set()
        for instance_id in ids:
            instance = self._instances.get(instance_id)
            if instance is not None and instance_is_live(
                instance_id,
                stopped_at=instance.stopped_at,
                heartbeat_at=instance.heartbeat_at,
                now=now,
            ):
                live.add(instance_id)
        return live

    # --- audit trail -------------------------------------------------------------------

    def record(self, event: AuditEvent) -> int:
        """Append an event; returns its id (for `complete`)."""
        with self.transaction():
            return self._insert_event(event)

    def audit(self, *, target: str | None = None, limit: int = 20) -> list[AuditEvent]:
        with self.transaction():
            newest_first = (self._events[i] for i in sorted(self._events, reverse=True))
            matching = [e for e in newest_first if target is None or e.target == target]
            return matching[:limit]

    def _insert_event(self, event: AuditEvent) -> int:
        event_id = self._new_id("event")
        # Arguments are kept as a database keeps them: JSON, anything else as text.
        arguments = (
            json.loads(json.dumps(event.arguments, sort_keys=True, default=str))
            if event.arguments
            else None
        )
        self._events[event_id] = replace(event, id=event_id, at=_utc(event.at), arguments=arguments)
        return event_id

    def _complete(
        self,
        event_id: int,
        *,
        action: AuditAction,
        outcome: str,
        before: Balance | None,
        after: Balance | None,
    ) -> None:
        event = self._events.get(event_id)
        if event is not None:
            self._events[event_id] = replace(
                event, action=action, outcome=outcome, before=before, after=after
            )


class MemoryAlertStore:
    """The `AlertStore` port (see `bot.commands.sweep`) on a `MemoryStore`."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    def states(self, users: Sequence[str]) -> dict[str, AlertState]:
        with self._store.transaction():
            saved = self._store.alert_states
            return {user: saved[user] for user in users if user in saved}

    def save_states(self, states: Iterable[AlertState]) -> None:
        with self._store.transaction():
            for state in states:
                self._store.alert_states[state.user] = _stored_state(state)

    def add_snapshots(self, balances: Iterable[tuple[str, Balance]], *, at: datetime) -> None:
        with self._store.transaction():
            self._store.balance_snapshots.extend(
                Snapshot(user, _utc(at), b.remaining, b.unlimited) for user, b in balances
            )

    def prune_snapshots(self, *, before: datetime) -> None:
        with self._store.transaction():
            kept = [s for s in self._store.balance_snapshots if s.at >= _utc(before)]
            self._store.balance_snapshots[:] = kept

    def thresholds(self) -> dict[str, int]:
        with self._store.transaction():
            return dict(self._store.alert_thresholds)

    def set_threshold(self, user: str, below: int, *, by: str, at: datetime) -> None:
        with self._store.transaction():
            self._store.alert_thresholds[user] = below

    def snooze(self, user: str, *, until: datetime) -> None:
        with self._store.transaction():
            state = self._store.alert_states.get(user, AlertState(user))
            self._store.alert_states[user] = _stored_state(replace(state, snoozed_until=until))

    def edit_digest(
        self,
        channel_id: str,
        message_ts: str,
        *,
        seen: str,
        edit: Callable[[str], str],
        now: datetime,
    ) -> str:
        """Apply `edit` to the digest as last edited (or to `seen`, the copy the click
        carried, the first time), under the store's lock; returns the new content."""
        with self._store.transaction():
            key = (channel_id, message_ts)
            edited = edit(self._store.digest_messages.get(key, seen))
            self._store.digest_messages[key] = edited
            return edited


def _stored_state(state: AlertState) -> AlertState:
    """As a database row keeps it: times in UTC, usage only with a balance and a time."""
    usage = state.usage
    if usage is not None:
        usage = Usage(int(usage.remaining), _utc(usage.at), usage.per_hour)
    snoozed = _utc(state.snoozed_until) if state.snoozed_until is not None else None
    return AlertState(state.user, announced=state.announced, snoozed_until=snoozed, usage=usage)


def _as_stored(change: CreditChange) -> CreditChange:
    """A change as a database row keeps it (its arguments as JSON, read back)."""
    return change_from_arguments(json.loads(json.dumps(change_arguments(change))))


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
