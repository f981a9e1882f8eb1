"""The central error handler: anything unexpected is logged and answered with an id."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest

from bot.commands.replies import BalanceReply, ErrorReply
from bot.commands.service import Actor, CommandService
from bot.domain.alerts import AlertState
from bot.domain.credits import Account, Balance, Overview
from bot.domain.policy import RoleBook
from bot.errors import StoreError


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


class SteadyBackend(BrokenBackend):
    def get_balance(self, user: str) -> Balance:
        return Balance(unlimited=False, remaining=5_000)


class CountingAlerts:
    """An AlertStore that counts `states` reads; `failing` makes the next read fail."""

    def __init__(self) -> None:
        self.reads = 0
        self.failing = False

    def states(self, users: Sequence[str]) -> dict[str, AlertState]:
        self.reads += 1
        if self.failing:
            self.failing = False
            raise StoreError("the database failed")
        return {}


def test_show_reads_the_forecast_state_once_a_minute_not_once_per_command():
    now = [datetime(2026, 11, 23, 10, 0, tzinfo=UTC)]
    alerts = CountingAlerts()
    service = CommandService(
        backend=SteadyBackend(),  # type: ignore[arg-type]
        roles=RoleBook(admins=frozenset({"UADMIN"})),
        directory=None,
        alerts=alerts,  # type: ignore[arg-type]
        clock=lambda: now[0],
    )
    for _ in range(5):
        assert isinstance(service.handle(Actor("UADMIN"), "show acme"), BalanceReply)
    assert alerts.reads == 1
    service.handle(Actor("UADMIN"), "show other")
    assert alerts.reads == 2
    now[0] += timedelta(seconds=61)
    service.handle(Actor("UADMIN"), "show acme")
    assert alerts.reads == 3


def test_a_failed_forecast_read_is_not_remembered():
    now = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    alerts = CountingAlerts()
    alerts.failing = True
    service = CommandService(
        backend=SteadyBackend(),  # type: ignore[arg-type]
        roles=RoleBook(admins=frozenset({"UADMIN"})),
        directory=None,
        alerts=alerts,  # type: ignore[arg-type]
        clock=lambda: now,
    )
    assert isinstance(service.handle(Actor("UADMIN"), "show acme"), BalanceReply)
    service.handle(Actor("UADMIN"), "show acme")
    assert alerts.reads == 2
