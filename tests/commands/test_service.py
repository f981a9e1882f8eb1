"""The central error handler: anything unexpected is logged and answered with an id."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from bot.commands.replies import ErrorReply
from bot.commands.service import Actor, CommandService
from bot.domain.credits import Account, Balance, Overview
from bot.domain.policy import RoleBook


class BrokenBackend:
    """A CreditsBackend whose reads fail with a bug-like error (injected collaborator)."""

    def get_balance(self, user: str) -> Balance:
        raise KeyError("credit_remain")

    def get_overview(self, user: str) -> Overview:
        raise ZeroDivisionError

    def list_accounts(self) -> Iterator[Account]:
        return iter(())

    def check_supported(self, change: object) -> None: ...
    def increment_credits(self, user: str, credits: int) -> None: ...
    def decrement_credits(self, user: str, credits: int) -> None: ...
    def set_total_credits(self, user: str, credits: int) -> None: ...
    def set_recurring_credits(
        self, user: str, credits: int, period: object, **_: object
    ) -> None: ...
    def remove_limit(self, user: str) -> None: ...


def test_unexpected_error_is_logged_with_traceback_and_answered_with_an_id(
    caplog: pytest.LogCaptureFixture,
):
    service = CommandService(
        backend=BrokenBackend(),  # type: ignore[arg-type]
        roles=RoleBook(admins=frozenset({"UADMIN"})),
        directory=None,
        new_error_id=lambda: "err-0042",
    )
    with caplog.at_level(logging.ERROR):
        reply = service.handle(Actor("UADMIN"), "show acme")
    assert isinstance(reply, ErrorReply)
    assert "err-0042" in (reply.next_step or "")
    assert "credit_remain" not in reply.message  # no internals in the reply
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "err-0042" in record.getMessage()
    assert record.exc_info is not None
