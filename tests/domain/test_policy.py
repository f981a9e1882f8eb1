"""Roles and decisions, table-driven (errbot's ACL table style)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from bot.commands.registry import BY_VERB, Verb, allowed
from bot.domain.credits import ChangeKind
from bot.domain.policy import (
    REQUIRED_ROLE,
    Action,
    Grant,
    Outcome,
    Refusal,
    ResolvedRole,
    Role,
    RoleBook,
    decide,
    refusal,
)
from bot.domain.ports import GroupDirectory
from bot.errors import DirectoryError

A, R, Q = Outcome.ALLOW, Outcome.REFUSE, Outcome.NEEDS_APPROVAL  # Q: queued for approval
# role → (help, show, overview, add 10, add 5000, remove, set, recurring, unlimit)
TABLE = {
    Role.NONE: (A, R, R, R, R, R, R, R, R),
    Role.VIEWER: (A, A, A, R, R, R, R, R, R),
    Role.OPERATOR: (A, A, A, A, Q, Q, Q, Q, Q),
    Role.APPROVER: (A, A, A, A, A, A, A, A, A),
    Role.ADMIN: (A, A, A, A, A, A, A, A, A),
}
CASES = [
    (Verb.HELP, None),
    (Verb.SHOW, None),
    (Verb.OVERVIEW, None),
    (Verb.ADD, 10),
    (Verb.ADD, 5000),
    (Verb.REMOVE, 10),
    (Verb.SET, 10),
    (Verb.RECURRING, 10),
    (Verb.UNLIMIT, None),
]


@pytest.mark.parametrize("role", list(Role))
def test_decision_table(role: Role):
    outcomes = tuple(
        _decide(verb, ResolvedRole(role), credits=credits, auto_approve_max=100).outcome
        for verb, credits in CASES
    )
    assert outcomes == TABLE[role]


def _decide(verb: Verb, resolved: ResolvedRole, *, credits: int | None, auto_approve_max: int):
    """The decision for a subcommand: its record's action, and the change it asks for."""
    kind = ChangeKind(verb.value) if verb.value in set(ChangeKind) else None
    return decide(
        BY_VERB[verb].action,
        resolved,
        change=kind,
        credits=credits,
        auto_approve_max=auto_approve_max,
    )


def test_auto_approved_add_is_marked():
    decision = _decide(Verb.ADD, ResolvedRole(Role.OPERATOR), credits=100, auto_approve_max=100)
    assert decision.auto_approved
    admin = _decide(Verb.ADD, ResolvedRole(Role.ADMIN), credits=100, auto_approve_max=100)
    assert not admin.auto_approved


def test_refusal_names_the_role_needed():
    decision = _decide(Verb.SET, ResolvedRole(Role.VIEWER), credits=1, auto_approve_max=0)
    assert (decision.outcome, decision.required) == (Outcome.REFUSE, Role.OPERATOR)


class Groups:
    """A GroupDirectory with fixed answers (a test double of the port, not project code)."""

    def __init__(self, members: dict[str, frozenset[str] | str]) -> None:
        self.members_of = members
        self.asked: list[str] = []

    def members(self, group_id: str) -> frozenset[str]:
        self.asked.append(group_id)
        answer = self.members_of[group_id]
        if isinstance(answer, str):
            raise DirectoryError("no", reason=answer)
        return answer


BOOK = RoleBook(
    admins=frozenset({"UADMIN", "SADMINS"}),
    approvers=frozenset({"SONCALL"}),
    operators=frozenset({"UOPS"}),
    viewers=frozenset({"UVIEW", "SSUPPORT"}),
)


def test_direct_grant_needs_no_lookup_when_it_is_the_highest():
    groups = Groups({})
    assert BOOK.resolve("UADMIN", groups) == ResolvedRole(Role.ADMIN)
    assert groups.asked == []


def test_group_grant_found_highest_first():
    groups = Groups(
        {"SADMINS": frozenset(), "SONCALL": frozenset({"UOPS"}), "SSUPPORT": frozenset()}
    )
    assert BOOK.resolve("UOPS", groups) == ResolvedRole(Role.APPROVER)
    assert groups.asked == ["SADMINS", "SONCALL"]


def test_failed_lookup_keeps_only_what_is_proven():
    directory: GroupDirectory = Groups({"SADMINS": "plan_upgrade_required"})
    resolved = BOOK.resolve("UOPS", directory)
    assert resolved.role is Role.OPERATOR
    assert resolved.unverified is not None
    assert resolved.unverified.reason == "plan_upgrade_required"
    assert BOOK.resolve("USTRANGER", directory).role is Role.NONE


