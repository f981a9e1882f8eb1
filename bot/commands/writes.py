"""Handlers of the subcommands that change something: credit changes, alert
thresholds, and decisions on approval requests."""

from __future__ import annotations

from bot.commands import messages
from bot.commands.context import Actor, Call, Context
from bot.commands.grammar import Command
from bot.commands.replies import ChangeReply, ConfirmReply, ErrorReply, NoticeReply, Reply
from bot.domain.approvals import AuditAction
from bot.domain.credits import Balance, CreditChange
from bot.domain.policy import (
    BudgetUse,
    ConfirmWhy,
    Decision,
    confirmation_needed,
    may_need_confirmation,
    over_ceiling,
)
from bot.errors import ConfirmationRequired


def change_credits(context: Context, call: Call) -> Reply:
    """`add`, `remove`, `set`, `recurring`, `unlimit` that may run now."""
    return change_now(context, call.actor, call.command, call.decision, confirmed=False)


def change_now(
    context: Context, actor: Actor, command: Command, decision: Decision, *, confirmed: bool
) -> Reply:
    """A direct change: held for its author's confirmation when it is large or would
    end a recurring plan; an auto-approved one becomes a request past the budget."""
    change = command.change
    assert change is not None
    desk = context.changes
    limits, keeps = desk.limits, desk.adjustments_keep_recurring

    def hold_if(before: Balance) -> ConfirmWhy | None:
        return confirmation_needed(change, before, limits, adjustments_keep_recurring=keeps)

    asks = not confirmed and may_need_confirmation(change, limits, adjustments_keep_recurring=keeps)
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
        context.logger.info(
            "auto-approve budget: %s by %s becomes a request", change.user, actor.user_id
        )
        return desk.request_approval(actor.user_id, change, why=why_text)
    result, recorded = outcome
    if result.outcome_unknown:
        context.logger.warning(
            "outcome unknown: %s %s for %s; re-read balance %s",
            command.verb,
            change.credits,
            command.user,
            result.after,
        )
    return ChangeReply(
        verb=command.verb.value,
        result=result,
        auto_approved=decision.auto_approved,
        auto_approve_max=context.auto_approve_max,
        recorded=recorded,
        links=desk.links,
    )


def limits_refusal(context: Context, change: CreditChange) -> ErrorReply | None:
    """The limits that hold for every role: the ceiling, and a required reason."""
    limits = context.changes.limits
    if over_ceiling(change, limits):
        assert change.credits is not None
        assert limits.max_change is not None
        return ErrorReply(
            messages.OVER_CEILING.format(credits=change.credits, limit=limits.max_change)
        )
    if limits.require_reason and not change.reason:
        return ErrorReply(messages.REASON_REQUIRED)
    return None


def set_threshold(context: Context, call: Call) -> Reply:
    user, amount = call.command.user, call.command.amount
    assert user is not None
    assert amount is not None
    context.alerts.set_threshold(user, amount, by=call.actor.user_id, at=context.clock())
    context.audit(call.actor, AuditAction.THRESHOLD, user, f"below={amount}")
    return NoticeReply(messages.THRESHOLD_SET.format(user=user, below=f"{amount:,}"))


# `approve`/`deny`/`cancel`/`resolve ID`: the same calls the buttons make, so a command
# racing a click still executes once (one conditional update wins).


def approve_request(context: Context, call: Call) -> Reply:
    assert call.command.request_id is not None
    return context.changes.approve(call.command.request_id, call.actor.user_id)


def deny_request(context: Context, call: Call) -> Reply:
    assert call.command.request_id is not None
    return context.changes.deny(call.command.request_id, call.actor.user_id, call.command.reason)


def cancel_request(context: Context, call: Call) -> Reply:
    assert call.command.request_id is not None
    return context.changes.cancel(call.command.request_id, call.actor.user_id)


def resolve_request(context: Context, call: Call) -> Reply:
    assert call.command.request_id is not None
    assert call.command.applied is not None
    return context.changes.resolve(
        call.command.request_id, call.actor.user_id, applied=call.command.applied
    )
