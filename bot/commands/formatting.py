"""Reply content as labelled lines, shared by the Block Kit and console renderers.

Text is Slack mrkdwn (`*bold*`, `code`); the console strips the markers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote

from bot.commands import messages
from bot.commands.replies import (
    NO_TICKET_LINKS,
    ApprovalRequestedReply,
    AuditReply,
    BalanceReply,
    ChangeReply,
    ConfirmReply,
    ErrorReply,
    HelpReply,
    NoticeReply,
    OverviewReply,
    PendingReply,
    ReasonLinks,
    Reply,
)
from bot.domain.approvals import (
    ApprovalRequest,
    AuditAction,
    AuditEvent,
    Reminder,
    RequestStatus,
)
from bot.domain.credits import Balance, CreditChange
from bot.domain.policy import ConfirmWhy, Role

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


_URL = re.compile(r"https?://[^\s<>|]+")


def linked_reason(reason: str, links: ReasonLinks = NO_TICKET_LINKS) -> str:
    """A reason as mrkdwn: escaped, with URLs and (when a ticket URL is set) ticket ids
    as links. `ZD-4411 see https://x/y` → `<https://…/ZD-4411|ZD-4411> see <https://x/y>`."""
    patterns = [_URL.pattern]
    if links.ticket_url:
        patterns.append(f"(?P<ticket>{links.ticket_pattern})")
    out, last = [], 0
    for match in re.finditer("|".join(f"(?:{p})" for p in patterns), reason):
        out.append(escape(reason[last : match.start()]))
        text = match.group(0)
        if links.ticket_url and match.groupdict().get("ticket"):
            url = links.ticket_url.format(ticket=quote(text, safe=""))
            out.append(f"<{escape(url)}|{escape(text)}>")
        else:
            out.append(f"<{escape(text)}>")
        last = match.end()
    out.append(escape(reason[last:]))
    return "".join(out)


def usage_bar(balance: Balance, width: int = BAR_WIDTH) -> str | None:
    """`▓▓▓▓▓░░░░░ 62%` of the recurring allowance left, or None without an allowance."""
    percent = balance.percent_of_allowance()
    if percent is None:
        return None
    shown = max(0.0, min(100.0, percent))
    filled = round(width * shown / 100)
    return messages.USAGE_BAR.format(bar=f"{'▓' * filled}{'░' * (width - filled)}", percent=percent)


def balance_summary(balance: Balance) -> str:
    if balance.unlimited:
        return messages.NO_LIMIT
    return messages.CREDITS.format(credits=number(balance.remaining))


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
        case NoticeReply():
            return Content(
                headline=messages.ERROR_TITLE if reply.warning else messages.HELP_TITLE,
                sections=(Section(reply.message),),
                fallback=reply.message,
                warning=reply.warning,
            )
        case ApprovalRequestedReply():
            return _approval_requested(reply)
        case ConfirmReply():
            return _confirm(reply)
        case PendingReply():
            return _pending(reply)
        case AuditReply():
            return _audit(reply)


def _help(reply: HelpReply) -> Content:
    entries = tuple(e for e in reply.entries if e.name == reply.topic) or reply.entries
    lines = [
        f"`{entry.usage}` — {entry.sentence}"
        for entry in entries
        if entry.name != "help" or len(entries) == 1
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
        or f"{messages.HELP_TITLE}: {', '.join(e.name for e in reply.entries)}",
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
    notes: tuple[str, ...] = ()
    if reply.hours_left is not None and not reply.balance.unlimited:
        notes = (messages.RUNS_OUT.format(hours=max(1, round(reply.hours_left))),)
    return Content(
        headline=reply.user,
        sections=(balance_section(reply.balance),),
        notes=notes,
        fallback=f"{reply.user}: {balance_summary(reply.balance)}",
    )


def _overview(reply: OverviewReply) -> Content:
    o = reply.overview
    billing = f"{o.billing_start} – {o.billing_end}" if o.billing_start and o.billing_end else "—"
    fields = (
        (messages.OVERVIEW_PACKAGE, escape(o.package) if o.package else "—"),
        (messages.OVERVIEW_REPUTATION, f"{o.reputation:g}%" if o.reputation is not None else "—"),
        (messages.OVERVIEW_ALLOWED, number(o.credits_allowed)),
        (messages.OVERVIEW_USED, number(o.credits_used)),
        (messages.OVERVIEW_REMAINING, number(o.credits_remain)),
        (messages.OVERVIEW_OVERAGE, number(o.credits_overage)),
        (messages.OVERVIEW_REQUESTS, number(o.requests)),
        (messages.OVERVIEW_BILLING_PERIOD, billing),
        (
            messages.OVERVIEW_BILLING_PROCESSED,
            o.billing_process.isoformat() if o.billing_process else "—",
        ),
    )
    return Content(
        headline=messages.OVERVIEW_TITLE.format(user=reply.user),
        sections=(Section(fields=fields),),
        fallback=messages.OVERVIEW_FALLBACK.format(
            user=reply.user,
            package=escape(o.package or messages.OVERVIEW_NO_PACKAGE),
            remaining=number(o.credits_remain),
        ),
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
        done = messages.CHANGE_DONE.format(verb=reply.verb.capitalize(), user=user)
        sections.append(Section(f"{done}\n{before_after}"))
    if result.after is not None:
        sections.append(balance_section(result.after))
    notes = []
    if result.outcome_unknown:
        notes.append(messages.BEFORE_THE_CHANGE.format(before=balance_summary(result.before)))
    if result.change.reason:
        notes.append(
            messages.REASON_LINE.format(reason=linked_reason(result.change.reason, reply.links))
        )
    if reply.auto_approved:
        notes.append(messages.CHANGE_AUTO.format(limit=reply.auto_approve_max))
    if not reply.recorded:
        notes.append(messages.NOT_RECORDED_YET)
    return Content(
        headline=user,
        sections=tuple(sections),
        notes=tuple(notes),
        fallback=f"{reply.verb} {user}: {before_after}",
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


# --- approvals ---------------------------------------------------------------------------


def change_summary(change: CreditChange) -> str:
    """`add 5,000`, `recurring 3,000 weekly from 2026-12-01`, `unlimit`."""
    parts = [change.kind.value]
    if change.credits is not None:
        parts.append(number(change.credits))
    if change.period:
        parts.append(change.period.value)
    if change.start:
        parts.append(messages.SUMMARY_FROM.format(date=change.start.isoformat()))
    if change.end:
        parts.append(messages.SUMMARY_UNTIL.format(date=change.end.isoformat()))
    if change.initial is not None:
        parts.append(messages.SUMMARY_STARTING_AT.format(credits=number(change.initial)))
    return " ".join(parts)


def request_summary(request: ApprovalRequest) -> str:
    return f"{change_summary(request.change)} for {request.change.user}"


def approval_request_content(
    request: ApprovalRequest,
    *,
    current: Balance | None,
    expected: Balance | None,
    links: ReasonLinks = NO_TICKET_LINKS,
    warning: str | None = None,
) -> Content:
    """The approval message's text (the Slack transport adds the buttons): who asks what
    and why, the approvals given so far when two are needed, and what it would do."""
    asks = messages.APPROVAL_ASKS.format(
        requester=request.requester_id,
        what=change_summary(request.change),
        user=request.change.user,
    )
    if request.change.reason:
        asks += "\n" + messages.REASON_LINE.format(
            reason=linked_reason(request.change.reason, links)
        )
    if request.approvals_needed > 1:
        given = [request.first_approver] if request.first_approver else []
        asks += "\n" + messages.APPROVALS_PROGRESS.format(
            given=len(given),
            needed=request.approvals_needed,
            who=", ".join(f"<@{who}>" for who in given) or messages.APPROVALS_NONE_YET,
        )
    if warning:
        asks += "\n" + warning
    sections = [Section(asks)]
    if current is not None:
        sections.append(
            Section(
                fields=(
                    (messages.APPROVAL_BALANCE_NOW, balance_summary(current)),
                    (
                        messages.APPROVAL_IF_APPROVED,
                        balance_summary(expected) if expected else "—",
                    ),
                )
            )
        )
    when = request.expires_at.strftime("%Y-%m-%d %H:%M")
    return Content(
        headline=messages.APPROVAL_TITLE.format(id=request.id),
        sections=tuple(sections),
        notes=(messages.APPROVAL_EXPIRES.format(when=when),),
        fallback=messages.APPROVAL_FALLBACK.format(
            id=request.id, summary=request_summary(request), requester=request.requester_id
        ),
    )


def approval_outcome_content(
    request: ApprovalRequest, links: ReasonLinks = NO_TICKET_LINKS
) -> Content:
    """The approval message once decided: what happened, who decided, before → after."""
    base = approval_request_content(request, current=None, expected=None, links=links)
    lines = []
    if request.status is RequestStatus.EXPIRED:
        lines.append(messages.OUTCOME_EXPIRED)
    elif request.status is RequestStatus.CANCELLED:
        lines.append(messages.OUTCOME_CANCELLED.format(by=request.decided_by))
    else:
        outcome = messages.STATUS_TEXT[request.status.value]
        by = request.decided_by
        if request.first_approver and request.first_approver != by:
            by = f"{request.first_approver}> and <@{by}"
        lines.append(messages.OUTCOME_LINE.format(outcome=outcome.capitalize(), by=by))
    if request.reason:
        lines.append(messages.OUTCOME_REASON.format(reason=escape(request.reason)))
    if request.before is not None or request.after is not None:
        lines.append(
            messages.BEFORE_AFTER.format(
                before=balance_summary(request.before) if request.before else "?",
                after=balance_summary(request.after) if request.after else "?",
            )
        )
    if request.detail and request.status in (RequestStatus.FAILED, RequestStatus.UNKNOWN):
        lines.append(messages.OUTCOME_DETAIL.format(detail=escape(request.detail)))
    return Content(
        headline=base.headline,
        sections=(base.sections[0], Section("\n".join(lines))),
        fallback=messages.OUTCOME_FALLBACK.format(
            id=request.id, status=messages.STATUS_TEXT[request.status.value]
        ),
        warning=request.status in (RequestStatus.FAILED, RequestStatus.UNKNOWN),
    )


def mention(slack_id: str) -> str:
    """A user (`U…`/`W…`) or user-group (`S…`) mention."""
    return f"<!subteam^{slack_id}>" if slack_id.startswith("S") else f"<@{slack_id}>"


def waited_text(waited: timedelta) -> str:
    minutes = int(waited.total_seconds() // 60)
    hours, minutes = divmod(minutes, 60)
    if not hours:
        return f"{minutes} min"
    return f"{hours} h {minutes:02d} min" if minutes else f"{hours} h"


def reminder_text(reminder: Reminder, *, approvers: frozenset[str], escalate_to: str | None) -> str:
    """The thread reply that re-announces a pending request."""
    request = reminder.request
    people = [mention(i) for i in sorted(approvers) if i != request.requester_id]
    if reminder.escalate and escalate_to:
        template = messages.ESCALATION
        people = [mention(escalate_to)]
    elif request.escalated_at is not None and escalate_to:
        template = messages.REMINDER
        people.append(mention(escalate_to))
    else:
        template = messages.REMINDER
    return template.format(
        id=request.id,
        summary=request_summary(request),
        requester=request.requester_id,
        waited=waited_text(reminder.waited),
        mentions=" ".join(people) or messages.REMINDER_NOBODY,
        expires=request.expires_at.strftime("%Y-%m-%d %H:%M"),
    )


def decision_log_line(request: ApprovalRequest) -> str:
    """A decision as the log channel shows it."""
    by = request.decided_by if request.status is not RequestStatus.EXPIRED else None
    text = messages.LOG_DECISION.format(
        id=request.id,
        summary=request_summary(request),
        requester=request.requester_id,
        outcome=messages.STATUS_TEXT[request.status.value],
        by=messages.LOG_DECIDED_BY.format(by=by) if by and by != request.requester_id else "",
    )
    if request.before is not None and request.after is not None:
        text += " · " + messages.BEFORE_AFTER.format(
            before=balance_summary(request.before), after=balance_summary(request.after)
        )
    if request.reason:
        text += " · " + messages.OUTCOME_REASON.format(reason=escape(request.reason))
    return text


def recent_top_up_note(event: AuditEvent, *, now: datetime) -> str:
    """`@x added 5,000 12 min ago (now 5,640)`: said before a second Add."""
    credits = (event.arguments or {}).get("credits")
    amount = f"{int(credits):,}" if isinstance(credits, int) else "credits"
    ago = waited_text(now - event.at)
    if event.action is AuditAction.REQUESTED:
        return messages.RECENT_TOP_UP_REQUESTED.format(
            by=event.actor_id, amount=amount, ago=ago, id=event.request_id
        )
    after = f" (now {balance_summary(event.after)})" if event.after else ""
    return messages.RECENT_TOP_UP.format(by=event.actor_id, amount=amount, ago=ago, after=after)


def digest_note(reply: Reply, actor_id: str) -> str | None:
    """What a digest line should say once someone acted on it from its buttons."""
    match reply:
        case NoticeReply(digest_note=note) if note:
            return note
        case ChangeReply(result=result) if result.change.credits is not None:
            return messages.DIGEST_ADDED_BY.format(
                amount=number(result.change.credits),
                by=actor_id,
                now=balance_summary(result.after) if result.after else "?",
                unconfirmed=messages.DIGEST_UNCONFIRMED if result.outcome_unknown else "",
            )
        case ApprovalRequestedReply(request=request) if request.change.credits is not None:
            return messages.DIGEST_REQUESTED_BY.format(
                amount=number(request.change.credits), by=actor_id, id=request.id
            )
    return None


def requester_notice(request: ApprovalRequest, links: ReasonLinks = NO_TICKET_LINKS) -> str:
    if request.status is RequestStatus.EXPIRED:
        return messages.EXPIRED_NOTICE.format(id=request.id, summary=request_summary(request))
    text = messages.REQUESTER_NOTICE.format(
        id=request.id,
        summary=request_summary(request),
        outcome=messages.STATUS_TEXT[request.status.value],
    )
    if request.change.reason:
        text += " (" + linked_reason(request.change.reason, links) + ")"
    if request.reason:
        text += " " + messages.OUTCOME_REASON.format(reason=escape(request.reason))
    if request.detail and request.status in (RequestStatus.FAILED, RequestStatus.UNKNOWN):
        text += " " + messages.OUTCOME_DETAIL.format(detail=escape(request.detail))
    if request.after is not None:
        text += " " + messages.BALANCE_NOW.format(balance=balance_summary(request.after))
    return text


def _approval_requested(reply: ApprovalRequestedReply) -> Content:
    request = reply.request
    if reply.posted_to:
        first = messages.APPROVAL_SENT.format(id=request.id, channel=reply.posted_to)
    else:
        first = messages.APPROVAL_NOT_POSTED.format(id=request.id, reason=reply.post_error)
    would = messages.APPROVAL_WOULD_GIVE.format(
        before=balance_summary(reply.before),
        expected=balance_summary(reply.expected) if reply.expected else "?",
    )
    lines = [first, f"{request_summary(request)}: {would}"]
    if reply.why:
        lines.insert(0, reply.why)
    if request.change.reason:
        lines.append(
            messages.REASON_LINE.format(reason=linked_reason(request.change.reason, reply.links))
        )
    return Content(
        headline=messages.APPROVAL_TITLE.format(id=request.id),
        sections=(Section("\n".join(lines)),),
        notes=(
            messages.APPROVAL_EXPIRES.format(when=request.expires_at.strftime("%Y-%m-%d %H:%M")),
        ),
        fallback=first,
        warning=reply.posted_to is None,
    )


def plan_warning(change: CreditChange, before: Balance, expected: Balance | None) -> str:
    """What ending `before`'s recurring allowance means, before it happens."""
    allowance = number(before.allowance)
    if before.period:
        allowance += f" {before.period.value}"
    return messages.CONFIRM_PLAN.format(
        user=change.user,
        allowance=allowance,
        kind=change.kind.value,
        expected=balance_summary(expected) if expected else "balance",
    )


