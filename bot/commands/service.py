"""The one call every transport makes: `CommandService.handle(actor, text) → Reply`.

It is also the one place where failures become replies: a `UserError` is a
clear message; a SendGrid failure says what happened and what to do next;
anything unexpected is logged with its traceback and answered with an error id.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot.commands import messages
from bot.commands.changes import ChangeService
from bot.commands.formatting import escape, recent_top_up_note
from bot.commands.grammar import (
    USAGE,
    USAGE_RECURRING_PLAIN,
    Command,
    UnknownSubcommand,
    UsageError,
    parse,
)
from bot.commands.outlook import AccountOutlook, Outlook
from bot.commands.replies import (
    ApprovalRequestedReply,
    BalanceReply,
    ChangeReply,
    ConfirmReply,
    ErrorReply,
    HelpReply,
    NoticeReply,
    OverviewReply,
    Reply,
)
from bot.commands.sweep import AlertStore, ForecastCache
from bot.domain.alerts import Thresholds
from bot.domain.approvals import AuditAction, AuditEvent, Store
from bot.domain.credits import Balance, CreditChange, CreditsBackend
from bot.domain.history import runs_out_at
from bot.domain.policy import (
    DECIDING_VERBS,
    BudgetUse,
    ConfirmWhy,
    Decision,
    GroupDirectory,
    Outcome,
    ResolvedRole,
    Role,
    RoleBook,
    Verb,
    allowed_verbs,
    confirmation_needed,
    decide,
    may_need_confirmation,
    over_ceiling,
)
from bot.errors import (
    AuthenticationFailed,
    BadResponse,
    ConfirmationRequired,
    DirectoryError,
    OutcomeUnknown,
    RateLimited,
    RequestRejected,
    SendGridError,
    StoreError,
    UnknownAccount,
    UserError,
)
from bot.observability.metrics import NO_METRICS, Metrics

# A top-up this recent is pointed out before someone adds credits again from the digest.
RECENT_TOP_UP = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is asking: a Slack user ID (never a username)."""

    user_id: str