def test_no_directory_means_groups_cannot_grant():
    resolved = BOOK.resolve("UANYONE", None)
    assert resolved.role is Role.NONE
    assert resolved.unverified is not None


def allowed_verbs(role: Role) -> list[Verb]:
    return [record.verb for record in allowed(role)]


def test_help_lists_by_role():
    assert allowed_verbs(Role.NONE) == [Verb.HELP, Verb.WHOAMI]
    assert Verb.SHOW in allowed_verbs(Role.VIEWER)
    assert Verb.ADD not in allowed_verbs(Role.VIEWER)
    approver_only = {Verb.THRESHOLD, Verb.APPROVE, Verb.DENY, Verb.RESOLVE}
    assert allowed_verbs(Role.OPERATOR) == [v for v in Verb if v not in approver_only]
    assert allowed_verbs(Role.APPROVER) == list(Verb)


# --- the one access filter: Role x Action, plus the per-request rules --------------------

Y, N = True, False
# role -> (read_help, read_balances, read_records, change_credits, cancel_request,
#          snooze_alerts, set_threshold, decide_request, resolve_request)
ACCESS = {
    Role.NONE: (Y, N, N, N, N, N, N, N, N),
    Role.VIEWER: (Y, Y, Y, N, N, N, N, N, N),
    Role.OPERATOR: (Y, Y, Y, Y, Y, Y, N, N, N),
    Role.APPROVER: (Y, Y, Y, Y, Y, Y, Y, Y, Y),
    Role.ADMIN: (Y, Y, Y, Y, Y, Y, Y, Y, Y),
}
ACTIONS = (
    Action.READ_HELP,
    Action.READ_BALANCES,
    Action.READ_RECORDS,
    Action.CHANGE_CREDITS,
    Action.CANCEL_REQUEST,
    Action.SNOOZE_ALERTS,
    Action.SET_THRESHOLD,
    Action.DECIDE_REQUEST,
    Action.RESOLVE_REQUEST,
)


def test_the_table_covers_every_action():
    assert set(ACTIONS) == set(Action) == set(REQUIRED_ROLE)


@pytest.mark.parametrize("role", list(Role))
def test_access_table(role: Role):
    assert tuple(refusal(action, role) is None for action in ACTIONS) == ACCESS[role]


@dataclass(frozen=True)
class Asked:
    requester_id: str
    first_approver: str | None = None


@pytest.mark.parametrize(
    ("action", "actor", "asked", "expected"),
    [
        (Action.DECIDE_REQUEST, "U1", Asked("U1"), Refusal.OWN_REQUEST),
        (Action.DECIDE_REQUEST, "U2", Asked("U1", first_approver="U2"), Refusal.ALREADY_APPROVED),
        (Action.DECIDE_REQUEST, "U3", Asked("U1", first_approver="U2"), None),
        (Action.CANCEL_REQUEST, "U1", Asked("U1"), None),
        (Action.CANCEL_REQUEST, "U2", Asked("U1"), Refusal.NOT_THE_REQUESTER),
    ],
)
def test_per_request_rules(action: Action, actor: str, asked: Asked, expected: Refusal | None):
    assert refusal(action, Role.ADMIN, actor_id=actor, request=asked) is expected


def test_the_role_is_checked_before_the_request():
    assert refusal(Action.DECIDE_REQUEST, Role.OPERATOR, actor_id="U2", request=Asked("U1")) is (
        Refusal.NOT_AN_APPROVER
    )
    assert refusal(Action.CANCEL_REQUEST, Role.VIEWER, actor_id="U1", request=Asked("U1")) is (
        Refusal.NEEDS_ROLE
    )


def test_explain_names_the_granting_id():
    groups = Groups({"SADMINS": frozenset(), "SONCALL": frozenset({"UOPS"})})
    assert BOOK.explain("UADMIN", groups) == Grant(Role.ADMIN, granted_by="UADMIN")
    assert BOOK.explain("UOPS", groups) == Grant(Role.APPROVER, granted_by="SONCALL")
    failing = Groups({"SADMINS": "ratelimited"})
    grant = BOOK.explain("UOPS", failing)
    assert (grant.role, grant.granted_by) == (Role.OPERATOR, "UOPS")
    assert grant.unverified is not None
    nobody = BOOK.explain(
        "USTRANGER",
        Groups({"SADMINS": frozenset(), "SONCALL": frozenset(), "SSUPPORT": frozenset()}),
    )
    assert nobody == Grant(Role.NONE)