def _confirm(reply: ConfirmReply) -> Content:
    change = reply.change
    lines = []
    if reply.why is ConfirmWhy.PLAN:
        lines.append(plan_warning(change, reply.before, reply.expected))
    elif change.credits is not None and reply.confirm_above is not None:
        lines.append(
            messages.CONFIRM_SIZE.format(credits=change.credits, limit=reply.confirm_above)
        )
    lines.append(
        messages.CONFIRM_NOW.format(
            before=balance_summary(reply.before),
            expected=balance_summary(reply.expected) if reply.expected else "?",
        )
    )
    if change.reason:
        lines.append(messages.REASON_LINE.format(reason=linked_reason(change.reason, reply.links)))
    headline = messages.CONFIRM_TITLE.format(summary=change_summary(change), user=change.user)
    return Content(
        headline=headline,
        sections=(Section("\n".join(lines)),),
        fallback=headline,
        warning=reply.why is ConfirmWhy.PLAN,
    )


def _pending(reply: PendingReply) -> Content:
    if not reply.requests:
        return Content(
            headline=messages.PENDING_TITLE,
            sections=(Section(messages.PENDING_NONE),),
            fallback=messages.PENDING_NONE,
        )
    lines = []
    for request in reply.requests:
        expiry = (
            messages.PENDING_EXPIRES.format(when=request.expires_at.strftime("%Y-%m-%d %H:%M"))
            if request.status is RequestStatus.PENDING
            else ""
        )
        lines.append(
            messages.PENDING_LINE.format(
                id=request.id,
                summary=request_summary(request),
                requester=request.requester_id,
                status=messages.STATUS_TEXT[request.status.value],
                expiry=expiry,
            )
        )
    return Content(
        headline=messages.PENDING_TITLE,
        sections=_chunked(lines),
        fallback=messages.PENDING_FALLBACK.format(count=len(reply.requests)),
    )


