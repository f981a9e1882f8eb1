"""`/credits whoami`: your role, what you may do, and which ID granted it (issue 11)."""

from __future__ import annotations

from tests.scenarios.conftest import ONCALL_GROUP, ONCALL_MEMBER, USERS, BotUnderTest


def test_a_direct_grant_names_the_user_id(bot: BotUnderTest):
    text = bot.command("whoami", user=USERS["admin"]).text
    assert "*admin*" in text
    assert f"your user ID `{USERS['admin']}`" in text
    for name in ("show", "add", "threshold", "approve", "resolve", "whoami"):
        assert f"`{name}`" in text
    assert bot.slack.state.calls_to("usergroups.users.list") == []  # nothing to look up


def test_a_group_grant_names_the_group(bot: BotUnderTest):
    text = bot.command("whoami", user=ONCALL_MEMBER).text
    assert "*approver*" in text
    assert f"`{ONCALL_GROUP}`" in text
    assert "`approve`" in text


def test_an_operator_is_told_what_needs_an_approver(bot: BotUnderTest):
    text = bot.command("whoami", user=USERS["operator"]).text
    assert "*operator*" in text
    assert "`add`" in text
    assert "`approve`" not in text
    assert "need an approver" in text


def test_nobody_is_told_that_nothing_grants_a_role(bot: BotUnderTest):
    text = bot.command("whoami", user=USERS["none"]).text
    assert "*no role*" in text
    assert "No user ID or user group grants you a role" in text
    assert USERS["none"] in text  # what to give an admin
    assert "`show`" not in text


def test_a_failed_group_lookup_is_said_honestly(bot: BotUnderTest):
    bot.slack.state.groups[ONCALL_GROUP] = "missing_scope"
    text = bot.command("whoami", user=ONCALL_MEMBER).text
    assert "*no role*" in text
    assert "could not be checked (missing_scope)" in text
    assert "`approve`" not in text


def test_whoami_is_in_help(bot: BotUnderTest):
    text = bot.command("help", user=USERS["viewer"]).text
    assert "/credits whoami" in text
