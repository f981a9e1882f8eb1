"""Handlers of the subcommands that only read: help, show, overview, pending, audit."""

from __future__ import annotations

from bot.commands.context import Call, Context
from bot.commands.replies import BalanceReply, HelpEntry, HelpReply, OverviewReply, Reply
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


def show_balance(context: Context, call: Call) -> Reply:
    user = call.command.user
    assert user is not None
    balance = context.backend.get_balance(user)
    hours_left = None
    if context.forecasts is not None:
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
    return context.desk().pending()


def show_audit(context: Context, call: Call) -> Reply:
    return context.desk().audit(call.command.user)