def _audit(reply: AuditReply) -> Content:
    title = (
        messages.AUDIT_TITLE_FOR.format(user=reply.target) if reply.target else messages.AUDIT_TITLE
    )
    if not reply.events:
        return Content(headline=title, sections=(Section(messages.AUDIT_NONE),), fallback=title)
    requests = {r.id: r for r in reply.requests}
    lines = [
        audit_line(event, requests.get(event.request_id) if event.request_id else None)
        for event in reply.events
    ]
    return Content(
        headline=title,
        sections=_chunked(lines),
        fallback=f"{title}: {len(reply.events)} events",
    )


# --- the audit trail as a ledger -----------------------------------------------------

LEDGER_COLUMNS = (
    "id",
    "at",
    "event",
    "target",
    "request",
    "kind",
    "amount",
    "before",
    "after",
    "reason",
    "requester",
    "approvers",
    "actor",
    "outcome",
)


def ledger_row(event: AuditEvent, request: ApprovalRequest | None) -> dict[str, str]:
    """One audit event as a ledger line: what, how much, before → after, who, and how it
    ended, in words (for `/credits audit` and `credits-bot audit export`)."""
    arguments = event.arguments or {}
    kind = str(arguments.get("kind", ""))
    amount = arguments.get("credits")
    requester = request.requester_id if request else None
    if event.action is AuditAction.CHANGED or (not request and kind):
        requester = event.actor_id  # a direct change: the person is the requester
    approvers = _approvers(event, request)
    # Why it was asked (the rest of the command line), else a request's deny reason.
    reason = str(arguments.get("reason") or "")
    if not reason and request is not None:
        reason = request.change.reason or request.reason or ""
    if event.action is AuditAction.DENIED and event.outcome and event.outcome != "denied":
        reason = event.outcome
    return {
        "id": str(event.id or ""),
        "at": event.at.strftime("%Y-%m-%d %H:%M:%S"),
        "event": messages.AUDIT_EVENT_WORDS.get(event.action.value, event.action.value),
        "target": event.target or "",
        "request": str(event.request_id or ""),
        "kind": kind,
        "amount": "" if amount is None else str(amount),
        "before": balance_summary(event.before) if event.before else "",
        "after": balance_summary(event.after) if event.after else "",
        "reason": reason,
        "requester": requester or "",
        "approvers": " ".join(approvers),
        "actor": event.actor_id,
        "outcome": outcome_words(event),
    }


