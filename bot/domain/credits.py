"""The credits model: balances, overviews, accounts and the changes the bot makes.

Values only; no I/O. `CreditsBackend` is the port a SendGrid client implements,
and `apply_change` is the one way a change is made: read, write once, re-read.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from bot.commands import messages  # wording only: a leaf module that imports nothing
from bot.errors import OutcomeUnknown, SendGridError, UserError

if TYPE_CHECKING:  # the port is only named in annotations here
    from bot.domain.ports import CreditsBackend

# SendGrid documents `credits` as an unsigned integer; 32-bit unsigned is the
# largest value its v2 endpoints can store.
MAX_CREDITS = 4_294_967_295


class Period(enum.StrEnum):
    """How often a recurring allowance resets."""

    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"


@dataclass(frozen=True, slots=True)
class Balance:
    """A subuser's or customer's credits.

    `unlimited` means SendGrid enforces no limit; the other fields are then None.
    `allowance` is the recurring reset amount (None when the balance does not
    recur), `period` how often it resets, when known (v2 does not report it).
    """

    unlimited: bool
    remaining: int | None = None
    allowance: int | None = None
    period: Period | None = None
    last_reset: date | None = None

    @classmethod
    def no_limit(cls) -> Balance:
        return cls(unlimited=True)

    @property
    def recurring(self) -> bool:
        return self.allowance is not None

    def percent_of_allowance(self) -> float | None:
        """Remaining as a percent of the recurring allowance, or None if not recurring."""
        if self.remaining is None or not self.allowance:
            return None
        return 100.0 * self.remaining / self.allowance


@dataclass(frozen=True, slots=True)
class Overview:
    """A reseller customer's account overview (`reseller.account task=overview`)."""

    package: str | None
    reputation: float | None
    requests: int | None
    credits_allowed: int | None
    credits_used: int | None
    credits_remain: int | None
    credits_overage: int | None
    billing_start: date | None
    billing_end: date | None
    billing_process: date | None


@dataclass(frozen=True, slots=True)
class Account:
    """A subuser (subuser mode) or reseller customer (reseller mode)."""

    username: str
    email: str | None
    active: bool


class ChangeKind(enum.StrEnum):
    """The writes the bot can make, named after the `/credits` subcommands."""

    ADD = "add"
    REMOVE = "remove"
    SET = "set"
    RECURRING = "recurring"
    UNLIMIT = "unlimit"


@dataclass(frozen=True, slots=True)
class CreditChange:
    """One change to one account's credits, as requested.

    `credits` is required for every kind except UNLIMIT; `period` and the
    optional `start`, `end`, `initial` belong to RECURRING only. `reason` is why
    it is asked (free text, e.g. "ZD-4411 spring campaign"), shown and audited.
    """

    kind: ChangeKind
    user: str
    credits: int | None = None
    period: Period | None = None
    start: date | None = None
    end: date | None = None
    initial: int | None = None
    reason: str | None = None

    def __post_init__(self) -> None:
        needs_credits = self.kind is not ChangeKind.UNLIMIT
        if needs_credits != (self.credits is not None):
            template = (
                messages.CHANGE_NEEDS_CREDITS if needs_credits else messages.CHANGE_NO_CREDITS
            )
            raise UserError(template.format(kind=self.kind))
        for value in (self.credits, self.initial):
            if value is not None and not 0 <= value <= MAX_CREDITS:
                raise UserError(messages.CHANGE_CREDITS_RANGE.format(limit=MAX_CREDITS))
        if (self.kind is ChangeKind.RECURRING) != (self.period is not None):
            raise UserError(messages.CHANGE_PERIOD_RECURRING_ONLY)
        if self.kind is not ChangeKind.RECURRING and (self.start or self.end or self.initial):
            raise UserError(messages.CHANGE_OPTIONS_RECURRING_ONLY)
        if self.start and self.end and self.end < self.start:
            raise UserError(messages.CHANGE_END_BEFORE_START)

    def expected_after(self, before: Balance) -> Balance | None:
        """The balance this change should produce from `before`, if predictable."""
        credits = self.credits or 0
        if self.kind is ChangeKind.UNLIMIT:
            return Balance.no_limit()
        if self.kind is ChangeKind.SET:
            return Balance(unlimited=False, remaining=credits)
        if self.kind is ChangeKind.RECURRING:
            initial = credits if self.initial is None else self.initial
            return Balance(
                unlimited=False, remaining=initial, allowance=credits, period=self.period
            )
        if before.unlimited or before.remaining is None:
            return None
        if self.kind is ChangeKind.ADD:
            return Balance(unlimited=False, remaining=before.remaining + credits)
        return Balance(unlimited=False, remaining=max(0, before.remaining - credits))


