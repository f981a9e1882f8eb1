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

from bot.commands import messages
from bot.commands.grammar import USAGE, Command, UnknownSubcommand, UsageError, parse
from bot.commands.replies import (
    BalanceReply,
    ChangeReply,
    ErrorReply,
    HelpReply,
    OverviewReply,
    Reply,
)
from bot.domain.credits import CreditsBackend, apply_change
from bot.domain.policy import (
    Decision,
    GroupDirectory,
    Outcome,
    ResolvedRole,
    RoleBook,
    Verb,
    allowed_verbs,
    decide,
)
from bot.errors import (
    AuthenticationFailed,
    BadResponse,
    DirectoryError,
    OutcomeUnknown,
    RateLimited,
    RequestRejected,
    SendGridError,
    UnknownAccount,
    UserError,
)


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
        auto_approve_max: int = 0,
        logger: logging.Logger | None = None,
        new_error_id: Callable[[], str] = lambda: uuid.uuid4().hex[:10],
    ) -> None:
        self._backend = backend
        self._roles = roles
        self._directory = directory
        self._auto_approve_max = auto_approve_max
        self._logger = logger or logging.getLogger("bot.commands")
        self._new_error_id = new_error_id

    def handle(self, actor: Actor, text: str) -> Reply:
        """Answer one command. Never raises: every failure becomes an ErrorReply."""
        command: Command | None = None
        try:
            command = parse(text)
            reply = self._run(actor, command)
        except UnknownSubcommand as error:
            reply = self._help(actor, notice=str(error))
        except UsageError as error:
            reply = ErrorReply(
                str(error),
                usage=messages.USAGE_LINE.format(usage=error.usage) if error.usage else None,
            )
        except UserError as error:
            reply = ErrorReply(str(error))
        except DirectoryError as error:
            reply = ErrorReply(messages.DIRECTORY_FAILED.format(reason=error.reason))
        except SendGridError as error:
            reply = _sendgrid_reply(error, command)
        except Exception:  # the central handler: log it, answer with an error id
            error_id = self._new_error_id()
            self._logger.exception("unexpected error %s handling a command", error_id)
            reply = ErrorReply(
                messages.UNEXPECTED, next_step=messages.UNEXPECTED_NEXT.format(error_id=error_id)
            )
        self._logger.info(
            "command user=%s verb=%s target=%s reply=%s",
            actor.user_id,
            command.verb if command else "-",
            command.user if command and command.user else "-",
            type(reply).__name__,
        )
        return reply

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
        if decision.outcome is Outcome.NEEDS_APPROVAL:
            return ErrorReply(
                messages.NEEDS_APPROVAL_UNAVAILABLE.format(verb=command.verb.value),
                usage=None,
            )
        return self._execute(command, decision)

    def _help(self, actor: Actor, *, topic: Verb | None = None, notice: str | None = None) -> Reply:
        resolved = self._roles.resolve(actor.user_id, self._directory)
        return HelpReply(
            role=resolved.role,
            verbs=tuple(allowed_verbs(resolved.role)),
            user_id=actor.user_id,
            auto_approve_max=self._auto_approve_max,
            topic=topic,
            notice=notice,
        )

    def _execute(self, command: Command, decision: Decision) -> Reply:
        assert command.user is not None  # every verb past help names a USER
        if command.verb is Verb.SHOW:
            return BalanceReply(command.user, self._backend.get_balance(command.user))
        if command.verb is Verb.OVERVIEW:
            return OverviewReply(command.user, self._backend.get_overview(command.user))
        assert command.change is not None
        result = apply_change(self._backend, command.change)
        if result.outcome_unknown:
            self._logger.warning(
                "outcome unknown: %s %s for %s; re-read balance %s",
                command.verb,
                command.change.credits,
                command.user,
                result.after,
            )
        return ChangeReply(
            verb=command.verb,
            result=result,
            auto_approved=decision.auto_approved,
            auto_approve_max=self._auto_approve_max,
        )


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
        detail = "; ".join(error.messages) or str(error)
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
