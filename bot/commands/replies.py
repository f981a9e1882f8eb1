"""What a command answers, as values. Transports render them (Block Kit, text)."""

from __future__ import annotations

from dataclasses import dataclass

from bot.domain.approvals import ApprovalRequest, AuditEvent
from bot.domain.credits import Balance, ChangeResult, CreditChange, Overview
from bot.domain.policy import ConfirmWhy, Role


@dataclass(frozen=True, slots=True)
class ReasonLinks:
    """How a reason's ticket ids become links: a pattern, and a URL with `{ticket}`."""

    ticket_pattern: str = r"\b[A-Z][A-Z0-9]+-[0-9]+\b"
    ticket_url: str | None = None


NO_TICKET_LINKS = ReasonLinks()


@dataclass(frozen=True, slots=True)
class HelpEntry:
    """One subcommand's line in help, from its registry record."""

    name: str
    usage: str
    sentence: str


@dataclass(frozen=True, slots=True)
class HelpReply:
    """Usage of the subcommands `role` may use (`entries`), or of one `topic`."""

    role: Role
    entries: tuple[HelpEntry, ...]
    user_id: str
    auto_approve_max: int
    topic: str | None = None
    notice: str | None = None  # e.g. "There is no `shwo` subcommand. Did you mean `show`?"


@dataclass(frozen=True, slots=True)
class BalanceReply:
    user: str
    balance: Balance
    hours_left: float | None = None  # from the sweeps' burn rate, when known


@dataclass(frozen=True, slots=True)
class OverviewReply:
    user: str
    overview: Overview


@dataclass(frozen=True, slots=True)
class ChangeReply:
    """A change that was sent: before → after, or an unknown outcome with a re-read."""

    verb: str  # the subcommand's name
    result: ChangeResult
    auto_approved: bool = False
    auto_approve_max: int = 0
    recorded: bool = True  # False: SendGrid answered; the database will take it later
    links: ReasonLinks = NO_TICKET_LINKS


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """Something the person should know went wrong, and what to do next."""

    message: str
    next_step: str | None = None
    usage: str | None = None


@dataclass(frozen=True, slots=True)
class NoticeReply:
    """A short answer: a decision taken, something done."""

    message: str
    warning: bool = False
    digest_note: str | None = None  # what the digest line that prompted it should now say


@dataclass(frozen=True, slots=True)
class ApprovalRequestedReply:
    """An operator's change recorded as an approval request."""

    request: ApprovalRequest
    before: Balance
    expected: Balance | None
    posted_to: str | None = None
    post_error: str | None = None
    why: str | None = None  # why it became a request (e.g. the auto-approve budget)
    links: ReasonLinks = NO_TICKET_LINKS


@dataclass(frozen=True, slots=True)
class ConfirmReply:
    """A direct change held until its author clicks Confirm (or Cancel)."""

    confirmation_id: int
    change: CreditChange
    before: Balance
    expected: Balance | None
    why: ConfirmWhy
    confirm_above: int | None = None
    links: ReasonLinks = NO_TICKET_LINKS


@dataclass(frozen=True, slots=True)
class PendingReply:
    requests: tuple[ApprovalRequest, ...]


@dataclass(frozen=True, slots=True)
class AuditReply:
    events: tuple[AuditEvent, ...]
    target: str | None = None
    requests: tuple[ApprovalRequest, ...] = ()  # the requests the events are about


Reply = (
    HelpReply
    | BalanceReply
    | OverviewReply
    | ChangeReply
    | ErrorReply
    | NoticeReply
    | ApprovalRequestedReply
    | ConfirmReply
    | PendingReply
    | AuditReply
)