class CommandService:
    """Parses, authorizes and executes `/credits` commands against a credits backend."""

    def __init__(
        self,
        *,
        backend: CreditsBackend,
        roles: RoleBook,
        directory: GroupDirectory | None,
        changes: ChangeService | None = None,
        alerts: AlertStore | None = None,
        auto_approve_max: int = 0,
        logger: logging.Logger | None = None,
        new_error_id: Callable[[], str] = lambda: uuid.uuid4().hex[:10],
        store: Store | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        metrics: Metrics = NO_METRICS,
        thresholds: Thresholds | None = None,
        horizon: timedelta | None = None,
    ) -> None:
        self._metrics = metrics
        # The sweep's thresholds and early-warning window: show and low judge a
        # balance as the digest does.
        self._outlook = (
            AccountOutlook(
                alerts,
                thresholds=thresholds,
                horizon_hours=horizon.total_seconds() / 3600 if horizon else None,
            )
            if alerts is not None
            else None
        )
        self._backend = backend
        self._roles = roles
        self._directory = directory
        self._changes = changes
        self._alerts = alerts
        self._forecasts = ForecastCache(alerts, clock=clock) if alerts is not None else None
        self._auto_approve_max = auto_approve_max
        self._logger = logger or logging.getLogger("bot.commands")
        self._new_error_id = new_error_id
        self._store = store
        self._clock = clock

    def handle(self, actor: Actor, text: str, *, replay_checked: bool = True) -> Reply:
        """Answer one command. Never raises: every failure becomes an ErrorReply.

        `replay_checked=False` (the database could not record the request, so a
        replay of it would go unnoticed): reads are answered, changes refused.
        """
        parsed: list[Command] = []

        def run() -> Reply:
            command = parse(text)
            parsed.append(command)
            if not replay_checked and command.verb in CHANGING_VERBS:
                return _unchecked_change()
            return self._run(actor, command)

        reply = self._safely(run, actor, lambda: parsed[0] if parsed else None)
        command = parsed[0] if parsed else None
        self._logger.info(
            "command user=%s verb=%s target=%s reply=%s",
            actor.user_id,
            command.verb if command else "-",
            command.user if command and command.user else "-",
            type(reply).__name__,
        )
        self._metrics.command_handled(command.verb.value if command else "invalid", _outcome(reply))
        return reply

    def approve(self, actor: Actor, request_id: int, *, replay_checked: bool = True) -> Reply:
        """An Approve click: execute the request at most once, or say why not."""
        if not replay_checked:
            return _unchecked_change()
        return self._safely(lambda: self._desk().approve(request_id, actor.user_id), actor)

    def deny(
        self, actor: Actor, request_id: int, reason: str | None, *, replay_checked: bool = True
    ) -> Reply:
        if not replay_checked:
            return _unchecked_change()
        return self._safely(lambda: self._desk().deny(request_id, actor.user_id, reason), actor)

    def refusal_to_decide(self, actor: Actor, request_id: int) -> ErrorReply | None:
        """Before opening the Deny dialog: why this person may not decide, if so."""
        reply = self._safely(
            lambda: self._desk().refusal(request_id, actor.user_id) or NoticeReply(""), actor
        )
        return reply if isinstance(reply, ErrorReply) else None

    def snooze(
        self, actor: Actor, user: str, *, hours: int = 24, replay_checked: bool = True
    ) -> Reply:
        """The digest's Snooze button: silence a subuser's alerts (operators and up)."""
        if not replay_checked:
            return _unchecked_change()

        def run() -> Reply:
            resolved = self._roles.resolve(actor.user_id, self._directory)
            if resolved.role < Role.OPERATOR:
                return ErrorReply(messages.SNOOZE_NEEDS.format(role=resolved.role.label))
            if self._alerts is None:
                return ErrorReply(messages.NO_ALERTS)
            now = self._clock()
            until = now + timedelta(hours=hours)
            self._alerts.snooze(user, until=until)
            self._audit(actor, AuditAction.SNOOZED, user, f"until {until:%Y-%m-%d %H:%M} UTC")
            when = f"{until:%Y-%m-%d %H:%M}"
            return NoticeReply(
                messages.SNOOZED.format(user=user, until=when),
                digest_note=messages.DIGEST_SNOOZED_BY.format(by=actor.user_id, until=when),
            )

        return self._safely(run, actor)

    def edit_digest(
        self, channel_id: str, message_ts: str, *, seen: str, edit: Callable[[str], str]
    ) -> str | None:
        """Edit a digest message's content under the database's lock, so two people's
        edits build on each other; None if there is no alert store or it failed."""
        if self._alerts is None:
            return None
        for _ in range(2):  # a first edit racing another first edit is tried again
            try:
                return self._alerts.edit_digest(
                    channel_id, message_ts, seen=seen, edit=edit, now=self._clock()
                )
            except StoreError:
                continue
        self._logger.warning("digest %s/%s not edited: the database failed", channel_id, message_ts)
        return None

    def recent_top_up(self, user: str, *, within: timedelta = RECENT_TOP_UP) -> str | None:
        """Before someone adds credits to `user` from the digest: who already did, lately."""
        if self._store is None:
            return None
        since = self._clock() - within
        try:
            events = self._store.audit(target=user, limit=20)
        except StoreError:
            return None
        for event in events:  # newest first
            if event.at < since:
                break
            arguments = event.arguments or {}
            applied = event.action in (AuditAction.CHANGED, AuditAction.EXECUTED)
            asked = event.action is AuditAction.REQUESTED
            if arguments.get("kind") == "add" and (applied or asked) and event.outcome != "sending":
                return recent_top_up_note(event, now=self._clock())
        return None

    def _audit(self, actor: Actor, action: AuditAction, user: str, outcome: str) -> None:
        if self._store is not None:
            self._store.record(
                AuditEvent(
                    at=self._clock(),
                    actor_id=actor.user_id,
                    action=action,
                    target=user,
                    outcome=outcome,
                )
            )

    def _need_outlook(self) -> AccountOutlook:
        if self._outlook is None:
            raise UserError(messages.NO_ALERTS)
        return self._outlook

    def _close_match(self, user: str | None) -> str | None:
        """A known subuser close to one SendGrid does not know, from the database."""
        if self._outlook is None or user is None:
            return None
        try:
            return self._outlook.close_match(user)
        except StoreError:
            return None

    def _desk(self) -> ChangeService:
        if self._changes is None:
            raise UserError(messages.NO_STORE)
        return self._changes

    def _safely(
        self,
        run: Callable[[], Reply],
        actor: Actor,
        command: Callable[[], Command | None] = lambda: None,
    ) -> Reply:
        """The one place where failures become replies."""
        if self._changes is not None and self._changes.stopping.is_set():
            return ErrorReply(messages.RESTARTING)
        try:
            return run()
        except UnknownSubcommand as error:
            return self._help(actor, notice=str(error))
        except UsageError as error:
            usage = error.usage
            if usage == USAGE[Verb.RECURRING] and not self._backend.has_recurring_dates:
                usage = USAGE_RECURRING_PLAIN
            return ErrorReply(
                str(error), usage=messages.USAGE_LINE.format(usage=usage) if usage else None
            )
        except UserError as error:
            return ErrorReply(str(error))
        except DirectoryError as error:
            return ErrorReply(messages.DIRECTORY_FAILED.format(reason=error.reason))
        except UnknownAccount:
            user = (command() or Command(Verb.HELP)).user
            return _unknown_account(user, self._close_match(user))
        except SendGridError as error:
            return _sendgrid_reply(error, command())
        except StoreError:
            error_id = self._new_error_id()
            self._logger.exception("database failure %s", error_id)
            return ErrorReply(
                messages.STORE_FAILED, next_step=messages.UNEXPECTED_NEXT.format(error_id=error_id)
            )
        except Exception:  # the central handler: log it, answer with an error id
            error_id = self._new_error_id()
            self._logger.exception("unexpected error %s", error_id)
            return ErrorReply(
                messages.UNEXPECTED, next_step=messages.UNEXPECTED_NEXT.format(error_id=error_id)
            )

    def _run(self, actor: Actor, command: Command) -> Reply:
        if command.verb is Verb.HELP:
            return self._help(actor, topic=command.topic)
        resolved = self._roles.resolve(actor.user_id, self._directory)
        decision = decide(
            command.verb,
            resolved,
            credits=command.credits,
            auto_approve_max=self._auto_approve_max,
        )
        if decision.outcome is Outcome.REFUSE:
            return _refusal(command, decision, resolved)
        if command.change is not None:
            refusal = self._policy_refusal(command.change)
            if refusal is not None:
                return refusal
        if decision.outcome is Outcome.NEEDS_APPROVAL:
            if self._changes is None or command.change is None:
                return ErrorReply(messages.NEEDS_APPROVAL_NO_STORE.format(verb=command.verb.value))
            return self._changes.request_approval(actor.user_id, command.change)
        return self._execute(actor, command, decision)

    def _policy_refusal(self, change: CreditChange) -> ErrorReply | None:
        """The limits that hold for every role: the ceiling, and a required reason."""
        if self._changes is None:
            return None
        limits = self._changes.limits
        if over_ceiling(change, limits):
            assert change.credits is not None
            assert limits.max_change is not None
            return ErrorReply(
                messages.OVER_CEILING.format(credits=change.credits, limit=limits.max_change)
            )
        if limits.require_reason and not change.reason:
            return ErrorReply(messages.REASON_REQUIRED)
        return None

    def confirm(
        self, actor: Actor, confirmation_id: int, *, confirm: bool, replay_checked: bool = True
    ) -> Reply:
        """A Confirm (or Cancel) click on a held change: runs it at most once, by its
        author only, under the roles and budget as they are now."""
        if not replay_checked:
            return _unchecked_change()

        def run() -> Reply:
            taken = self._desk().take_confirmation(confirmation_id, actor.user_id, confirm=confirm)
            if taken is None:
                return ErrorReply(messages.CONFIRM_GONE)
            if not confirm:
                return NoticeReply(messages.CONFIRM_CANCELLED)
            change, _ = taken
            verb = Verb(change.kind.value)
            resolved = self._roles.resolve(actor.user_id, self._directory)
            decision = decide(
                verb, resolved, credits=change.credits, auto_approve_max=self._auto_approve_max
            )
            command = Command(verb, user=change.user, change=change)
            if decision.outcome is Outcome.REFUSE:
                return _refusal(command, decision, resolved)
            refusal = self._policy_refusal(change)
            if refusal is not None:
                return refusal
            if decision.outcome is Outcome.NEEDS_APPROVAL:
                return self._desk().request_approval(actor.user_id, change)
            return self._change_now(actor, command, decision, confirmed=True)

        return self._safely(run, actor)

    def _help(self, actor: Actor, *, topic: Verb | None = None, notice: str | None = None) -> Reply:
        resolved = self._roles.resolve(actor.user_id, self._directory)
        verbs = allowed_verbs(resolved.role)
        if not self._backend.has_overview:  # only what this SendGrid API has
            verbs = [verb for verb in verbs if verb is not Verb.OVERVIEW]
        return HelpReply(
            role=resolved.role,
            verbs=tuple(verbs),
            user_id=actor.user_id,
            auto_approve_max=self._auto_approve_max,
            topic=topic,
            notice=notice,
            recurring_dates=self._backend.has_recurring_dates,
        )

    def _execute(self, actor: Actor, command: Command, decision: Decision) -> Reply:
        if command.verb in DECIDING_VERBS:
            return self._decide(actor, command)
        if command.verb is Verb.THRESHOLD:
            assert command.user is not None
            assert command.amount is not None
            if self._alerts is None:
                return ErrorReply(messages.NO_ALERTS)
            self._alerts.set_threshold(
                command.user, command.amount, by=actor.user_id, at=self._clock()
            )
            self._audit(actor, AuditAction.THRESHOLD, command.user, f"below={command.amount}")
            return NoticeReply(
                messages.THRESHOLD_SET.format(user=command.user, below=f"{command.amount:,}")
            )
        if command.verb in (Verb.PENDING, Verb.AUDIT):
            if self._changes is None:
                return ErrorReply(messages.NO_STORE)
            if command.verb is Verb.PENDING:
                return self._changes.pending()
            return self._changes.audit(command.user)
        if command.verb is Verb.LOW:
            return self._need_outlook().low(now=self._clock())
        assert command.user is not None  # every other verb names a USER
        if command.verb is Verb.HISTORY:
            return self._need_outlook().history(command.user, now=self._clock())
        if command.verb is Verb.SHOW:
            return self._show(command.user)
        if command.verb is Verb.OVERVIEW:
            return OverviewReply(command.user, self._backend.get_overview(command.user))
        return self._change_now(actor, command, decision, confirmed=False)

    def _show(self, user: str) -> BalanceReply:
        """The balance now, judged as the digest judges it, when it runs out at the
        recent pace, and the week's trend from the sweeps' snapshots. Only the balance
        needs SendGrid: the rest is from the database, and left out when it fails."""
        balance = self._backend.get_balance(user)
        now = self._clock()
        hours_left = None
        if self._forecasts is not None:
            try:
                hours_left = self._forecasts.hours_left(user)
            except StoreError:  # the balance is worth answering without a forecast
                self._logger.warning("no forecast for %s: the database failed", user)
        if self._outlook is None or balance.unlimited:
            return BalanceReply(user, balance, hours_left=hours_left)
        try:
            outlook = self._outlook.of(user, balance, hours_left=hours_left, now=now)
        except StoreError:
            self._logger.warning("no status or trend for %s: the database failed", user)
            outlook = Outlook(None, None, None)
        return BalanceReply(
            user,
            balance,
            hours_left=hours_left,
            level=outlook.level,
            reason=outlook.reason,
            runs_out_at=runs_out_at(now, hours_left),
            trend=outlook.trend,
        )

    def _change_now(
        self, actor: Actor, command: Command, decision: Decision, *, confirmed: bool
    ) -> Reply:
        """A direct change: held for its author's confirmation when it is large or would
        end a recurring plan; an auto-approved one becomes a request past the budget."""
        change = command.change
        assert change is not None
        desk = self._desk()
        limits, keeps = desk.limits, desk.adjustments_keep_recurring

        def hold_if(before: Balance) -> ConfirmWhy | None:
            return confirmation_needed(change, before, limits, adjustments_keep_recurring=keeps)

        asks = not confirmed and may_need_confirmation(
            change, limits, adjustments_keep_recurring=keeps
        )
        try:
            outcome = desk.apply_directly(
                actor.user_id,
                change,
                auto_approved=decision.auto_approved,
                hold_if=hold_if if asks else None,
            )
        except ConfirmationRequired as held:
            confirmation_id = desk.hold_for_confirmation(
                actor.user_id, change, auto_approved=decision.auto_approved
            )
            return ConfirmReply(
                confirmation_id=confirmation_id,
                change=change,
                before=held.before,
                expected=change.expected_after(held.before),
                why=held.why,
                confirm_above=limits.confirm_above,
                links=desk.links,
            )
        if isinstance(outcome, BudgetUse):
            why_text = messages.BUDGET_SPENT.format(
                budget=desk.limits.auto_approve_budget,
                by_actor=outcome.by_actor,
                on_target=outcome.on_target,
                user=change.user,
            )
            self._logger.info(
                "auto-approve budget: %s by %s becomes a request", change.user, actor.user_id
            )
            return desk.request_approval(actor.user_id, change, why=why_text)
        result, recorded = outcome
        if result.outcome_unknown:
            self._logger.warning(
                "outcome unknown: %s %s for %s; re-read balance %s",
                command.verb,
                change.credits,
                command.user,
                result.after,
            )
        return ChangeReply(
            verb=command.verb,
            result=result,
            auto_approved=decision.auto_approved,
            auto_approve_max=self._auto_approve_max,
            recorded=recorded,
            links=desk.links,
        )

    def _decide(self, actor: Actor, command: Command) -> Reply:
        """`approve`/`deny`/`cancel`/`resolve ID`: the same calls the buttons make, so a
        command racing a click still executes once (one conditional update wins)."""
        assert command.request_id is not None
        desk = self._desk()
        match command.verb:
            case Verb.APPROVE:
                return desk.approve(command.request_id, actor.user_id)
            case Verb.DENY:
                return desk.deny(command.request_id, actor.user_id, command.reason)
            case Verb.CANCEL:
                return desk.cancel(command.request_id, actor.user_id)
            case _:
                assert command.applied is not None
                return desk.resolve(command.request_id, actor.user_id, applied=command.applied)


