"""The money policy's rules, table-driven: ceiling, confirmations, two approvers, budget."""

from __future__ import annotations

import pytest

from bot.domain.credits import Balance, ChangeKind, CreditChange, Period, check_applicable
from bot.domain.policy import (
    BudgetUse,
    ConfirmWhy,
    Limits,
    confirmation_needed,
    drops_recurring_plan,
    may_need_confirmation,
    needs_two_approvals,
    over_ceiling,
)
from bot.errors import UserError

LIMITS = Limits(confirm_above=10_000, max_change=1_000_000, two_approvals_above=100_000)
MONTHLY = Balance(unlimited=False, remaining=31_200, allowance=50_000, period=Period.MONTHLY)
ONE_OFF = Balance(unlimited=False, remaining=900)


def change(kind: ChangeKind, credits: int | None = 500) -> CreditChange:
    if kind is ChangeKind.RECURRING:
        return CreditChange(kind, "acme-eu", credits, period=Period.MONTHLY)
    return CreditChange(kind, "acme-eu", credits)


@pytest.mark.parametrize(
    ("credits", "over"),
    [(1_000_000, False), (1_000_001, True), (2_147_483_647, True), (None, False)],
)
def test_ceiling(credits: int | None, over: bool):
    kind = ChangeKind.UNLIMIT if credits is None else ChangeKind.ADD
    assert over_ceiling(change(kind, credits), LIMITS) is over


@pytest.mark.parametrize(
    ("kind", "keeps", "before", "drops"),
    [
        (ChangeKind.ADD, False, MONTHLY, True),  # v2 increment clears the recurring amount
        (ChangeKind.REMOVE, False, MONTHLY, True),
        (ChangeKind.SET, False, MONTHLY, True),
        (ChangeKind.ADD, True, MONTHLY, False),  # v3 PATCH …/remaining keeps the plan
        (ChangeKind.REMOVE, True, MONTHLY, False),
        (ChangeKind.SET, True, MONTHLY, True),  # v3 PUT nonrecurring
        (ChangeKind.RECURRING, False, MONTHLY, False),  # says what it does
        (ChangeKind.ADD, False, ONE_OFF, False),  # nothing to lose
    ],
)
def test_which_changes_end_a_recurring_plan(
    kind: ChangeKind, keeps: bool, before: Balance, drops: bool
):
    assert drops_recurring_plan(change(kind), before, adjustments_keep_recurring=keeps) is drops


@pytest.mark.parametrize(
    ("kind", "credits", "before", "keeps", "why"),
    [
        (ChangeKind.ADD, 1, MONTHLY, False, ConfirmWhy.PLAN),
        (ChangeKind.ADD, 1, MONTHLY, True, None),
        (ChangeKind.ADD, 10_000, ONE_OFF, False, None),
        (ChangeKind.ADD, 10_001, ONE_OFF, False, ConfirmWhy.SIZE),
        (ChangeKind.SET, 20_000, ONE_OFF, True, ConfirmWhy.SIZE),
        (ChangeKind.RECURRING, 20_000, ONE_OFF, False, None),  # sets a plan, not a size
        (ChangeKind.ADD, 20_000, MONTHLY, False, ConfirmWhy.PLAN),  # the plan is said first
    ],
)
def test_confirmation_needed(
    kind: ChangeKind, credits: int, before: Balance, keeps: bool, why: ConfirmWhy | None
):
    asked = change(kind, credits)
    assert confirmation_needed(asked, before, LIMITS, adjustments_keep_recurring=keeps) is why
    if why is not None:  # the cheap pre-check never skips a needed confirmation
        assert may_need_confirmation(asked, LIMITS, adjustments_keep_recurring=keeps)


@pytest.mark.parametrize(
    ("kind", "credits", "two"),
    [
        (ChangeKind.ADD, 100_000, False),
        (ChangeKind.ADD, 100_001, True),
        (ChangeKind.SET, 500_000, True),
        (ChangeKind.UNLIMIT, None, True),
    ],
)
def test_two_approvals_above_the_threshold(kind: ChangeKind, credits: int | None, two: bool):
    assert needs_two_approvals(change(kind, credits), LIMITS) is two
    assert needs_two_approvals(change(kind, credits), Limits()) is False


@pytest.mark.parametrize(
    ("by_actor", "on_target", "credits", "allowed"),
    [(0, 0, 1500, True), (1000, 0, 500, True), (1001, 0, 500, False), (0, 1500, 1, False)],
)
def test_budget_counts_the_operator_and_the_subuser(
    by_actor: int, on_target: int, credits: int, allowed: bool
):
    assert BudgetUse(by_actor, on_target).allows(credits, 1500) is allowed


def test_removing_more_than_the_balance_is_refused_not_clamped():
    with pytest.raises(UserError, match="initech has only 900 credits, so 1,000 cannot"):
        check_applicable(CreditChange(ChangeKind.REMOVE, "initech", 1000), ONE_OFF)
    check_applicable(CreditChange(ChangeKind.REMOVE, "initech", 900), ONE_OFF)