def _approvers(event: AuditEvent, request: ApprovalRequest | None) -> list[str]:
    if event.action is AuditAction.CHANGED:
        auto = (event.arguments or {}).get("auto_approved")
        return [] if auto else [event.actor_id]  # an approver's or admin's own change
    if (
        request is not None
        and request.decided_by
        and request.status
        not in (
            RequestStatus.PENDING,
            RequestStatus.DENIED,
            RequestStatus.EXPIRED,
            RequestStatus.CANCELLED,
        )
    ):
        return [request.decided_by]
    return []


_ERROR_PREFIX = re.compile(r"^[A-Z][A-Za-z]*: ")


def outcome_words(event: AuditEvent) -> str:
    """How it ended, as a sentence fragment (never `not_an_approver` or `UserError: …`)."""
    raw = (event.outcome or "").strip()
    if event.action is AuditAction.REFUSED:
        return messages.AUDIT_REFUSALS.get(raw, f"refused: {raw}")
    auto = (event.arguments or {}).get("auto_approved")
    if event.action is AuditAction.CHANGED and auto and raw in ("ok", ""):
        return messages.AUDIT_OUTCOMES["auto"]
    if raw in messages.AUDIT_OUTCOMES:
        return messages.AUDIT_OUTCOMES[raw]
    detail = _ERROR_PREFIX.sub("", raw)
    if event.action is AuditAction.FAILED:
        return messages.AUDIT_NOT_APPLIED.format(detail=detail)
    if event.action is AuditAction.UNKNOWN:
        return messages.AUDIT_UNCONFIRMED.format(detail=detail)
    return detail


