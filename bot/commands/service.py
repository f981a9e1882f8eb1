"""The one call every transport makes: `CommandService.handle(actor, text) → Reply`.

It is also the one place where failures become replies: a `UserError` is a
clear message; a SendGrid failure says what happened and what to do next;
anything unexpected is logged with its traceback and answered with an error id.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from bot.commands import messages, registry
from bot.commands.changes import ChangeService
from bot.commands.context import Actor, Call, Context
from bot.commands.formatting import escape, recent_top_up_note
from bot.commands.grammar import USAGE_RECURRING_PLAIN, Command, UnknownSubcommand, UsageError
from bot.commands.outlook import AccountOutlook
from bot.commands.reads import help_reply
from bot.commands.registry import USAGE, Verb
from bot.commands.replies import (
    ApprovalRequestedReply,
    BalanceReply,
    ChangeReply,
    ErrorReply,
    NoticeReply,
    Reply,
)
from bot.commands.sweep import ForecastCache
from bot.commands.writes import change_now, limits_refusal
from bot.domain.alerts import Thresholds
from bot.domain.approvals import AuditAction
from bot.domain.credits import Balance
from bot.domain.policy import Action, Decision, Outcome, ResolvedRole, decide, refusal
from bot.domain.ports import AlertStore
from bot.errors import (
    AuthenticationFailed,
    BadResponse,
    BotError,
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

__all__ = ["Actor", "CommandService"]  # Actor is the service's argument; it lives in context

# A top-up this recent is pointed out before someone adds credits again from the digest.
RECENT_TOP_UP = timedelta(hours=1)


class CommandService:
    """Parses, authorizes and executes `/credits` commands against a credits backend.

    It shares the change service's collaborators (backend, role book, directory,
    store) rather than being given them again."""

    def __init__(
        self,
        *,
        changes: ChangeService,
        alerts: AlertStore,
        auto_approve_max: int = 0,
        logger: logging.Logger | None = None,
        new_error_id: Callable[[], str] = lambda: uuid.uuid4().hex[:10],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        metrics: Metrics = NO_METRICS,
        thresholds: Thresholds | None = None,
        horizon: timedelta | None = None,
        balances_seen: Callable[[list[tuple[str, Balance]]], None] | None = None,
    ) -> None:
        self._metrics = metrics
        # Every balance a command read (`show`, and add/remove/set's re-read) goes to
        # the low-credit watch at once: an alert or recovery without another call.
        self._balances_seen = balances_seen
        self._backend = changes.backend
        self._roles = changes.roles
        self._directory = changes.directory
        self._changes = changes
        self._alerts = alerts
        self._forecasts = ForecastCache(alerts, clock=clock)
        self._auto_approve_max = auto_approve_max
        self._logger = logger or logging.getLogger("bot.commands")
        self._new_error_id = new_error_id
        self._store = changes.store
        self._clock = clock
        self._context = Context(
            backend=changes.backend,
            roles=changes.roles,
            directory=changes.directory,
            changes=changes,
            alerts=alerts,
            forecasts=self._forecasts,
            store=changes.store,
            auto_approve_max=auto_approve_max,
            logger=self._logger,
            clock=clock,
            subcommands=registry.SUBCOMMANDS,
            # The sweep's thresholds and early-warning window: show and low judge a
            # balance as the digest does.
            outlook=AccountOutlook(
                alerts,
                thresholds=thresholds,
                horizon_hours=horizon.total_seconds() / 3600 if horizon else None,
            ),
        )

    def handle(self, actor: Actor, text: str, *, replay_checked: bool = True) -> Reply:
        """Answer one command. Never raises: every failure becomes an ErrorReply.

        `replay_checked=False` (the database could not record the request, so a
        replay of it would go unnoticed): reads are answered, changes refused.
        """
        return self._answer(actor, lambda: registry.parse(text), replay_checked=replay_checked)

    def _answer(
        self, actor: Actor, make_command: Callable[[], Command], *, replay_checked: bool
    ) -> Reply:
        parsed: list[Command] = []

        def run() -> Reply:
            command = make_command()
            parsed.append(command)
            if not replay_checked and registry.BY_VERB[command.verb].changes_state:
                return _unchecked_change()
            return self._run(actor, command)

        reply = self._safely(run, actor, lambda: parsed[0] if parsed else None)
        self._handled(actor, parsed[0] if parsed else None, reply)
        return reply

    def handle_command(
        self, actor: Actor, command: Command, *, replay_checked: bool = True
    ) -> Reply:
        """Answer a command already parsed (a form's fields, see `command_from_fields`):
        the same roles, approvals, policy and confirmations as `handle`. Never raises."""
        return self._answer(actor, lambda: command, replay_checked=replay_checked)

    def _handled(self, actor: Actor, command: Command | None, reply: Reply) -> None:
        self._feed_alerts(reply)
        self._logger.info(
            "command user=%s verb=%s target=%s reply=%s",
            actor.user_id,
            command.verb if command else "-",
            command.user if command and command.user else "-",
            type(reply).__name__,
        )
        self._metrics.command_handled(command.verb.value if command else "invalid", _outcome(reply))

    def _feed_alerts(self, reply: Reply) -> None:
        if self._balances_seen is None:
            return
        seen: list[tuple[str, Balance]] = []
        if isinstance(reply, BalanceReply):
            seen.append((reply.user, reply.balance))
        elif isinstance(reply, ChangeReply) and reply.result.after is not None:
            seen.append((reply.result.change.user, reply.result.after))
        if not seen:
            return
        try:
            self._balances_seen(seen)
        except BotError as error:  # the reply stands; the clock's watch reads it later
            self._logger.warning("low-credit state not updated: %s", type(error).__name__)

    def approve(self, actor: Actor, request_id: int, *, replay_checked: bool = True) -> Reply:
        """An Approve click: execute the request at most once, or say why not."""
        if not replay_checked:
            return _unchecked_change()
        return self._safely(lambda: self._changes.approve(request_id, actor.user_id), actor)

    def deny(
        self, actor: Actor, request_id: int, reason: str | None, *, replay_checked: bool = True
    ) -> Reply:
        if not replay_checked:
            return _unchecked_change()
        return self._safely(lambda: self._changes.deny(request_id, actor.user_id, reason), actor)

    def refusal_to_decide(self, actor: Actor, request_id: int) -> ErrorReply | None:
        """Before opening the Deny dialog: why this person may not decide, if so."""
        reply = self._safely(
            lambda: self._changes.refusal(request_id, actor.user_id) or NoticeReply(""), actor
        )
        return reply if isinstance(reply, ErrorReply) else None

    def may_see(self, actor: Actor) -> bool:
        """Whether this person may read balances (the type-ahead lists subusers to them
        only); a failed lookup answers no."""
        try:
            role = self._roles.resolve(actor.user_id, self._directory).role
        except DirectoryError:
            return False
        return refusal(Action.READ_BALANCES, role) is None

    def refusal_to_change(self, actor: Actor, command: Command) -> ErrorReply | None:
        """Before a form closes: why this person may not ask for this change, if so —
        the access filter and the limits every role is held to. No SendGrid call."""

        def run() -> Reply:
            refused, _, _ = self._checked(actor, command)
            return refused or NoticeReply("")

        reply = self._safely(run, actor, lambda: command)
        return reply if isinstance(reply, ErrorReply) else None

    def snooze(
        self, actor: Actor, user: str, *, hours: int = 24, replay_checked: bool = True
    ) -> Reply:
        """The digest's Snooze button: silence a subuser's alerts (operators and up)."""
        if not replay_checked:
            return _unchecked_change()

        def run() -> Reply:
            resolved = self._roles.resolve(actor.user_id, self._directory)
            if refusal(Action.SNOOZE_ALERTS, resolved.role) is not None:
                return ErrorReply(messages.SNOOZE_NEEDS.format(role=resolved.role.label))
            now = self._clock()
            until = now + timedelta(hours=hours)
            self._alerts.snooze(user, until=until)
            self._context.audit(
                actor, AuditAction.SNOOZED, user, f"until {until:%Y-%m-%d %H:%M} UTC"
            )
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
        edits build on each other; None if the database failed."""
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

    def _close_match(self, user: str | None) -> str | None:
        """A known subuser close to one SendGrid does not know, from the database."""
        if user is None:
            return None
        try:
            return self._context.outlook.close_match(user)
        except StoreError:
            return None

    def _safely(
        self,
        run: Callable[[], Reply],
        actor: Actor,
        command: Callable[[], Command | None] = lambda: None,
    ) -> Reply:
        """The one place where failures become replies."""
        if self._changes.stopping.is_set():
            return ErrorReply(messages.RESTARTING)
        try:
            return run()
        except UnknownSubcommand as error:
            return self._help(actor, notice=str(error))
        except UsageError as error:
            usage = error.usage
            if usage == USAGE[Verb.RECURRING] and not self._backend.has_recurring_dates:
                usage = USAGE_RECURRING_PLAIN  # v3: no start=/end=/initial=
            return ErrorReply(
                str(error), usage=messages.USAGE_LINE.format(usage=usage) if usage else None
            )
        except UserError as error:
            return ErrorReply(str(error))
        except DirectoryError as error:
            return ErrorReply(messages.DIRECTORY_FAILED.format(reason=error.reason))
        except UnknownAccount:
            parsed = command()
            user = parsed.user if parsed else None
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

    def _checked(
        self, actor: Actor, command: Command
    ) -> tuple[ErrorReply | None, Decision, ResolvedRole]:
        """The access filter, then the limits every role is held to: why not, if not."""
        resolved = self._roles.resolve(actor.user_id, self._directory)
        decision = decide(
            registry.BY_VERB[command.verb].action,
            resolved,
            change=command.change.kind if command.change else None,
            credits=command.credits,
            auto_approve_max=self._auto_approve_max,
        )
        if decision.outcome is Outcome.REFUSE:
            return _refusal(command, decision, resolved), decision, resolved
        if command.change is not None:
            return limits_refusal(self._context, command.change), decision, resolved
        return None, decision, resolved

    def _run(self, actor: Actor, command: Command) -> Reply:
        """The access filter, the limits every role is held to, then the record's handler."""
        record = registry.BY_VERB[command.verb]
        refused, decision, resolved = self._checked(actor, command)
        if refused is not None:
            return refused
        if decision.outcome is Outcome.NEEDS_APPROVAL:
            assert command.change is not None  # only changes wait for approval
            return self._changes.request_approval(actor.user_id, command.change)
        return record.handle(self._context, Call(actor, command, resolved, decision))

    def confirm(
        self, actor: Actor, confirmation_id: int, *, confirm: bool, replay_checked: bool = True
    ) -> Reply:
        """A Confirm (or Cancel) click on a held change: runs it at most once, by its
        author only, under the roles and budget as they are now."""
        if not replay_checked:
            return _unchecked_change()

        def run() -> Reply:
            taken = self._changes.take_confirmation(confirmation_id, actor.user_id, confirm=confirm)
            if taken is None:
                return ErrorReply(messages.CONFIRM_GONE)
            if not confirm:
                return NoticeReply(messages.CONFIRM_CANCELLED)
            change, _ = taken
            verb = Verb(change.kind.value)
            resolved = self._roles.resolve(actor.user_id, self._directory)
            decision = decide(
                registry.BY_VERB[verb].action,
                resolved,
                change=change.kind,
                credits=change.credits,
                auto_approve_max=self._auto_approve_max,
            )
            command = Command(verb, user=change.user, change=change)
            if decision.outcome is Outcome.REFUSE:
                return _refusal(command, decision, resolved)
            refused = limits_refusal(self._context, change)
            if refused is not None:
                return refused
            if decision.outcome is Outcome.NEEDS_APPROVAL:
                return self._changes.request_approval(actor.user_id, change)
            return change_now(self._context, actor, command, decision, confirmed=True)

        return self._safely(run, actor)

    def _help(self, actor: Actor, *, notice: str | None = None) -> Reply:
        resolved = self._roles.resolve(actor.user_id, self._directory)
        return help_reply(self._context, actor.user_id, resolved.role, notice=notice)


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