# What a request whose replay could not be checked may not do.
CHANGING_VERBS = frozenset(
    {Verb.ADD, Verb.REMOVE, Verb.SET, Verb.RECURRING, Verb.UNLIMIT, Verb.THRESHOLD} | DECIDING_VERBS
)


def _unchecked_change() -> ErrorReply:
    return ErrorReply(messages.NO_CHANGES_WITHOUT_DATABASE)


def _outcome(reply: Reply) -> str:
    """A command's outcome for metrics: ok, error, approval_requested or unknown."""
    if isinstance(reply, ErrorReply):
        return "error"
    if isinstance(reply, ApprovalRequestedReply):
        return "approval_requested"
    if isinstance(reply, ChangeReply) and reply.result.outcome_unknown:
        return "unknown"
    return "ok"


def _refusal(command: Command, decision: Decision, resolved: ResolvedRole) -> ErrorReply:
    fields = {
        "verb": command.verb.value,
        "role": decision.required.label,
        "current": resolved.role.label,
    }
    if decision.unverified is not None:
        message = messages.REFUSED_UNVERIFIED.format(reason=decision.unverified.reason, **fields)
    else:
        message = messages.REFUSED.format(**fields)
    return ErrorReply(message, usage=messages.USAGE_LINE.format(usage=USAGE[Verb.HELP]))


