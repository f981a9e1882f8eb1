"""Who may do what: roles from configuration, resolved per Slack user, failing closed.

Roles are ordered; each includes the ones below it (design §1):

    NONE < VIEWER < OPERATOR < APPROVER < ADMIN

A role is granted by listing a Slack user ID (`U…`/`W…`) or a user-group ID
(`S…`). Group members come from a `GroupDirectory`; when it fails, the user
keeps only the roles that could be proven without it, and the refusal says so.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from bot.domain.credits import Balance, ChangeKind, CreditChange
from bot.errors import DirectoryError


class Role(enum.IntEnum):
    NONE = 0
    VIEWER = 1
    OPERATOR = 2
    APPROVER = 3
    ADMIN = 4

    @property
    def label(self) -> str:
        return "no role" if self is Role.NONE else self.name.lower()


class Verb(enum.StrEnum):
    """The `/credits` subcommands."""

    HELP = "help"
    SHOW = "show"
    OVERVIEW = "overview"
    ADD = "add"
    REMOVE = "remove"
    SET = "set"
    RECURRING = "recurring"
    UNLIMIT = "unlimit"
    PENDING = "pending"
    AUDIT = "audit"
    THRESHOLD = "threshold"
    APPROVE = "approve"
    DENY = "deny"
    CANCEL = "cancel"
    RESOLVE = "resolve"
    LOW = "low"
    HISTORY = "history"

    @property
    def change_kind(self) -> ChangeKind | None:
        try:
            return ChangeKind(self.value)
        except ValueError:
            return None


REQUIRED_ROLE: dict[Verb, Role] = {
    Verb.HELP: Role.NONE,
    Verb.SHOW: Role.VIEWER,
    Verb.OVERVIEW: Role.VIEWER,
    Verb.ADD: Role.OPERATOR,
    Verb.REMOVE: Role.OPERATOR,
    Verb.SET: Role.OPERATOR,
    Verb.RECURRING: Role.OPERATOR,
    Verb.UNLIMIT: Role.OPERATOR,
    Verb.PENDING: Role.VIEWER,
    Verb.AUDIT: Role.VIEWER,
    Verb.THRESHOLD: Role.APPROVER,
    # Deciding by command: who may decide *this* request is checked by the change
    # service, exactly as for the buttons (the requester may only cancel).
    Verb.APPROVE: Role.APPROVER,
    Verb.DENY: Role.APPROVER,
    Verb.CANCEL: Role.OPERATOR,
    Verb.RESOLVE: Role.APPROVER,
    Verb.LOW: Role.VIEWER,
    Verb.HISTORY: Role.VIEWER,
}

# Verbs that decide an existing request rather than ask for a change.
DECIDING_VERBS = frozenset({Verb.APPROVE, Verb.DENY, Verb.CANCEL, Verb.RESOLVE})


class GroupDirectory(Protocol):
    """Port: the members of a Slack user group. Raises DirectoryError when unknown."""

    def members(self, group_id: str) -> frozenset[str]: ...


@dataclass(frozen=True, slots=True)
class ResolvedRole:
    """The highest role proven for a user, and why a higher one could not be checked."""

    role: Role
    unverified: DirectoryError | None = None


@dataclass(frozen=True, slots=True)
class RoleBook:
    """Role grants from configuration: user and group IDs for each role."""

    admins: frozenset[str] = frozenset()
    approvers: frozenset[str] = frozenset()
    operators: frozenset[str] = frozenset()
    viewers: frozenset[str] = frozenset()

    def grants(self) -> Iterable[tuple[Role, frozenset[str]]]:
        yield Role.ADMIN, self.admins
        yield Role.APPROVER, self.approvers
        yield Role.OPERATOR, self.operators
        yield Role.VIEWER, self.viewers

    def resolve(self, user_id: str, directory: GroupDirectory | None) -> ResolvedRole:
        """The user's highest role. Direct grants need no lookup; groups are asked
        highest role first, and a failed lookup stops the climb (fail closed)."""
        direct = max((role for role, ids in self.grants() if user_id in ids), default=Role.NONE)
        for role, ids in self.grants():  # highest first
            if role <= direct:
                break
            for group_id in sorted(i for i in ids if i.startswith("S")):
                if directory is None:
                    error = DirectoryError(
                        "user groups cannot be checked without a Slack connection",
                        reason="no_directory",
                    )
                    return ResolvedRole(direct, unverified=error)
                try:
                    if user_id in directory.members(group_id):
                        return ResolvedRole(role)
                except DirectoryError as error:
                    return ResolvedRole(direct, unverified=error)
        return ResolvedRole(direct)


class Outcome(enum.Enum):
    ALLOW = "allow"  # run it now
    NEEDS_APPROVAL = "needs_approval"  # an operator's change beyond the auto-approve limit
    REFUSE = "refuse"


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    required: Role
    auto_approved: bool = False
    unverified: DirectoryError | None = None


def decide(
    verb: Verb, resolved: ResolvedRole, *, credits: int | None, auto_approve_max: int
) -> Decision:
    """May this role run this subcommand now, only with approval, or not at all?

    Approvers and admins apply their own changes at once; an operator's `add` of
    at most `auto_approve_max` credits applies at once, any other change of
    theirs needs approval.
    """
    required = REQUIRED_ROLE[verb]
    role = resolved.role
    if role < required:
        return Decision(Outcome.REFUSE, required, unverified=resolved.unverified)
    if verb.change_kind is None or role >= Role.APPROVER:
        return Decision(Outcome.ALLOW, required)
    if verb is Verb.ADD and credits is not None and credits <= auto_approve_max:
        return Decision(Outcome.ALLOW, required, auto_approved=True)
    return Decision(Outcome.NEEDS_APPROVAL, required)


def allowed_verbs(role: Role) -> list[Verb]:
    """The subcommands a role may use (for help)."""
    return [verb for verb, required in REQUIRED_ROLE.items() if role >= required]


# --- money policy: limits that hold for every role -------------------------------------


@dataclass(frozen=True, slots=True)
class Limits:
    """The size and budget rules of a change, from configuration.

    - `max_change`: a hard ceiling on a change's credits, whoever asks;
    - `confirm_above`: a direct change above this asks its author to confirm;
    - `two_approvals_above`: a request above this needs two distinct approvers;
    - `auto_approve_budget`: credits one operator, and one subuser, may receive by
      auto-approval in a rolling `budget_window`;
    - `require_reason`: a change without a reason is refused.
    """

    auto_approve_max: int = 0
    auto_approve_budget: int = 0
    budget_window: timedelta = timedelta(hours=24)
    confirm_above: int | None = None
    max_change: int | None = None
    two_approvals_above: int | None = None
    require_reason: bool = False


class ConfirmWhy(enum.Enum):
    """Why a direct change waits for its author's confirmation."""

    SIZE = "size"  # above CREDITS_CONFIRM_ABOVE
    PLAN = "plan"  # it would turn a recurring allowance into a one-off balance


