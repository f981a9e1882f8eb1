"""What the App Home shows and the type-ahead offers, from stored state (no server)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.adapters.store.memory import MemoryAlertStore, MemoryStore
from bot.commands.form import FieldError, command_from_fields
from bot.commands.home import HomeService, SubuserNames, rank_subusers
from bot.commands.registry import Verb
from bot.domain.alerts import AlertLevel, AlertState, Thresholds, Usage
from bot.domain.credits import Balance, ChangeKind, CreditChange, Period
from bot.domain.policy import Role, RoleBook

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
ROLES = RoleBook(
    admins=frozenset(),
    approvers=frozenset({"UAPP"}),
    operators=frozenset({"UOP"}),
    viewers=frozenset({"UVIEW"}),
)


def service(store: MemoryStore) -> HomeService:
    return HomeService(
        store=store,
        alerts=MemoryAlertStore(store),
        roles=ROLES,
        directory=None,
        thresholds=Thresholds(below=1_000, percent=10),
        clock=lambda: NOW,
    )


def test_attention_is_exhausted_first_then_soonest_to_run_out():
    store = MemoryStore()
    alerts = MemoryAlertStore(store)
    # "slow" has a stored burn rate; "fast" has none stored, only snapshots to learn from.
    for hours, fast, slow in ((3, 900, 800), (2, 600, 790), (1, 300, 780)):
        alerts.add_snapshots(
            [("fast", Balance(False, fast)), ("slow", Balance(False, slow))],
            at=NOW - timedelta(hours=hours),
        )
    alerts.add_snapshots(
        [
            ("dry", Balance(False, 0)),
            ("plenty", Balance(False, 50_000)),
            ("open", Balance.no_limit()),
            ("custom", Balance(False, 4_000)),
        ],
        at=NOW - timedelta(hours=1),
    )
    alerts.save_states([AlertState("slow", usage=Usage(780, NOW - timedelta(hours=1), 10.0))])
    alerts.set_threshold("custom", 5_000, by="UAPP", at=NOW)
    attention = service(store).attention(NOW)
    assert [(o.user, o.level) for o in attention] == [
        ("dry", AlertLevel.EXHAUSTED),
        ("fast", AlertLevel.LOW),  # 300 at 300/h: ~1 h
        ("slow", AlertLevel.LOW),  # 780 at 10/h: ~78 h
        ("custom", AlertLevel.LOW),  # under its own threshold; pace unknown
    ]
    assert attention[1].hours_left == pytest.approx(1.0)
    assert attention[2].hours_left == pytest.approx(78.0)
    assert attention[3].hours_left is None


def test_an_account_above_its_threshold_that_runs_out_within_a_day_needs_attention():
    store = MemoryStore()
    alerts = MemoryAlertStore(store)
    seen = NOW - timedelta(minutes=10)
    alerts.add_snapshots(
        [("burning", Balance(False, 6_000)), ("steady", Balance(False, 6_000))], at=seen
    )
    alerts.save_states(
        [
            AlertState("burning", usage=Usage(6_000, seen, 1_000.0)),  # ~6 h left
            AlertState("steady", usage=Usage(6_000, seen, 10.0)),  # ~600 h left
        ]
    )
    [outlook] = service(store).attention(NOW)
    assert (outlook.user, outlook.remaining, outlook.seen_at) == ("burning", 6_000, seen)
    assert outlook.hours_left == pytest.approx(6.0)


def test_a_home_shows_pending_to_approvers_and_each_their_own_requests():
    store = MemoryStore()
    add = CreditChange(ChangeKind.ADD, "initech", 500)
    mine = store.create_request(add, requester_id="UOP", now=NOW, expires_at=NOW + timedelta(1))
    home = service(store)
    approver = home.home("UAPP")
    assert approver.role is Role.APPROVER
    assert [r.id for r in approver.pending] == [mine.id]
    operator = home.home("UOP")
    assert (operator.pending, [r.id for r in operator.mine]) == ((), [mine.id])
    assert operator.may_request
    assert not operator.may_decide


def test_a_home_says_the_database_failed_instead_of_failing():
    store = MemoryStore()
    store.down()
    home = service(store).home("UVIEW")
    assert home.store_failed
    assert home.role is Role.VIEWER


def test_recent_viewers_are_remembered():
    store = MemoryStore()
    home = service(store)
    home.saw("UVIEW")
    assert home.recent_viewers(within=timedelta(hours=1), limit=5) == ["UVIEW"]


def test_ranking_puts_prefix_matches_first_then_substrings_at_most_100():
    names = sorted(["alice", "alicia", "malibu", "bob", "Alistair", "kali-ops"])
    assert rank_subusers(names, "ali") == ["Alistair", "alice", "alicia", "kali-ops", "malibu"]
    assert rank_subusers(names, "  ") == names
    many = [f"acme-{i:05d}" for i in range(5_000)]
    assert len(rank_subusers(many, "acme")) == 100
    assert rank_subusers(["xacme", *many], "acme")[:2] == ["acme-00000", "acme-00001"]


def test_subuser_names_are_read_at_most_once_a_ttl():
    store = MemoryStore()
    alerts = MemoryAlertStore(store)
    alerts.add_snapshots([("alice", Balance(False, 1))], at=NOW)
    ticks = [0.0]
    names = SubuserNames(alerts, ttl=60, monotonic=lambda: ticks[0])
    assert names.suggest("al") == ["alice"]
    alerts.add_snapshots([("alicia", Balance(False, 1))], at=NOW)
    assert names.suggest("al") == ["alice"]  # cached
    ticks[0] = 61
    assert names.suggest("al") == ["alice", "alicia"]
    store.down()
    ticks[0] = 200
    assert names.suggest("al") == ["alice", "alicia"]  # a failed read keeps the last list


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"action": "add", "user": "acme-eu", "amount": "1,500", "reason": " ZD-1  spring "},
            CreditChange(ChangeKind.ADD, "acme-eu", 1_500, reason="ZD-1 spring"),
        ),
        (
            {"action": "recurring", "user": "acme-eu", "amount": "50000", "period": "monthly"},
            CreditChange(ChangeKind.RECURRING, "acme-eu", 50_000, period=Period.MONTHLY),
        ),
        (
            {"action": "unlimit", "user": "a@b.example"},
            CreditChange(ChangeKind.UNLIMIT, "a@b.example"),
        ),
    ],
)
def test_a_form_becomes_the_command_the_line_would(fields, expected):
    command = command_from_fields(**fields)
    assert command.change == expected
    assert command.verb is Verb(expected.kind.value)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"action": "show", "user": "acme-eu"}, "action"),
        ({"action": "add", "user": "<@U1>", "amount": "5"}, "user"),
        ({"action": "add", "user": "acme-eu", "amount": "0"}, "amount"),
        ({"action": "add", "user": "acme-eu", "amount": "-5"}, "amount"),
        ({"action": "set", "user": "acme-eu", "amount": "5", "period": "weekly"}, "period"),
        ({"action": "add", "user": "acme-eu", "amount": "5", "reason": "x" * 301}, "reason"),
    ],
)
def test_a_bad_form_field_is_named(fields, field):
    with pytest.raises(FieldError) as raised:
        command_from_fields(**fields)
    assert raised.value.field == field
