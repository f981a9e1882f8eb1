"""The credits model: change validation and predicted balances (no servers needed)."""

from __future__ import annotations

from datetime import date

import pytest

from bot.domain.credits import MAX_CREDITS, Balance, ChangeKind, CreditChange, Period
from bot.errors import UserError


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": ChangeKind.ADD}, "needs credits"),
        ({"kind": ChangeKind.UNLIMIT, "credits": 5}, "takes no credits"),
        ({"kind": ChangeKind.ADD, "credits": -1}, "between 0 and"),
        ({"kind": ChangeKind.SET, "credits": MAX_CREDITS + 1}, "between 0 and"),
        ({"kind": ChangeKind.RECURRING, "credits": 5}, "period goes with"),
        ({"kind": ChangeKind.ADD, "credits": 5, "period": Period.DAILY}, "period goes with"),
        ({"kind": ChangeKind.SET, "credits": 5, "initial": 1}, "`recurring` only"),
        (
            {
                "kind": ChangeKind.RECURRING,
                "credits": 5,
                "period": Period.DAILY,
                "start": date(2026, 2, 1),
                "end": date(2026, 1, 1),
            },
            "end date is before",
        ),
    ],
)
def test_invalid_changes_are_refused(kwargs: dict[str, object], message: str):
    with pytest.raises(UserError, match=message):
        CreditChange(user="acme", **kwargs)  # type: ignore[arg-type]


LIMITED = Balance(unlimited=False, remaining=100, allowance=500, period=Period.MONTHLY)


@pytest.mark.parametrize(
    ("change", "before", "expected"),
    [
        (CreditChange(ChangeKind.ADD, "a", 50), LIMITED, Balance(False, 150)),
        (CreditChange(ChangeKind.REMOVE, "a", 500), LIMITED, Balance(False, 0)),
        (CreditChange(ChangeKind.SET, "a", 7), LIMITED, Balance(False, 7)),
        (CreditChange(ChangeKind.UNLIMIT, "a"), LIMITED, Balance.no_limit()),
        (CreditChange(ChangeKind.ADD, "a", 50), Balance.no_limit(), None),
        (
            CreditChange(ChangeKind.RECURRING, "a", 1000, period=Period.WEEKLY, initial=10),
            LIMITED,
            Balance(False, 10, 1000, Period.WEEKLY),
        ),
    ],
)
def test_expected_balance_after_a_change(
    change: CreditChange, before: Balance, expected: Balance | None
):
    assert change.expected_after(before) == expected


def test_percent_of_allowance():
    assert LIMITED.percent_of_allowance() == 20.0
    assert Balance(False, 5).percent_of_allowance() is None
    assert Balance.no_limit().percent_of_allowance() is None
