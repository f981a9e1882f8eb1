"""Credit changes with a paper trail: direct changes, approval requests and decisions.

`ChangeService` is where the approval rules of design §1 and §4 run:
- an operator's change becomes a request, posted for approval;
- approvers and admins (never the requester) approve or deny it;
- approval claims the request with one conditional update, so it executes at
  most once, then sends the write once and re-reads the balance;
- every step is in the audit trail, the outcome of a SendGrid call written
  onto an event recorded before the call was made.

Slack is reached only through the `ApprovalNotifier` port.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from bot.commands import messages
from bot.commands.formatting import (
    balance_summary,
    change_summary,
    decision_log_line,
    plan_warning,
    reminder_text,
)
from bot.commands.replies import (
    NO_TICKET_LINKS,
    ApprovalRequestedReply,
    AuditReply,
    ErrorReply,
    NoticeReply,
    PendingReply,
    ReasonLinks,
    Reply,
)
from bot.domain.approvals import (
    ApprovalRequest,
    AuditAction,
    AuditEvent,
    ChangeRecord,
    ChangeState,
    ReminderPolicy,
    RequestStatus,
    may_cancel,
    may_decide,
    may_resolve,
)
from bot.domain.credits import (
    Balance,
    ChangeResult,
    CreditChange,
    apply_change,
    change_arguments,
    check_applicable,
    write_guard,
)
from bot.domain.policy import (
    BudgetUse,
    ConfirmWhy,
    Limits,
    Refusal,
    RoleBook,
    drops_recurring_plan,
    needs_two_approvals,
)
from bot.domain.ports import ApprovalNotifier, CreditsBackend, GroupDirectory, Store
from bot.errors import (
    BotError,
    ConfirmationRequired,
    NotifyError,
    SendGridError,
    ShuttingDown,
    StoreError,
    UserError,
)
from bot.observability.metrics import NO_METRICS, Metrics

UtcClock = Callable[[], datetime]
CONFIRM_TTL = timedelta(minutes=10)
NO_LIMITS = Limits()
SYSTEM = "system"  # the actor of what the bot does on its own (expiry, recovery)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Carried:
    """What became of one change carried through its lifecycle.

    `recorded` is False when SendGrid answered but the database did not take the
    outcome yet: it is kept and recorded when the database is back (the record is
    retried, never the write).
    """

    state: ChangeState
    result: ChangeResult | None
    error: BotError | None
    recorded: bool
    request: ApprovalRequest | None = None


class UnrecordedOutcomes:
    """Outcomes SendGrid gave that the database has not taken yet, retried until it does."""

    def __init__(self, *, logger: logging.Logger) -> None:
        self._lock = threading.Lock()
        self._pending: list[Callable[[], None]] = []
        self._logger = logger

    def add(self, record: Callable[[], None]) -> None:
        with self._lock:
            self._pending.append(record)

    def __len__(self) -> int:
        with self._lock:
            return len(self._pending)

    def flush(self) -> int:
        """Try to record each outcome; returns how many are still waiting."""
        with self._lock:
            waiting, self._pending = self._pending, []
        still: list[Callable[[], None]] = []
        for record in waiting:
            try:
                record()
            except StoreError:
                still.append(record)
        if waiting:
            self._logger.info(
                "recorded %d outcome(s) kept while the database was away; %d still waiting",
                len(waiting) - len(still),
                len(still),
            )
        with self._lock:
            self._pending[:0] = still
            return len(self._pending)


class ChangeService:
    """Direct changes, approval requests and decisions, all audited."""

    def __init__(
        self,
        *,
        store: Store,
        backend: CreditsBackend,
        roles: RoleBook,
        directory: GroupDirectory | None,
        notifier: ApprovalNotifier | None,
        ttl: timedelta,
        executor: str,
        stopping: threading.Event | None = None,
        clock: UtcClock = utc_now,
        logger: logging.Logger | None = None,
        metrics: Metrics = NO_METRICS,
        reminders: ReminderPolicy | None = None,
        limits: Limits = NO_LIMITS,
        links: ReasonLinks = NO_TICKET_LINKS,
        adjustments_keep_recurring: bool = False,
    ) -> None:
        self._metrics = metrics
        self._reminders = reminders
        self.limits = limits
        self.links = links
        self.adjustments_keep_recurring = adjustments_keep_recurring
        self._store = store
        self._backend = backend
        self._roles = roles
        self._directory = directory
        self._notifier = notifier
        self._ttl = ttl
        self._executor = executor
        self._clock = clock
        self._logger = logger or logging.getLogger("bot.changes")
        self.stopping = stopping or threading.Event()
        self.unrecorded = UnrecordedOutcomes(logger=self._logger)

    @property
    def store(self) -> Store:
        return self._store

    @property
    def backend(self) -> CreditsBackend:
        return self._backend

    @property
    def roles(self) -> RoleBook:
        return self._roles

    @property
    def directory(self) -> GroupDirectory | None:
        return self._directory

    @property
    def executor(self) -> str:
        return self._executor

    # --- direct changes ------------------------------------------------------------

    def apply_directly(
        self,
        actor_id: str,
        change: CreditChange,
        *,
        auto_approved: bool,
        hold_if: Callable[[Balance], ConfirmWhy | None] | None = None,
    ) -> tuple[ChangeResult, bool] | BudgetUse:
        """An approver's, admin's or auto-approved change, carried through its lifecycle.

        Returns the result and whether it is recorded yet; raises the error that
        stopped it when nothing was changed. `hold_if(before)`, asked after the first
        read and before anything is sent, holds the change for its author's confirmation
        (raises ConfirmationRequired; the record ends `failed`: nothing was sent).
        An auto-approved change is recorded only
        if it fits the auto-approve budget (checked and recorded in one locked
        transaction); otherwise nothing is sent and the budget's use is returned.
        """
        now = self._clock()
        audit = AuditEvent(
            at=now,
            actor_id=actor_id,
            action=AuditAction.CHANGED,
            target=change.user,
            arguments={**change_arguments(change), "auto_approved": auto_approved},
            outcome="sending",
        )
        if auto_approved:
            begun = self._store.begin_budgeted_change(
                change,
                actor_id=actor_id,
                owner=self._executor,
                now=now,
                audit=audit,
                budget=self.limits.auto_approve_budget,
                window=self.limits.budget_window,
            )
            if isinstance(begun, BudgetUse):
                return begun
            record = begun
        else:
            record = self._store.begin_change(
                change, actor_id=actor_id, owner=self._executor, now=now, audit=audit
            )
        carried = self._carry_out(record, note=None, hold_if=hold_if)
        if carried.result is None:
            assert carried.error is not None
            raise carried.error
        result = carried.result
        self._log(
            messages.LOG_DIRECT.format(
                actor=actor_id,
                summary=f"{change_summary(change)} for {change.user}",
                auto=messages.LOG_AUTO if auto_approved else "",
                before=balance_summary(result.before) if result.before else "?",
                after=balance_summary(result.after) if result.after else "?",
                outcome=messages.LOG_UNCONFIRMED if result.outcome_unknown else "",
            )
        )
        return result, carried.recorded

    def _carry_out(
        self,
        record: ChangeRecord,
        *,
        note: Callable[..., AuditEvent] | None,
        hold_if: Callable[[Balance], ConfirmWhy | None] | None = None,
    ) -> Carried:
        """intent → (read) → sent → (write, re-read) → applied / failed / unknown.

        The write leaves only after `mark_sent` succeeded; whatever happens after
        it, the outcome is recorded (now, or when the database answers again).
        """

        def before_send(before: Balance) -> None:
            why = hold_if(before) if hold_if is not None else None
            if why is not None:
                raise ConfirmationRequired(messages.HELD_FOR_CONFIRMATION, why=why, before=before)
            if self.stopping.is_set():
                raise ShuttingDown(messages.RESTARTING)
            if not self._store.mark_sent(
                record.id, owner=self._executor, before=before, now=self._clock()
            ):
                raise UserError(messages.CHANGE_ABANDONED)

        def still_ours() -> None:
            if not self._store.still_sending(record.id, owner=self._executor):
                raise UserError(messages.CHANGE_ABANDONED)

        result: ChangeResult | None = None
        error: BotError | None = None
        guarded = write_guard.set(still_ours)
        try:
            result = apply_change(self._backend, record.change, before_send=before_send)
        except (SendGridError, UserError, StoreError) as failure:
            state, before, after, detail, error = (
                ChangeState.FAILED,
                None,
                None,
                _outcome(failure),
                failure,
            )
        else:
            before, after = result.before, result.after
            if result.outcome_unknown:
                state, detail = ChangeState.UNKNOWN, _outcome(result.error)
            else:
                state, detail = ChangeState.APPLIED, "ok"
        finally:
            write_guard.reset(guarded)
        event = note(state, detail, before, after) if note is not None else None
        settled: list[ApprovalRequest | None] = []

        def record_outcome() -> None:
            _, request = self._store.settle(
                record,
                state=state,
                before=before,
                after=after,
                detail=detail,
                now=self._clock(),
                note=event,
            )
            if request is not None and settled:
                self._announce(request)  # recorded late: the click's reply went out already
            settled.append(request)

        try:
            record_outcome()
        except StoreError:
            self._logger.warning(
                "change %s (%s): SendGrid answered %s, the database did not take it; "
                "keeping it to record later",
                record.id,
                record.change.user,
                state.value,
            )
            self.unrecorded.add(record_outcome)
            settled.append(None)
            return Carried(state, result, error, recorded=False)
        return Carried(state, result, error, recorded=True, request=settled[0])

    # --- requests --------------------------------------------------------------------

    def request_approval(
        self, actor_id: str, change: CreditChange, *, why: str | None = None
    ) -> Reply:
        """Record an operator's change as a request and post it for approval.

        Above CREDITS_TWO_APPROVALS_ABOVE it needs two approvers; a change that would
        end a recurring plan says so on the card, before anyone approves it.
        """
        self._backend.check_supported(change)
        before = self._backend.get_balance(change.user)
        check_applicable(change, before)
        now = self._clock()
        request = self._store.create_request(
            change,
            requester_id=actor_id,
            now=now,
            expires_at=now + self._ttl,
            approvals_needed=2 if needs_two_approvals(change, self.limits) else 1,
        )
        expected = change.expected_after(before)
        warning = None
        if drops_recurring_plan(
            change, before, adjustments_keep_recurring=self.adjustments_keep_recurring
        ):
            warning = plan_warning(change, before, expected)
        self._metrics.approval("pending")
        self._note(
            request, actor_id, AuditAction.REQUESTED, "pending", before=before, after=expected
        )
        posted_to, post_error = None, None
        if self._notifier is None:
            post_error = messages.NO_APPROVAL_CHANNEL
        else:
            try:
                channel_id, ts = self._notifier.post_request(
                    request, current=before, expected=expected, warning=warning
                )
            except NotifyError as error:
                post_error = error.reason
                self._logger.warning("approval #%s not posted: %s", request.id, error.reason)
            else:
                self._store.attach_message(request.id, channel_id=channel_id, message_ts=ts)
                posted_to = channel_id
        return ApprovalRequestedReply(
            request=request,
            before=before,
            expected=expected,
            posted_to=posted_to,
            post_error=post_error,
            why=why,
            links=self.links,
        )

    # --- decisions -------------------------------------------------------------------

    def refusal(self, request_id: int, actor_id: str) -> ErrorReply | None:
        """Why `actor_id` may not decide this request now, or None if they may."""
        request = self._store.get_request(request_id)
        if request is None:
            return ErrorReply(messages.NO_SUCH_REQUEST.format(id=request_id))
        resolved = self._roles.resolve(actor_id, self._directory)
        refusal = may_decide(actor_id, resolved.role, request)
        if refusal is not None:
            self._note(request, actor_id, AuditAction.REFUSED, refusal.value)
            if refusal is Refusal.OWN_REQUEST:
                return ErrorReply(messages.OWN_REQUEST)
            if refusal is Refusal.ALREADY_APPROVED:
                return ErrorReply(messages.ALREADY_APPROVED)
            if resolved.unverified is not None:
                return ErrorReply(
                    messages.DECIDE_UNVERIFIED.format(reason=resolved.unverified.reason)
                )
            return ErrorReply(messages.NOT_AN_APPROVER.format(role=resolved.role.label))
        if request.status is not RequestStatus.PENDING or request.expired_at(self._clock()):
            return self._already_handled(request)
        return None

    def approve(self, request_id: int, actor_id: str) -> Reply:
        """Approve and execute, at most once across all instances.

        A request needing two approvals executes on the second, given by someone
        other than the first approver and the requester; the first is one
        conditional update (so two first clicks at once make one first approval and
        one second), and the claim re-checks who gave it.
        """
        refusal = self.refusal(request_id, actor_id)
        if refusal is not None:
            return refusal
        now = self._clock()
        pending = self._store.get_request(request_id)
        assert pending is not None  # refusal() found it; rows are never deleted
        if pending.approvals_needed > 1 and pending.first_approver is None:
            first = self._store.approve_first(request_id, approver_id=actor_id, now=now)
            if first is not None:
                self._note(first, actor_id, AuditAction.APPROVED, "1 of 2 approvals")
                self._show_progress(first)
                return NoticeReply(
                    messages.FIRST_APPROVAL.format(id=first.id, summary=_summary(first))
                )
        claimed = self._store.claim(
            request_id, approver_id=actor_id, now=now, executor=self._executor
        )
        if claimed is None:
            current = self._store.get_request(request_id)
            assert current is not None  # it existed a moment ago; rows are never deleted
            if current.status is RequestStatus.PENDING and current.first_approver == actor_id:
                self._note(current, actor_id, AuditAction.REFUSED, "already_approved")
                return ErrorReply(messages.ALREADY_APPROVED)
            return self._already_handled(current)
        request, record = claimed
        self._note(request, actor_id, AuditAction.APPROVED, "executing")

        def note(
            state: ChangeState, detail: str, before: Balance | None, after: Balance | None
        ) -> AuditEvent:
            return self._event(
                request, actor_id, _EXECUTION_ACTION[state], detail, before=before, after=after
            )

        carried = self._carry_out(record, note=note)
        finished = carried.request or replace(
            request,
            status=_REQUEST_STATUS[carried.state],
            before=carried.result.before if carried.result else None,
            after=carried.result.after if carried.result else None,
            detail=_outcome(carried.error) if carried.error else None,
        )
        self._metrics.approval(finished.status.value, _waited(finished, now))
        if carried.recorded:
            self._announce(finished)
        text = messages.DECIDED_BY_YOU.format(
            id=finished.id, outcome=_status_text(finished), summary=_summary(finished)
        )
        if not carried.recorded:
            text += " " + messages.NOT_RECORDED_YET
        return NoticeReply(text, warning=finished.status is not RequestStatus.APPROVED)

    def deny(self, request_id: int, actor_id: str, reason: str | None) -> Reply:
        refusal = self.refusal(request_id, actor_id)
        if refusal is not None:
            return refusal
        reason = (reason or "").strip()[:500] or None
        denied = self._store.deny(
            request_id, approver_id=actor_id, reason=reason, now=self._clock()
        )
        if denied is None:
            current = self._store.get_request(request_id)
            assert current is not None
            return self._already_handled(current)
        self._note(denied, actor_id, AuditAction.DENIED, reason or "denied")
        self._metrics.approval("denied", _waited(denied, denied.decided_at))
        self._announce(denied)
        return NoticeReply(
            messages.DECIDED_BY_YOU.format(id=denied.id, outcome="denied", summary=_summary(denied))
        )

    def cancel(self, request_id: int, actor_id: str) -> Reply:
        """The requester withdraws a request still waiting for a decision."""
        request = self._store.get_request(request_id)
        if request is None:
            return ErrorReply(messages.NO_SUCH_REQUEST.format(id=request_id))
        resolved = self._roles.resolve(actor_id, self._directory)
        refused = may_cancel(actor_id, resolved.role, request)
        if refused is not None:
            self._note(request, actor_id, AuditAction.REFUSED, refused.value)
            if refused is Refusal.NEEDS_ROLE:
                return ErrorReply(messages.CANCEL_NEEDS.format(role=resolved.role.label))
            return ErrorReply(messages.NOT_YOUR_REQUEST.format(id=request_id))
        if request.status is not RequestStatus.PENDING or request.expired_at(self._clock()):
            return self._already_handled(request)
        cancelled = self._store.cancel(request_id, requester_id=actor_id, now=self._clock())
        if cancelled is None:  # decided a moment ago by someone else
            current = self._store.get_request(request_id)
            assert current is not None
            return self._already_handled(current)
        self._note(cancelled, actor_id, AuditAction.CANCELLED, "cancelled")
        self._metrics.approval("cancelled", _waited(cancelled, cancelled.decided_at))
        self._log(decision_log_line(cancelled))
        if self._notifier is not None:
            try:
                self._notifier.show_outcome(cancelled)
            except NotifyError as error:
                self._logger.warning("request #%s: could not update Slack (%s)", request_id, error)
        return NoticeReply(
            messages.CANCELLED_BY_YOU.format(id=cancelled.id, summary=_summary(cancelled))
        )

    def resolve(self, request_id: int, actor_id: str, *, applied: bool) -> Reply:
        """Record what became of a change SendGrid never confirmed (`unknown`).

        The balance is read again first and kept with the decision, so the audit
        shows what the approver saw when they said "applied" or "not applied".
        """
        request = self._store.get_request(request_id)
        if request is None:
            return ErrorReply(messages.NO_SUCH_REQUEST.format(id=request_id))
        resolved = self._roles.resolve(actor_id, self._directory)
        refused = may_resolve(resolved.role)
        if refused is not None:
            self._note(request, actor_id, AuditAction.REFUSED, refused.value)
            return ErrorReply(messages.NOT_AN_APPROVER.format(role=resolved.role.label))
        if request.status is not RequestStatus.UNKNOWN:
            return ErrorReply(
                messages.NOT_UNKNOWN.format(id=request_id, outcome=_status_text(request))
            )
        now_balance = self._backend.get_balance(request.change.user)
        word = "applied" if applied else "not applied"
        detail = messages.RESOLVED_DETAIL.format(outcome=word, by=actor_id)
        settled = self._store.resolve(
            request_id,
            approver_id=actor_id,
            applied=applied,
            detail=detail,
            after=now_balance,
            now=self._clock(),
        )
        if settled is None:
            current = self._store.get_request(request_id)
            assert current is not None
            return ErrorReply(
                messages.NOT_UNKNOWN.format(id=request_id, outcome=_status_text(current))
            )
        self._note(
            settled, actor_id, AuditAction.RESOLVED, word, before=request.before, after=now_balance
        )
        self._announce(settled)
        return NoticeReply(
            messages.RESOLVED_BY_YOU.format(id=settled.id, summary=_summary(settled), outcome=word)
            + " "
            + messages.BALANCE_NOW.format(balance=balance_summary(now_balance))
        )

    # --- housekeeping ----------------------------------------------------------------

    def expire_due(self) -> int:
        """Mark requests past their TTL expired and edit their messages."""
        now = self._clock()
        expired = self._store.expire_due(now)
        for request in expired:
            self._note(request, SYSTEM, AuditAction.EXPIRED, "expired")
            self._metrics.approval("expired", _waited(request, now))
            self._announce(request)
        return len(expired)

    def remind_due(self) -> int:
        """Re-announce requests that have waited too long, mentioning the approvers, and
        call in the escalation group once it is time. Returns how many were posted."""
        policy = self._reminders
        if policy is None or self._notifier is None:
            return 0
        now = self._clock()
        posted = 0
        for request in self._store.open_requests():
            reminder = policy.due(request, now)
            if reminder is None:
                continue
            marked = self._store.mark_reminded(reminder, now=now)
            if marked is None:
                continue  # decided, or reminded by someone else, a moment ago
            text = reminder_text(
                reminder, approvers=self._roles.approvers, escalate_to=policy.escalate_to
            )
            try:
                self._notifier.remind(marked, text)
            except NotifyError as error:
                self._logger.warning("request #%s: reminder not posted (%s)", request.id, error)
                continue
            outcome = "escalated" if reminder.escalate else f"reminder {reminder.number}"
            self._note(marked, SYSTEM, AuditAction.REMINDED, outcome)
            posted += 1
        return posted

    def recover_abandoned(self) -> int:
        """Changes whose owner stopped or died before recording an outcome.

        Only provably gone owners are considered (see `Store.abandoned_changes`);
        a live instance's work is never touched. Nothing is ever sent again:
        `intent` (nothing left) → failed, `sent` (it may have been applied) → unknown.
        """
        now = self._clock()
        recovered = sum(self._abandon(record, now) for record in self._store.abandoned_changes(now))
        for request in self._store.orphans_to_unknown(now=now):
            self._logger.warning(
                "request #%s was executing when its process stopped; marked unknown", request.id
            )
            self._note(
                request, SYSTEM, AuditAction.ORPHANED, "unknown: verify the balance before acting"
            )
            self._announce(request)
            recovered += 1
        return recovered

    def abandon_own(self) -> int:
        """At the end of a graceful stop: this process's changes still in flight."""
        now = self._clock()
        return sum(
            self._abandon(record, now) for record in self._store.unfinished_changes(self._executor)
        )

    def flush_unrecorded(self) -> int:
        return self.unrecorded.flush()

    def _abandon(self, record: ChangeRecord, now: datetime) -> bool:
        sent = record.state is ChangeState.SENT
        state = ChangeState.UNKNOWN if sent else ChangeState.FAILED
        detail = messages.ABANDONED_SENT if sent else messages.ABANDONED_NOT_SENT
        note = AuditEvent(
            at=now,
            actor_id=SYSTEM,
            action=AuditAction.ORPHANED,
            target=record.change.user,
            request_id=record.request_id,
            arguments=change_arguments(record.change),
            outcome=detail,
            before=record.before,
        )
        settled, request = self._store.settle(
            record,
            state=state,
            before=record.before,
            after=None,
            detail=detail,
            now=now,
            note=note,
        )
        if not settled:
            return False
        self._logger.warning(
            "change %s (%s for %s) left %s by %s: now %s",
            record.id,
            record.change.kind.value,
            record.change.user,
            record.state.value,
            record.owner,
            state.value,
        )
        if request is not None:
            self._announce(request)
        elif self._notifier is not None:
            text = messages.DIRECT_ABANDONED.format(
                summary=f"{change_summary(record.change)} for {record.change.user}", detail=detail
            )
            try:
                self._notifier.tell_user(record.actor_id, text)
            except NotifyError as error:
                self._logger.warning("could not tell %s: %s", record.actor_id, error.reason)
        return True

    # --- reading -----------------------------------------------------------------------

    def pending(self) -> Reply:
        """Open requests; overdue ones are expired first, so the list is never stale."""
        self.expire_due()
        return PendingReply(tuple(self._store.open_requests()))

    def audit(self, target: str | None) -> Reply:
        events = self._store.audit(target=target, limit=20)
        ids = sorted({e.request_id for e in events if e.request_id is not None})
        requests = tuple(r for r in map(self._store.get_request, ids) if r is not None)
        return AuditReply(tuple(events), target=target, requests=requests)

    # --- internals ---------------------------------------------------------------------

    def _note(
        self,
        request: ApprovalRequest,
        actor_id: str,
        action: AuditAction,
        outcome: str,
        *,
        before: Balance | None = None,
        after: Balance | None = None,
    ) -> None:
        """Append an audit event about `request`."""
        self._store.record(
            self._event(request, actor_id, action, outcome, before=before, after=after)
        )

    def _event(
        self,
        request: ApprovalRequest,
        actor_id: str,
        action: AuditAction,
        outcome: str,
        *,
        before: Balance | None = None,
        after: Balance | None = None,
    ) -> AuditEvent:
        return AuditEvent(
            at=self._clock(),
            actor_id=actor_id,
            action=action,
            target=request.change.user,
            request_id=request.id,
            arguments=change_arguments(request.change),
            outcome=outcome,
            before=before,
            after=after,
        )

    def _show_progress(self, request: ApprovalRequest) -> None:
        if self._notifier is None:
            return
        try:
            self._notifier.show_progress(request)
        except NotifyError as error:
            self._logger.warning(
                "request #%s: could not update Slack (%s)", request.id, error.reason
            )

    # --- confirmations ---------------------------------------------------------------

    def hold_for_confirmation(
        self, actor_id: str, change: CreditChange, *, auto_approved: bool
    ) -> int:
        """Keep a direct change until its author confirms it (10 minutes)."""
        now = self._clock()
        return self._store.create_confirmation(
            change,
            actor_id=actor_id,
            auto_approved=auto_approved,
            now=now,
            expires_at=now + CONFIRM_TTL,
        )

    def take_confirmation(
        self, confirmation_id: int, actor_id: str, *, confirm: bool
    ) -> tuple[CreditChange, bool] | None:
        """The held change (and whether it was auto-approved), once; None if used or gone."""
        return self._store.take_confirmation(
            confirmation_id, actor_id=actor_id, now=self._clock(), confirm=confirm
        )

    def _log(self, text: str) -> None:
        if self._notifier is None:
            return
        try:
            self._notifier.log(text)
        except NotifyError as error:
            self._logger.warning("could not post to the log channel (%s)", error.reason)

    def _announce(self, request: ApprovalRequest) -> None:
        """Edit the approval message, tell the requester, post to the log channel;
        failures are logged only."""
        if self._notifier is None:
            return
        self._log(decision_log_line(request))
        for step in (self._notifier.show_outcome, self._notifier.tell_requester):
            try:
                step(request)
            except NotifyError as error:
                self._logger.warning(
                    "request #%s: could not update Slack (%s)", request.id, error.reason
                )

    def _already_handled(self, request: ApprovalRequest) -> ErrorReply:
        if request.expired_at(self._clock()):
            self.expire_due()
            return ErrorReply(messages.REQUEST_EXPIRED.format(id=request.id))
        if request.status is RequestStatus.EXPIRED:
            return ErrorReply(messages.REQUEST_EXPIRED.format(id=request.id))
        return ErrorReply(
            messages.ALREADY_HANDLED.format(
                id=request.id, by=f"<@{request.decided_by}>", outcome=_status_text(request)
            )
        )


def _waited(request: ApprovalRequest, until: datetime | None) -> float | None:
    """Seconds from the request to its decision (for the decision-time histogram)."""
    return (until - request.requested_at).total_seconds() if until else None


def _outcome(error: BaseException | None) -> str:
    if error is None:
        return "ok"
    return f"{type(error).__name__}: {error}"[:500]


_EXECUTION_ACTION = {
    ChangeState.APPLIED: AuditAction.EXECUTED,
    ChangeState.FAILED: AuditAction.FAILED,
    ChangeState.UNKNOWN: AuditAction.UNKNOWN,
}
_REQUEST_STATUS = {
    ChangeState.APPLIED: RequestStatus.APPROVED,
    ChangeState.FAILED: RequestStatus.FAILED,
    ChangeState.UNKNOWN: RequestStatus.UNKNOWN,
}


def _status_text(request: ApprovalRequest) -> str:
    return messages.STATUS_TEXT[request.status.value]


def _summary(request: ApprovalRequest) -> str:
    change = request.change
    amount = f" {change.credits:,}" if change.credits is not None else ""
    return f"{change.kind.value}{amount} for {change.user}"
