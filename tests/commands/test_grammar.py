"""The `/credits` grammar, table-driven (no servers)."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.commands.grammar import Command, UnknownSubcommand, UsageError
from bot.commands.registry import Verb, parse
from bot.domain.credits import ChangeKind, CreditChange, Period
from bot.errors import UserError

GOOD = [
    ("", Command(Verb.HELP)),
    ("   ", Command(Verb.HELP)),
    ("help", Command(Verb.HELP)),
    ("HELP add", Command(Verb.HELP, topic=Verb.ADD)),
    ("/credits show acme-eu", Command(Verb.SHOW, user="acme-eu")),
    ("show   acme-eu  ", Command(Verb.SHOW, user="acme-eu")),
    ("Show Acme_EU.2", Command(Verb.SHOW, user="Acme_EU.2")),
    ("overview alice@example.com", Command(Verb.OVERVIEW, user="alice@example.com")),
    (
        "overview <mailto:alice@example.com|alice@example.com>",
        Command(Verb.OVERVIEW, user="alice@example.com"),
    ),
    ("show <mailto:bob+eu@example.org>", Command(Verb.SHOW, user="bob+eu@example.org")),
    (
        "add acme-eu 1,500",
        Command(Verb.ADD, user="acme-eu", change=CreditChange(ChangeKind.ADD, "acme-eu", 1500)),
    ),
    (
        "remove acme-eu 4294967295",
        Command(
            Verb.REMOVE,
            user="acme-eu",
            change=CreditChange(ChangeKind.REMOVE, "acme-eu", 4_294_967_295),
        ),
    ),
    (
        "set acme-eu 1,000,000",
        Command(Verb.SET, user="acme-eu", change=CreditChange(ChangeKind.SET, "acme-eu", 10**6)),
    ),
    (
        "unlimit acme-eu",
        Command(Verb.UNLIMIT, user="acme-eu", change=CreditChange(ChangeKind.UNLIMIT, "acme-eu")),
    ),
    (
        "recurring acme-eu 50,000 Monthly start=2026-12-01 end=2027-12-01 initial=0",
        Command(
            Verb.RECURRING,
            user="acme-eu",
            change=CreditChange(
                ChangeKind.RECURRING,
                "acme-eu",
                50_000,
                period=Period.MONTHLY,
                start=date(2026, 12, 1),
                end=date(2027, 12, 1),
                initial=0,
            ),
        ),
    ),
    ("approve 12", Command(Verb.APPROVE, request_id=12)),
    ("/credits approve #12", Command(Verb.APPROVE, request_id=12)),
    ("deny 3", Command(Verb.DENY, request_id=3)),
    (
        "deny 3 ZD-4411  customer &amp; finance agreed",
        Command(Verb.DENY, request_id=3, reason="ZD-4411  customer & finance agreed"),
    ),
    ("/credits deny #3 no", Command(Verb.DENY, request_id=3, reason="no")),
    ("cancel 7", Command(Verb.CANCEL, request_id=7)),
    ("resolve 4 applied", Command(Verb.RESOLVE, request_id=4, applied=True)),
    ("RESOLVE 4 Not-Applied", Command(Verb.RESOLVE, request_id=4, applied=False)),
]


@pytest.mark.parametrize(("text", "command"), GOOD)
def test_good_commands(text: str, command: Command):
    assert parse(text) == command


@pytest.mark.parametrize(
    ("text", "usage"),
    [
        ("add acme-eu 0", "/credits add USER N"),
        ("remove acme-eu", "/credits remove USER N"),
        ("set acme-eu 1.5", "/credits set USER N"),
        ("recurring acme-eu 5", "/credits recurring USER N daily|weekly|monthly"),
        ("show", "/credits show USER"),
        ("approve", "/credits approve ID"),
        ("approve 0", "/credits approve ID"),
        ("approve 1 2", "/credits approve ID"),
        ("cancel x", "/credits cancel ID"),
        ("deny 99999999999 x", "/credits deny ID [reason]"),
        ("resolve 4", "/credits resolve ID applied|not-applied"),
        ("resolve 4 maybe", "/credits resolve ID applied|not-applied"),
    ],
)
def test_refusals_show_the_right_form(text: str, usage: str):
    with pytest.raises(UsageError) as caught:
        parse(text)
    assert caught.value.usage is not None
    assert caught.value.usage.startswith(usage)


@pytest.mark.parametrize(
    ("text", "suggestion"), [("shwo x", "show"), ("ad x 5", "add"), ("unlmit x", "unlimit")]
)
def test_did_you_mean(text: str, suggestion: str):
    with pytest.raises(UnknownSubcommand, match=f"Did you mean `{suggestion}`"):
        parse(text)


def test_echoed_input_cannot_inject_markup():
    with pytest.raises(UsageError) as caught:
        parse("add <!channel>&`x` 5")
    message = str(caught.value)
    assert "<!channel>" not in message
    assert "`x`" not in message


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=600))
def test_any_text_parses_or_raises_a_user_error(text: str):
    try:
        command = parse(text)
    except UserError:
        return
    assert isinstance(command, Command)
    if command.user is not None:
        assert len(command.user) <= 64
        assert command.user.isascii()
        assert "&" not in command.user
        assert "=" not in command.user
