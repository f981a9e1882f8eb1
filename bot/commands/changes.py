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
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from bot.commands import messages
from bot.commands.replies import (
    ApprovalRequestedReply,
    AuditReply,
    ErrorReply,
    NoticeReply,
    PendingReply,
    Reply,
)
from bot.domain.approvals import (
    ApprovalRequest,
    AuditAction,
    AuditEvent,
    Refusal,
    RequestStatus,
    Store,
    may_decide,
)
from bot.domain.credits import (
    Balance,
    ChangeResult,
    CreditChange,
    CreditsBackend,
    apply_change,
    change_arguments,
    check_applicable,
)
from bot.domain.policy import GroupDirectory, RoleBook
from bot.errors import NotifyError, SendGridError, UserError
from bot.observability.metrics import NO_METRICS, Metrics

Clock = Callable[[], datetime]
SYSTEM = "system"  # the actor of what the bot does on its own (expiry, recovery)


def utc_now() -> datetime:
    return datetime.now(UTC)


class ApprovalNotifier(Protocol):
    """The port to wherever approvals are shown (Slack). Methods raise NotifyError."""

    def post_request(
        self, request: ApprovalRequest, *, current: Balance, expected: Balance | None
    ) -> tuple[str, str]:
        """Post the request with Approve/Deny; returns (channel_id, message_ts)."""
        ...

    def show_outcome(self, request: ApprovalRequest) -> None:
        """Edit the posted request to show what became of it."""
        ...

    def tell_requester(self, request: ApprovalRequest) -> None: ...


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
        clock: Clock = utc_now,
        logger: logging.Logger | None = None,
        metrics: Metrics = NO_METRICS,
    ) -> None:
        self._metrics = metrics
        self._store = store
        self._backend = backend
        self._roles = roles
        self._directory = directory
        self._notifier = notifier
        self._ttl = ttl
        self._executor = executor
        self._clock = clock
        self._logger = logger or logging.getLogger("bot.changes")

    # --- direct changes ------------------------------------------------------------

    def apply_directly(
        self, actor_id: str, change: CreditChange, *, auto_approved: bool
    ) -> ChangeResult:
        """An approver's, admin's or auto-approved change: audited before and after."""
        event_id = self._store.record(
            AuditEvent(
                at=self._clock(),
                actor_id=actor_id,
                action=AuditAction.CHANGED,
                target=change.user,
                arguments={**change_arguments(change), "auto_approved": auto_approved},
                outcome="sending",
            )
        )
        try:
            result = apply_change(self._backend, change)
        except (SendGridError, UserError) as error:
            self._store.complete(
                event_id,
                action=AuditAction.FAILED,
                outcome=_outcome(error),
                before=None,
                after=None,
            )
            raise
        self._store.complete(
            event_id,
            action=AuditAction.UNKNOWN if result.outcome_unknown else AuditAction.CHANGED,
            outcome=_outcome(result.error) if result.error else "ok",
            before=result.before,
            after=result.after,
        )
        return result

    # --- requests --------------------------------------------------------------------

    def request_approval(self, actor_id: str, change: CreditChange) -> Reply:
        """Record an operator's change as a request and post it for approval."""
        self._backend.check_supported(change)
        before = self._backend.get_balance(change.user)
        check_applicable(change, before)
        now = self._clock()
        request = self._store.create_request(
            change, requester_id=actor_id, now=now, expires_at=now + self._ttl
        )
        expected = change.expected_after(before)
        self._metrics.approval("pending")
        self._note(
            request, actor_id, AuditAction.REQUESTED, "pending", before=before, after=expected
        )
        posted_to, post_error = None, None
        if self._notifier is None:
            post_error = "no approval channel is configured"
        else:
            try:
                channel_id, ts = self._notifier.post_request(
                    request, current=before, expected=expected
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
            if resolved.unverified is not None:
                return ErrorReply(
                    messages.DECIDE_UNVERIFIED.format(reason=resolved.unverified.reason)
                )
            return ErrorReply(messages.NOT_AN_APPROVER.format(role=resolved.role.label))
        if request.status is not RequestStatus.PENDING or request.expired_at(self._clock()):
            return self._already_handled(request)
        return None

    def approve(self, request_id: int, actor_id: str) -> Reply:
        """Approve and execute, at most once across all instances."""
        refusal = self.refusal(request_id, actor_id)
        if refusal is not None:
            return refusal
        now = self._clock()
        claimed = self._store.claim(
            request_id, approver_id=actor_id, now=now, executor=self._executor
        )
        if claimed is None:
            current = self._store.get_request(request_id)
            assert current is not None  # it existed a moment ago; rows are never deleted
            return self._already_handled(current)
        self._note(claimed, actor_id, AuditAction.APPROVED, "executing")
        finished = self._execute(claimed, actor_id)
        self._metrics.approval(finished.status.value, _waited(finished, now))
        self._announce(finished)
        return NoticeReply(
            messages.DECIDED_BY_YOU.format(
                id=finished.id, outcome=_status_text(finished), summary=_summary(finished)
            ),
            warning=finished.status is not RequestStatus.APPROVED,
        )

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

    def recover_orphans(self) -> int:
        """At start-up: requests some dead process left `executing` become `unknown`."""
        now = self._clock()
        orphans = self._store.orphans_to_unknown(live_executor=self._executor, now=now)
        for request in orphans:
            self._logger.warning(
                "request #%s was executing when its process stopped; marked unknown", request.id
            )
            self._note(
                request, SYSTEM, AuditAction.ORPHANED, "unknown: verify the balance before acting"
            )
            self._announce(request)
        return len(orphans)

    # --- reading -----------------------------------------------------------------------

    def pending(self) -> Reply:
        """Open requests; overdue ones are expired first, so the list is never stale."""
        self.expire_due()
        return PendingReply(tuple(self._store.open_requests()))

    def audit(self, target: str | None) -> Reply:
        return AuditReply(tuple(self._store.audit(target=target, limit=20)), target=target)

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
            AuditEvent(
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
        )

    def _execute(self, request: ApprovalRequest, actor_id: str) -> ApprovalRequest:
        try:
            result = apply_change(self._backend, request.change)
        except (SendGridError, UserError) as error:
            status, before, after, detail = RequestStatus.FAILED, None, None, _outcome(error)
            action = AuditAction.FAILED
        else:
            before, after = result.before, result.after
            if result.outcome_unknown:
                status, action, detail = (
                    RequestStatus.UNKNOWN,
                    AuditAction.UNKNOWN,
                    _outcome(result.error),
                )
            else:
                status, action, detail = RequestStatus.APPROVED, AuditAction.EXECUTED, "ok"
        self._note(request, actor_id, action, detail, before=before, after=after)
        finished = self._store.finish(
            request.id,
            status=status,
            executor=self._executor,
            before=before,
            after=after,
            detail=detail,
        )
        return finished or request

    def _announce(self, request: ApprovalRequest) -> None:
        """Edit the approval message and tell the requester; failures are logged only."""
        if self._notifier is None:
            return
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


def _status_text(request: ApprovalRequest) -> str:
    return messages.STATUS_TEXT[request.status.value]


def _summary(request: ApprovalRequest) -> str:
    change = request.change
    amount = f" {change.credits:,}" if change.credits is not None else ""
    return f"{change.kind.value}{amount} for {change.user}"
