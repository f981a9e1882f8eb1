"""Handlers of the subcommands that only read: help, whoami, show, overview, pending,
audit."""

from __future__ import annotations

from bot.commands import messages
from bot.commands.context import Call, Context
from bot.commands.replies import (
    BalanceReply,
    HelpEntry,
    HelpReply,
    NoticeReply,
    OverviewReply,
    Reply,
)
from bot.domain.policy import Role, allows
from bot.errors import StoreError


def help_reply(
    context: Context,
    user_id: str,
    role: Role,
    *,
    topic: str | None = None,
    notice: str | None = None,
) -> HelpReply:
    """The subcommands `role` may use, as their records describe them."""
    return HelpReply(
        role=role,
        entries=tuple(
            HelpEntry(name=record.name, usage=record.usage, sentence=record.help)
            for record in context.subcommands
            if allows(role, record.action)
        ),
        user_id=user_id,
        auto_approve_max=context.auto_approve_max,
        topic=topic,
        notice=notice,
    )


def show_help(context: Context, call: Call) -> Reply:
    return help_reply(context, call.actor.user_id, call.resolved.role, topic=call.command.topic)


def whoami(context: Context, call: Call) -> Reply:
    """Your role, the subcommands it allows, and the user or group ID that granted it
    (or that nothing did, or that your groups could not be checked)."""
    user_id = call.actor.user_id
    grant = context.roles.explain(user_id, context.directory)
    lines = [messages.WHOAMI_ROLE.format(role=grant.role.label)]
    if grant.granted_by is None:
        lines.append(messages.WHOAMI_NOTHING.format(user_id=user_id))
    elif grant.granted_by == user_id:
        lines.append(messages.WHOAMI_BY_USER.format(id=user_id))
    else:
        lines.append(messages.WHOAMI_BY_GROUP.format(id=grant.granted_by))
    if grant.unverified is not None:
        lines.append(messages.WHOAMI_UNVERIFIED.format(reason=grant.unverified.reason))
    names = [f"`{r.name}`" for r in context.subcommands if allows(grant.role, r.action)]
    lines.append(messages.WHOAMI_MAY.format(names=", ".join(names)))
    if grant.role is Role.OPERATOR:
        lines.append(
            messages.HELP_OPERATOR_NOTE.format(limit=context.auto_approve_max)
            if context.auto_approve_max
            else messages.HELP_OPERATOR_NOTE_NO_AUTO
        )
    return NoticeReply("\n".join(lines))


def show_balance(context: Context, call: Call) -> Reply:
    user = call.command.user
    assert user is not None
    balance = context.backend.get_balance(user)
    hours_left = None
    try:
        hours_left = context.forecasts.hours_left(user)
    except StoreError:  # the balance is worth answering without a forecast
        context.logger.warning("no forecast for %s: the database failed", user)
    return BalanceReply(user, balance, hours_left=hours_left)


def show_overview(context: Context, call: Call) -> Reply:
    user = call.command.user
    assert user is not None
    return OverviewReply(user, context.backend.get_overview(user))


def list_pending(context: Context, call: Call) -> Reply:
    return context.changes.pending()


def show_audit(context: Context, call: Call) -> Reply:
    return context.changes.audit(call.command.user)
