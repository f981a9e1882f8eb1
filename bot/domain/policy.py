"""Who may do what: roles from configuration, resolved per Slack user, failing closed.

Roles are ordered; each includes the ones below it (design §1):

    NONE < VIEWER < OPERATOR < APPROVER < ADMIN

A role is granted by listing a Slack user ID (`U…`/`W…`) or a user-group ID
(`S…`). Group members come from a `GroupDirectory`; when it fails, the user
keeps only the roles that could be proven without it, and the refusal says so.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Protocol

from bot.domain.credits import Balance, ChangeKind, CreditChange
from bot.errors import DirectoryError

if TYPE_CHECKING:  # the port is only named in annotations here
    from bot.domain.ports import GroupDirectory


class Role(enum.IntEnum):
    NONE = 0
    VIEWER = 1
    OPERATOR = 2
    APPROVER = 3
    ADMIN = 4

    @property
    def label(self) -> str:
        return "no role" if self is Role.NONE else self.name.lower()


class Action(enum.StrEnum):
    """What someone asks to do. Every subcommand names one (bot/commands/registry.py),
    and so does every button and dialog; `REQUIRED_ROLE` says who may."""

    READ_HELP = "read_help"  # help, whoami: what the bot does and what you may do
    READ_BALANCES = "read_balances"  # show, overview
    READ_RECORDS = "read_records"  # pending, audit
    CHANGE_CREDITS = "change_credits"  # add … unlimit, the Add-credits dialog, Confirm
    SET_THRESHOLD = "set_threshold"  # threshold
    DECIDE_REQUEST = "decide_request"  # approve, deny: commands, buttons, the Deny dialog
    CANCEL_REQUEST = "cancel_request"  # cancel: withdraw your own request
    RESOLVE_REQUEST = "resolve_request"  # resolve: record what became of an unknown outcome
    SNOOZE_ALERTS = "snooze_alerts"  # the digest's Snooze button


# The one Role x Action table. Roles are ordered, so each row is the least role that
# may act; `allows(role, action)` reads it as the full matrix:
#
#                      none  viewer  operator  approver  admin
#   read_help           x      x        x         x        x
#   read_balances              x        x         x        x
#   read_records               x        x         x        x
#   change_credits                      x*        x        x     * within limits, else asks
#   cancel_request                      x°        x°       x°    ° only your own request
#   snooze_alerts                       x         x        x
#   set_threshold                                 x        x
#   decide_request                                x†       x†    † not your own request, and
#   resolve_request                               x        x       not both of two approvals
REQUIRED_ROLE: dict[Action, Role] = {
    Action.READ_HELP: Role.NONE,
    Action.READ_BALANCES: Role.VIEWER,
    Action.READ_RECORDS: Role.VIEWER,
    Action.CHANGE_CREDITS: Role.OPERATOR,
    Action.CANCEL_REQUEST: Role.OPERATOR,
    Action.SNOOZE_ALERTS: Role.OPERATOR,
    Action.SET_THRESHOLD: Role.APPROVER,
    Action.DECIDE_REQUEST: Role.APPROVER,
    Action.RESOLVE_REQUEST: Role.APPROVER,
}


def allows(role: Role, action: Action) -> bool:
    """Whether `role` may take `action` at all (per-request rules come on top)."""
    return role >= REQUIRED_ROLE[action]


class Refusal(enum.Enum):
    """Why the access filter said no (the value is what the audit trail records)."""

    NEEDS_ROLE = "needs_role"  # below the table's role for an action below approver
    NOT_AN_APPROVER = "not_an_approver"
    OWN_REQUEST = "own_request"
    ALREADY_APPROVED = "already_approved"  # the first of two approvers, again
    NOT_THE_REQUESTER = "not_the_requester"


class RequestFacts(Protocol):
    """What the per-request rules read of an approval request."""

    @property
    def requester_id(self) -> str: ...

    @property
    def first_approver(self) -> str | None: ...


def _not_own_request(actor_id: str, request: RequestFacts) -> Refusal | None:
    return Refusal.OWN_REQUEST if actor_id == request.requester_id else None


def _not_both_approvals(actor_id: str, request: RequestFacts) -> Refusal | None:
    first = request.first_approver
    return Refusal.ALREADY_APPROVED if first is not None and actor_id == first else None


def _requester_only(actor_id: str, request: RequestFacts) -> Refusal | None:
    return None if actor_id == request.requester_id else Refusal.NOT_THE_REQUESTER


# Facts about one request that the table cannot hold, evaluated by the same filter.
REQUEST_RULES: dict[Action, tuple[Callable[[str, RequestFacts], Refusal | None], ...]] = {
    Action.DECIDE_REQUEST: (_not_own_request, _not_both_approvals),
    Action.CANCEL_REQUEST: (_requester_only,),
}


def refusal(
    action: Action, role: Role, *, actor_id: str = "", request: RequestFacts | None = None
) -> Refusal | None:
    """The one access filter: None if `role` (as `actor_id`, on `request` when the
    action is about one) may take `action`, else why not."""
    if not allows(role, action):
        required = REQUIRED_ROLE[action]
        return Refusal.NOT_AN_APPROVER if required >= Role.APPROVER else Refusal.NEEDS_ROLE
    if request is not None:
        for rule in REQUEST_RULES.get(action, ()):
            why = rule(actor_id, request)
            if why is not None:
                return why
    return None


@dataclass(frozen=True, slots=True)
class ResolvedRole:
    """The highest role proven for a user, and why a higher one could not be checked."""

    role: Role
    unverified: DirectoryError | None = None


@dataclass(frozen=True, slots=True)
class Grant:
    """A resolved role and why: the user or group ID that granted it (None: nothing
    did), and why a higher role could not be checked."""

    role: Role
    granted_by: str | None = None
    unverified: DirectoryError | None = None

    @property
    def resolved(self) -> ResolvedRole:
        return ResolvedRole(self.role, unverified=self.unverified)


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
        """The user's highest role (see `explain`)."""
        return self.explain(user_id, directory).resolved

    def explain(self, user_id: str, directory: GroupDirectory | None) -> Grant:
        """The user's highest role and the ID that granted it. Direct grants need no
        lookup; groups are asked highest role first, and a failed lookup stops the
        climb (fail closed)."""
        direct = max((role for role, ids in self.grants() if user_id in ids), default=Role.NONE)
        granted = Grant(direct, granted_by=user_id if direct > Role.NONE else None)
        for role, ids in self.grants():  # highest first
            if role <= direct:
                break
            for group_id in sorted(i for i in ids if i.startswith("S")):
                if directory is None:
                    error = DirectoryError(
                        "user groups cannot be checked without a Slack connection",
                        reason="no_directory",
                    )
                    return replace(granted, unverified=error)
                try:
                    if user_id in directory.members(group_id):
                        return Grant(role, granted_by=group_id)
                except DirectoryError as error:
                    return replace(granted, unverified=error)
        return granted


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
    action: Action,
    resolved: ResolvedRole,
    *,
    change: ChangeKind | None = None,
    credits: int | None = None,
    auto_approve_max: int = 0,
) -> Decision:
    """May this role take this action now, only with approval, or not at all?

    Approvers and admins apply their own changes at once; an operator's `add` of
    at most `auto_approve_max` credits applies at once, any other change of
    theirs needs approval.
    """
    required = REQUIRED_ROLE[action]
    role = resolved.role
    if not allows(role, action):
        return Decision(Outcome.REFUSE, required, unverified=resolved.unverified)
    if action is not Action.CHANGE_CREDITS or role >= Role.APPROVER:
        return Decision(Outcome.ALLOW, required)
    if change is ChangeKind.ADD and credits is not None and credits <= auto_approve_max:
        return Decision(Outcome.ALLOW, required, auto_approved=True)
    return Decision(Outcome.NEEDS_APPROVAL, required)


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