@dataclass(frozen=True, slots=True)
class ChangeResult:
    """What a change did: the balance before and after (after = re-read from SendGrid).

    `outcome_unknown` is True when the write may or may not have been applied;
    `after` is then the balance re-read afterwards (None if that failed too),
    and `error` says what went wrong.
    """

    change: CreditChange
    before: Balance
    after: Balance | None
    outcome_unknown: bool = False
    error: SendGridError | None = None


write_guard: ContextVar[Callable[[], None] | None] = ContextVar("write_guard", default=None)


def check_applicable(change: CreditChange, before: Balance) -> None:
    """Refuse a change that makes no sense on this balance (UserError)."""
    if before.unlimited and change.kind in (ChangeKind.ADD, ChangeKind.REMOVE):
        # Adding to "no limit" would silently start limiting the account.
        raise UserError(messages.NOTHING_TO_CHANGE.format(user=change.user, kind=change.kind))
    remaining, credits = before.remaining, change.credits
    # Clamping to 0 would report "done" for less than was asked.
    if change.kind is ChangeKind.REMOVE and remaining is not None and (credits or 0) > remaining:
        raise UserError(
            messages.NOT_ENOUGH_TO_REMOVE.format(
                user=change.user, remaining=remaining, credits=credits
            )
        )


def change_arguments(change: CreditChange) -> dict[str, object]:
    """What a change sends, for the audit trail (never a credential)."""
    arguments: dict[str, object] = {"kind": change.kind.value, "user": change.user}
    optional = {
        "credits": change.credits,
        "period": change.period.value if change.period else None,
        "start": change.start.isoformat() if change.start else None,
        "end": change.end.isoformat() if change.end else None,
        "initial": change.initial,
        "reason": change.reason,
    }
    arguments.update({k: v for k, v in optional.items() if v is not None})
    return arguments


def change_from_arguments(arguments: dict[str, Any]) -> CreditChange:
    """The change `change_arguments` described (for records read back from the database)."""
    start, end = arguments.get("start"), arguments.get("end")
    return CreditChange(
        kind=ChangeKind(arguments["kind"]),
        user=str(arguments["user"]),
        credits=arguments.get("credits"),
        period=Period(arguments["period"]) if arguments.get("period") else None,
        start=date.fromisoformat(start) if start else None,
        end=date.fromisoformat(end) if end else None,
        initial=arguments.get("initial"),
        reason=arguments.get("reason"),
    )


def send_change(backend: CreditsBackend, change: CreditChange) -> None:
    """Send exactly one write for `change`; never retried here."""
    credits = change.credits or 0
    match change.kind:
        case ChangeKind.ADD:
            backend.increment_credits(change.user, credits)
        case ChangeKind.REMOVE:
            backend.decrement_credits(change.user, credits)
        case ChangeKind.SET:
            backend.set_total_credits(change.user, credits)
        case ChangeKind.RECURRING:
            assert change.period is not None  # guaranteed by CreditChange
            backend.set_recurring_credits(
                change.user,
                credits,
                change.period,
                start=change.start,
                end=change.end,
                initial=change.initial,
            )
        case ChangeKind.UNLIMIT:
            backend.remove_limit(change.user)


def apply_change(
    backend: CreditsBackend,
    change: CreditChange,
    *,
    before_send: Callable[[Balance], None] = lambda before: None,
) -> ChangeResult:
    """Read the balance, send the write once, and re-read it.

    `before_send(before)` runs after the first read and before the write leaves:
    the caller records there that the write is about to be sent, and raises to stop
    it (then nothing was sent, and the exception propagates).

    Adding to or removing from an unlimited account is refused (UserError):
    it would quietly turn a limit on.

    SendGrid v2 writes return no balance, so `after` always comes from a fresh
    read. If the write's outcome is unknown (sent, no answer), the result says
    so with whatever the re-read shows; it is never sent a second time. Other
    SendGrid errors propagate: nothing was changed.
    """
    backend.check_supported(change)
    before = backend.get_balance(change.user)
    check_applicable(change, before)
    before_send(before)
    try:
        send_change(backend, change)
    except OutcomeUnknown as unknown:
        return ChangeResult(
            change=change,
            before=before,
            after=_reread_quietly(backend, change.user),
            outcome_unknown=True,
            error=unknown,
        )
    return ChangeResult(change=change, before=before, after=_reread_quietly(backend, change.user))


def _reread_quietly(backend: CreditsBackend, user: str) -> Balance | None:
    # The write is done (or unknowable); a failing re-read must not turn a
    # success into an error, so the reply shows "balance unavailable" instead.
    try:
        return backend.get_balance(user)
    except SendGridError:
        return None
