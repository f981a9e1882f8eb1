"""Reasons: the rest of a change's line, and how they are shown (links, escaping)."""

from __future__ import annotations

import pytest

from bot.commands.formatting import linked_reason
from bot.commands.grammar import UsageError
from bot.commands.registry import parse
from bot.commands.replies import ReasonLinks
from bot.domain.credits import change_arguments, change_from_arguments


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("add acme-eu 500 ZD-4411 spring campaign", "ZD-4411 spring campaign"),
        ("add acme-eu 500", None),
        ("remove acme-eu 1,500 refund   ZD-1", "refund ZD-1"),
        ("set acme-eu 10 reset", "reset"),
        ("recurring acme-eu 100 monthly start=2026-12-01 ZD-2 new plan", "ZD-2 new plan"),
        ("recurring acme-eu 100 weekly", None),
        ("unlimit acme-eu enterprise deal", "enterprise deal"),
        ("unlimit acme-eu", None),
    ],
)
def test_the_rest_of_the_line_is_the_reason(text: str, reason: str | None):
    command = parse(text)
    assert command.change is not None
    assert command.change.reason == reason
    # …and it survives the round trip through the database's arguments.
    assert change_from_arguments(change_arguments(command.change)) == command.change


def test_an_unknown_option_before_the_reason_is_still_refused():
    with pytest.raises(UsageError, match="is not an option here"):
        parse("recurring acme-eu 100 monthly strat=2026-12-01 typo")


def test_reads_take_no_reason():
    with pytest.raises(UsageError, match="Unexpected extra words"):
        parse("show acme-eu why")


def test_a_reason_has_a_length_limit():
    with pytest.raises(UsageError, match="too long"):
        parse("add acme-eu 5 " + "x" * 301)


LINKS = ReasonLinks(ticket_url="https://t.example.com/{ticket}")


@pytest.mark.parametrize(
    ("reason", "links", "shown"),
    [
        ("ZD-4411 spring", LINKS, "<https://t.example.com/ZD-4411|ZD-4411> spring"),
        ("ZD-4411 spring", ReasonLinks(), "ZD-4411 spring"),
        ("see https://x.example/a?b=1&c=2", LINKS, "see <https://x.example/a?b=1&amp;c=2>"),
        ("<!channel> & co", LINKS, "&lt;!channel&gt; &amp; co"),
        (
            "JIRA OPS-12",
            ReasonLinks(r"\bOPS-\d+\b", "https://j/{ticket}"),
            "JIRA <https://j/OPS-12|OPS-12>",
        ),
    ],
)
def test_ticket_ids_and_urls_become_links_and_the_rest_is_escaped(
    reason: str, links: ReasonLinks, shown: str
):
    assert linked_reason(reason, links) == shown