def _unknown_account(user: str | None, suggestion: str | None) -> ErrorReply:
    message = messages.SG_UNKNOWN_ACCOUNT.format(user=user or "?")
    if suggestion is not None:
        message += " " + messages.DID_YOU_MEAN_USER.format(suggestion=suggestion)
    return ErrorReply(message, next_step=messages.SG_UNKNOWN_ACCOUNT_NEXT)


def _sendgrid_reply(error: SendGridError, command: Command | None) -> ErrorReply:
    user = command.user if command and command.user else "?"
    if isinstance(error, AuthenticationFailed):
        return ErrorReply(messages.SG_AUTH, next_step=messages.SG_AUTH_NEXT)
    if isinstance(error, UnknownAccount):
        return ErrorReply(
            messages.SG_UNKNOWN_ACCOUNT.format(user=user),
            next_step=messages.SG_UNKNOWN_ACCOUNT_NEXT,
        )
    if isinstance(error, RequestRejected):
        detail = escape("; ".join(error.messages) or str(error))
        return ErrorReply(messages.SG_REJECTED.format(detail=detail))
    if isinstance(error, RateLimited):
        seconds = round(error.retry_after) if error.retry_after else None
        next_step = (
            messages.SG_RATE_LIMITED_NEXT.format(seconds=seconds)
            if seconds
            else messages.SG_RATE_LIMITED_NEXT_SOON
        )
        return ErrorReply(messages.SG_RATE_LIMITED, next_step=next_step)
    if isinstance(error, OutcomeUnknown):
        return ErrorReply(messages.SG_OUTCOME_UNKNOWN)
    if isinstance(error, BadResponse):
        return ErrorReply(messages.SG_BAD_RESPONSE, next_step=messages.SG_UNAVAILABLE_NEXT)
    return ErrorReply(messages.SG_UNAVAILABLE, next_step=messages.SG_UNAVAILABLE_NEXT)
