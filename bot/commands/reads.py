"""Handlers of the subcommands that only read: help, whoami, show, overview, pending,
audit, low, history."""

from __future__ import annotations

from bot.commands import messages
from bot.commands.context import Call, Context
from bot.commands.grammar import USAGE_RECURRING_PLAIN
from bot.commands.outlook import Outlook
from bot.commands.replies import (
    BalanceReply,
    HelpEntry,
    HelpReply,
    NoticeReply,
    OverviewReply,
    Reply,
)
from bot.domain.history import runs_out_at
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
    backend = context.backend
    return HelpReply(
        role=role,
        entries=tuple(
            HelpEntry(
                name=record.name,
                usage=USAGE_RECURRING_PLAIN
                if record.name == "recurring" and not backend.has_recurring_dates
                else record.usage,
                sentence=record.help,
            )
            for record in context.subcommands
            if allows(role, record.action)
            # Only what this SendGrid API has: v3 has no reseller overview.
            and (record.name != "overview" or backend.has_overview)
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
    """The balance now, judged as the digest judges it, when it runs out at the recent
    pace, and the week's trend. Only the balance needs SendGrid: the rest is from the
    database, and left out when that fails."""
    user = call.command.user
    assert user is not None
    balance = context.backend.get_balance(user)
    now = context.clock()
    hours_left = None
    try:
        hours_left = context.forecasts.hours_left(user)
    except StoreError:  # the balance is worth answering without a forecast
        context.logger.warning("no forecast for %s: the database failed", user)
    if balance.unlimited:
        return BalanceReply(user, balance, hours_left=hours_left)
    try:
        outlook = context.outlook.of(user, balance, hours_left=hours_left, now=now)
    except StoreError:
        context.logger.warning("no status or trend for %s: the database failed", user)
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


def list_low(context: Context, call: Call) -> Reply:
    """`/credits low`: from stored state, no SendGrid call."""
    return context.outlook.low(now=context.clock())


def show_history(context: Context, call: Call) -> Reply:
    """`/credits history USER`: 30 days of snapshots (the Slack transport draws them)."""
    user = call.command.user
    assert user is not None
    return context.outlook.history(user, now=context.clock())


def show_overview(context: Context, call: Call) -> Reply:
    user = call.command.user
    assert user is not None
    return OverviewReply(user, context.backend.get_overview(user))


def list_pending(context: Context, call: Call) -> Reply:
    return context.changes.pending()


def show_audit(context: Context, call: Call) -> Reply:
    return context.changes.audit(call.command.user)