def audit_line(event: AuditEvent, request: ApprovalRequest | None) -> str:
    row = ledger_row(event, request)
    what = ""
    if row["kind"]:
        amount = f" {int(row['amount']):,}" if row["amount"] else ""
        what = f" {row['kind']}{amount}"
    people = []
    if row["requester"] and row["requester"] != event.actor_id:
        people.append(messages.AUDIT_ASKED_BY.format(user=row["requester"]))
    balances = ""
    if row["before"] or row["after"]:
        balances = " · " + messages.BEFORE_AFTER.format(
            before=row["before"] or "?", after=row["after"] or "?"
        )
    return messages.AUDIT_LINE.format(
        at=row["at"],
        actor=event.actor_id,
        event=row["event"],
        request=f" #{row['request']}" if row["request"] else "",
        target=f" *{escape(row['target'])}*" if row["target"] else "",
        what=escape(what),
        people=(" (" + ", ".join(people) + ")") if people else "",
        outcome=f" — {escape(row['outcome'])}" if row["outcome"] else "",
        balances=balances,
        reason=" · " + messages.OUTCOME_REASON.format(reason=escape(row["reason"]))
        if row["reason"] and event.action is not AuditAction.DENIED
        else "",
    )


def _chunked(lines: list[str], limit: int = 2900) -> tuple[Section, ...]:
    """Lines grouped into sections that each fit Slack's 3,000-character section text."""
    sections: list[Section] = []
    current: list[str] = []
    size = 0
    for full_line in lines:
        line = full_line[:limit]
        if current and size + len(line) + 1 > limit:
            sections.append(Section("\n".join(current)))
            current, size = [], 0
        current.append(line)
        size += len(line) + 1
    if current:
        sections.append(Section("\n".join(current)))
    return tuple(sections)