def over_ceiling(change: CreditChange, limits: Limits) -> bool:
    """Above the hard ceiling (an `unlimit` has no size and is not)."""
    return (
        limits.max_change is not None
        and change.credits is not None
        and change.credits > limits.max_change
    )


def drops_recurring_plan(
    change: CreditChange, before: Balance, *, adjustments_keep_recurring: bool
) -> bool:
    """Would this change end `before`'s recurring allowance without saying so?

    v2's `increment`/`decrement`/`total` clear the recurring amount (reference §2.1);
    v3's `PATCH …/credits/remaining` keeps it, its `PUT` with `nonrecurring` does not.
    `recurring` sets a plan on purpose and `unlimit` is asked by name; both say what
    they do, so they are not counted here.
    """
    return before.recurring and may_end_plan(
        change.kind, adjustments_keep_recurring=adjustments_keep_recurring
    )


def may_end_plan(kind: ChangeKind, *, adjustments_keep_recurring: bool) -> bool:
    """Whether a change of this kind ends a recurring plan on this API (see above)."""
    if kind in (ChangeKind.ADD, ChangeKind.REMOVE):
        return not adjustments_keep_recurring
    return kind is ChangeKind.SET


def may_need_confirmation(
    change: CreditChange, limits: Limits, *, adjustments_keep_recurring: bool
) -> bool:
    """Whether `confirmation_needed` could say yes, whatever the balance (so the balance
    need not be read first when it cannot)."""
    if may_end_plan(change.kind, adjustments_keep_recurring=adjustments_keep_recurring):
        return True
    return (
        limits.confirm_above is not None
        and change.credits is not None
        and change.kind is not ChangeKind.RECURRING
        and change.credits > limits.confirm_above
    )


def confirmation_needed(
    change: CreditChange, before: Balance, limits: Limits, *, adjustments_keep_recurring: bool
) -> ConfirmWhy | None:
    """Whether a direct change must first be confirmed by its author, and why."""
    if drops_recurring_plan(change, before, adjustments_keep_recurring=adjustments_keep_recurring):
        return ConfirmWhy.PLAN
    if (
        limits.confirm_above is not None
        and change.credits is not None
        and change.kind is not ChangeKind.RECURRING
        and change.credits > limits.confirm_above
    ):
        return ConfirmWhy.SIZE
    return None


def needs_two_approvals(change: CreditChange, limits: Limits) -> bool:
    """A request above CREDITS_TWO_APPROVALS_ABOVE (an `unlimit` counts as above)."""
    if limits.two_approvals_above is None:
        return False
    if change.credits is None:
        return change.kind is ChangeKind.UNLIMIT
    return change.credits > limits.two_approvals_above


@dataclass(frozen=True, slots=True)
class BudgetUse:
    """Credits auto-approved in the window: by this operator, and to this subuser."""

    by_actor: int
    on_target: int

    def allows(self, credits: int, budget: int) -> bool:
        return self.by_actor + credits <= budget and self.on_target + credits <= budget
