"""Reply content as labelled lines, shared by the Block Kit and console renderers.

Text is Slack mrkdwn (`*bold*`, `code`); the console strips the markers.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.commands import messages
from bot.commands.grammar import USAGE
from bot.commands.replies import (
    BalanceReply,
    ChangeReply,
    ErrorReply,
    HelpReply,
    OverviewReply,
    Reply,
)
from bot.domain.credits import Balance
from bot.domain.policy import Role, Verb

BAR_WIDTH = 20


@dataclass(frozen=True, slots=True)
class Section:
    """One block of content: an optional title line, text, and label/value fields."""

    text: str = ""
    fields: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Content:
    """A reply laid out for display: headline, sections, and small print."""

    headline: str
    sections: tuple[Section, ...]
    notes: tuple[str, ...] = ()
    fallback: str = ""
    warning: bool = False


def number(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


def escape(text: str) -> str:
    """Escape Slack's three control characters in text that came from outside."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def usage_bar(balance: Balance, width: int = BAR_WIDTH) -> str | None:
    """`▓▓▓▓▓░░░░░ 62%` of the recurring allowance left, or None without an allowance."""
    percent = balance.percent_of_allowance()
    if percent is None:
        return None
    shown = max(0.0, min(100.0, percent))
    filled = round(width * shown / 100)
    return f"`{'▓' * filled}{'░' * (width - filled)}` {percent:.0f}% left"


def balance_summary(balance: Balance) -> str:
    if balance.unlimited:
        return "no limit"
    return f"{number(balance.remaining)} credits"


def layout(reply: Reply) -> Content:
    """Turn any Reply into display content."""
    match reply:
        case HelpReply():
            return _help(reply)
        case BalanceReply():
            return _balance(reply)
        case OverviewReply():
            return _overview(reply)
        case ChangeReply():
            return _change(reply)
        case ErrorReply():
            return _error(reply)


def _help(reply: HelpReply) -> Content:
    verbs = (reply.topic,) if reply.topic in reply.verbs else reply.verbs
    lines = [
        f"`{USAGE[verb]}` — {messages.HELP_DESCRIPTIONS[verb.value]}"
        for verb in verbs
        if verb is not Verb.HELP or len(verbs) == 1
    ]
    notes = []
    if reply.role is Role.NONE:
        intro = messages.HELP_NO_ROLE.format(user_id=reply.user_id)
    else:
        intro = messages.HELP_INTRO.format(role=reply.role.label)
    if reply.role is Role.OPERATOR:
        notes.append(
            messages.HELP_OPERATOR_NOTE.format(limit=reply.auto_approve_max)
            if reply.auto_approve_max
            else messages.HELP_OPERATOR_NOTE_NO_AUTO
        )
    sections = [Section(reply.notice)] if reply.notice else []
    sections.append(Section(intro))
    if lines and reply.role is not Role.NONE:
        sections.append(Section("\n".join(lines)))
    return Content(
        headline=messages.HELP_TITLE,
        sections=tuple(sections),
        notes=tuple(notes),
        fallback=reply.notice
        or f"{messages.HELP_TITLE}: {', '.join(v.value for v in reply.verbs)}",
        warning=reply.notice is not None,
    )


def balance_section(balance: Balance) -> Section:
    if balance.unlimited:
        return Section(messages.UNLIMITED)
    lines = [messages.REMAINING.format(remaining=number(balance.remaining))]
    if balance.allowance is not None:
        period = balance.period.value if balance.period else messages.PERIOD_UNKNOWN
        lines[0] += " " + messages.OF_ALLOWANCE.format(
            allowance=number(balance.allowance), period=period
        )
        bar = usage_bar(balance)
        if bar:
            lines.append(bar)
    else:
        lines.append(messages.NOT_RECURRING)
    if balance.last_reset:
        lines.append(messages.LAST_RESET.format(date=balance.last_reset.isoformat()))
    return Section("\n".join(lines))


def _balance(reply: BalanceReply) -> Content:
    return Content(
        headline=reply.user,
        sections=(balance_section(reply.balance),),
        fallback=f"{reply.user}: {balance_summary(reply.balance)}",
    )


def _overview(reply: OverviewReply) -> Content:
    o = reply.overview
    billing = f"{o.billing_start} – {o.billing_end}" if o.billing_start and o.billing_end else "—"
    fields = (
        ("Package", o.package or "—"),
        ("Reputation", f"{o.reputation:g}%" if o.reputation is not None else "—"),
        ("Credits allowed", number(o.credits_allowed)),
        ("Credits used", number(o.credits_used)),
        ("Credits remaining", number(o.credits_remain)),
        ("Overage", number(o.credits_overage)),
        ("Requests", number(o.requests)),
        ("Billing period", billing),
        ("Billing processed", o.billing_process.isoformat() if o.billing_process else "—"),
    )
    return Content(
        headline=messages.OVERVIEW_TITLE.format(user=reply.user),
        sections=(Section(fields=fields),),
        fallback=f"{reply.user}: {o.package or 'no package'}, {number(o.credits_remain)} left",
    )


def _change(reply: ChangeReply) -> Content:
    result = reply.result
    user = result.change.user
    after = (
        balance_summary(result.after)
        if result.after
        else messages.BALANCE_UNREADABLE.format(user=user)
    )
    before_after = messages.BEFORE_AFTER.format(before=balance_summary(result.before), after=after)
    sections = []
    if result.outcome_unknown:
        sections.append(Section(messages.CHANGE_UNKNOWN))
    else:
        done = messages.CHANGE_DONE.format(verb=reply.verb.value.capitalize(), user=user)
        sections.append(Section(f"{done}\n{before_after}"))
    if result.after is not None:
        sections.append(balance_section(result.after))
    notes = []
    if result.outcome_unknown:
        notes.append(f"Before the change: {balance_summary(result.before)}")
    if reply.auto_approved:
        notes.append(messages.CHANGE_AUTO.format(limit=reply.auto_approve_max))
    return Content(
        headline=user,
        sections=tuple(sections),
        notes=tuple(notes),
        fallback=f"{reply.verb.value} {user}: {before_after}",
        warning=result.outcome_unknown,
    )


def _error(reply: ErrorReply) -> Content:
    notes = tuple(n for n in (reply.usage, reply.next_step) if n)
    return Content(
        headline=messages.ERROR_TITLE,
        sections=(Section(reply.message),),
        notes=notes,
        fallback=reply.message,
        warning=True,
    )
