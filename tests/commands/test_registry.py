"""The subcommand registry: one record per subcommand, and everything reads it."""

from __future__ import annotations

import pytest

from bot.commands import grammar, messages
from bot.commands.registry import BY_VERB, SUBCOMMANDS, USAGE, Verb, parse
from bot.domain.policy import REQUIRED_ROLE


def test_every_verb_has_exactly_one_record():
    assert [record.verb for record in SUBCOMMANDS] == list(Verb)
    assert set(BY_VERB) == set(Verb)


@pytest.mark.parametrize("record", SUBCOMMANDS, ids=lambda r: r.name)
def test_a_record_is_complete(record):
    assert record.usage.startswith(f"/credits {record.name}")
    assert USAGE[record.verb] == record.usage
    assert record.help
    assert record.help in vars(messages).values()
    assert record.action in REQUIRED_ROLE
    assert record.required_role is REQUIRED_ROLE[record.action]


def test_a_wrong_form_shows_the_records_usage():
    for record in SUBCOMMANDS:
        if record.parse is grammar.no_arguments:
            with pytest.raises(grammar.UsageError) as caught:
                parse(f"{record.name} extra")
            assert caught.value.usage == record.usage
