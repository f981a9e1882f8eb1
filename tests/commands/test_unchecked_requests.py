"""A request whose replay could not be checked (the database did not answer):
every way of changing something is refused with one sentence; reads still answer."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from bot.adapters.store.memory import MemoryAlertStore, MemoryStore
from bot.commands import messages
from bot.commands.changes import ChangeService
from bot.commands.replies import BalanceReply, ErrorReply, HelpReply, Reply
from bot.commands.service import Actor, CommandService
from bot.domain.policy import RoleBook
from bot.simulator import SimulatorServer
from tests.conftest import ClientFactory

ADMIN = Actor("UADMIN")

CHANGES: dict[str, Callable[[CommandService], Reply]] = {
    "add": lambda s: s.handle(ADMIN, "add acme-eu 5", replay_checked=False),
    "remove": lambda s: s.handle(ADMIN, "remove acme-eu 5", replay_checked=False),
    "set": lambda s: s.handle(ADMIN, "set acme-eu 5", replay_checked=False),
    "recurring": lambda s: s.handle(ADMIN, "recurring acme-eu 5 daily", replay_checked=False),
    "unlimit": lambda s: s.handle(ADMIN, "unlimit acme-eu", replay_checked=False),
    "threshold": lambda s: s.handle(ADMIN, "threshold acme-eu 5", replay_checked=False),
    "approve": lambda s: s.approve(ADMIN, 1, replay_checked=False),
    "deny": lambda s: s.deny(ADMIN, 1, "no", replay_checked=False),
    "snooze": lambda s: s.snooze(ADMIN, "acme-eu", replay_checked=False),
}


@pytest.fixture
def service(make_client: ClientFactory) -> CommandService:
    store, backend, roles = (
        MemoryStore(),
        make_client(),
        RoleBook(admins=frozenset({ADMIN.user_id})),
    )
    changes = ChangeService(
        store=store,
        backend=backend,
        roles=roles,
        directory=None,
        notifier=None,
        ttl=timedelta(hours=24),
        executor="test:1:unchecked",
    )
    return CommandService(changes=changes, alerts=MemoryAlertStore(store))


@pytest.mark.parametrize("change", CHANGES.values(), ids=CHANGES.keys())
def test_every_change_is_refused_with_one_sentence(
    service: CommandService, simulator: SimulatorServer, change: Callable[[CommandService], Reply]
):
    reply = change(service)
    assert isinstance(reply, ErrorReply)
    assert reply.message == messages.NO_CHANGES_WITHOUT_DATABASE
    assert simulator.state.calls() == []


def test_reads_still_answer(service: CommandService):
    assert isinstance(service.handle(ADMIN, "help", replay_checked=False), HelpReply)
    assert isinstance(service.handle(ADMIN, "show acme-eu", replay_checked=False), BalanceReply)
