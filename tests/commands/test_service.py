"""`CommandService` with real collaborators: a `MemoryStore`, a `ChangeService` and a
SendGrid client against the simulator. The central handler turns every failure into
a reply; anything unexpected is logged and answered with an id."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.adapters.sendgrid import SendGridV2Client
from bot.adapters.sendgrid.http import new_session
from bot.adapters.store.memory import MemoryAlertStore, MemoryStore
from bot.commands import messages
from bot.commands.changes import ChangeService
from bot.commands.replies import BalanceReply, ChangeReply, ErrorReply
from bot.commands.service import Actor, CommandService
from bot.domain.alerts import AlertState, Usage
from bot.domain.approvals import AuditAction
from bot.domain.policy import RoleBook
from bot.domain.ports import AlertStore
from bot.errors import StoreError
from bot.simulator import SimulatorState
from tests.conftest import ClientFactory

ADMIN = "UADMIN"
ROLES = RoleBook(admins=frozenset({ADMIN}))
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def build_service(
    client: SendGridV2Client,
    store: MemoryStore,
    *,
    alerts: AlertStore | None = None,
    clock: Callable[[], datetime] = lambda: NOW,
) -> CommandService:
    changes = ChangeService(
        store=store,
        backend=client,
        roles=ROLES,
        directory=None,
        notifier=None,
        ttl=timedelta(hours=24),
        executor="test:1:service",
        clock=clock,
    )
    return CommandService(
        changes=changes,
        alerts=alerts or MemoryAlertStore(store),
        new_error_id=lambda: "err-0042",
        clock=clock,
    )


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


def test_unexpected_error_is_logged_with_traceback_and_answered_with_an_id(
    make_client: ClientFactory,
    store: MemoryStore,
    sim_state: SimulatorState,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
):
    """A deployment mistake: the HTTP session is set up for a client certificate whose
    file is missing. `requests` raises a plain OSError before anything is sent —
    no SendGrid error, nothing the service expects."""
    missing = tmp_path / "client-cert.pem"
    session = new_session()
    session.cert = str(missing)
    service = build_service(make_client(session=session), store)
    with caplog.at_level(logging.ERROR):
        reply = service.handle(Actor(ADMIN), "show acme-eu")
    assert isinstance(reply, ErrorReply)
    assert reply.message == messages.UNEXPECTED
    assert "err-0042" in (reply.next_step or "")
    assert str(missing) not in reply.message  # no internals in the reply
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "err-0042" in record.getMessage()
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], OSError)
    assert sim_state.calls() == []


def test_a_change_runs_through_its_lifecycle_and_the_audit_trail(
    make_client: ClientFactory, store: MemoryStore, sim_state: SimulatorState
):
    service = build_service(make_client(), store)
    # acme-us has no recurring plan: an add to acme-eu's would wait for a Confirm (policy).
    reply = service.handle(Actor(ADMIN), "add acme-us 500")
    assert isinstance(reply, ChangeReply)
    assert reply.recorded
    assert reply.result.after is not None
    assert reply.result.after.remaining == 120_500
    assert len(sim_state.writes(user="acme-us", task="increment")) == 1
    [event] = store.audit(target="acme-us")
    assert (event.action, event.actor_id, event.outcome) == (AuditAction.CHANGED, ADMIN, "ok")


def test_a_database_that_is_down_is_answered_with_an_id_and_nothing_is_sent(
    make_client: ClientFactory,
    store: MemoryStore,
    sim_state: SimulatorState,
    caplog: pytest.LogCaptureFixture,
):
    service = build_service(make_client(), store)
    store.down()
    with caplog.at_level(logging.ERROR):
        reply = service.handle(Actor(ADMIN), "add acme-eu 500")
    assert isinstance(reply, ErrorReply)
    assert reply.message == messages.STORE_FAILED
    assert "err-0042" in (reply.next_step or "")
    assert sim_state.writes() == []
    assert any("err-0042" in r.getMessage() for r in caplog.records)


def test_a_balance_is_answered_without_a_forecast_while_the_database_is_down(
    make_client: ClientFactory, store: MemoryStore
):
    service = build_service(make_client(), store)
    MemoryAlertStore(store).save_states(
        [AlertState("globex", usage=Usage(800, NOW - timedelta(hours=4), 40.0))]
    )
    answered = service.handle(Actor(ADMIN), "show globex")
    assert isinstance(answered, BalanceReply)
    assert answered.hours_left == pytest.approx(800 / 40.0)  # from the stored usage
    store.down()
    degraded = service.handle(Actor(ADMIN), "show globex")
    assert isinstance(degraded, BalanceReply)  # the forecast read a moment ago is kept
    assert (degraded.balance.remaining, degraded.hours_left) == (640, pytest.approx(20.0))
    uncached = service.handle(Actor(ADMIN), "show initech")
    assert isinstance(uncached, BalanceReply)
    assert (uncached.balance.remaining, uncached.hours_left) == (900, None)


class CountingAlerts:
    """An AlertStore's `states`, counting reads; `failing` makes the next read fail."""

    def __init__(self) -> None:
        self.reads = 0
        self.failing = False

    def states(self, users: Sequence[str]) -> dict[str, AlertState]:
        self.reads += 1
        if self.failing:
            self.failing = False
            raise StoreError("the database failed")
        return {}


def test_show_reads_the_forecast_state_once_a_minute_not_once_per_command(
    make_client: ClientFactory,
):
    now = [datetime(2026, 11, 23, 10, 0, tzinfo=UTC)]
    alerts = CountingAlerts()
    service = build_service(make_client(), MemoryStore(), alerts=alerts, clock=lambda: now[0])
    for _ in range(5):
        assert isinstance(service.handle(Actor(ADMIN), "show acme-eu"), BalanceReply)
    assert alerts.reads == 1
    service.handle(Actor(ADMIN), "show globex")
    assert alerts.reads == 2
    now[0] += timedelta(seconds=61)
    service.handle(Actor(ADMIN), "show acme-eu")
    assert alerts.reads == 3


def test_a_failed_forecast_read_is_not_remembered(make_client: ClientFactory):
    now = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    alerts = CountingAlerts()
    alerts.failing = True
    service = build_service(make_client(), MemoryStore(), alerts=alerts, clock=lambda: now)
    assert isinstance(service.handle(Actor(ADMIN), "show acme-eu"), BalanceReply)
    service.handle(Actor(ADMIN), "show acme-eu")
    assert alerts.reads == 2
