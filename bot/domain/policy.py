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
from typing import Protocol

from bot.domain.credits import ChangeKind
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
