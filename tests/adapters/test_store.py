"""One contract suite for the stores: in memory and SQLite always, PostgreSQL when
TEST_DATABASE_URL is set. Tests that are about SQL itself (migrations, rows
deleted behind the store's back, a database recreated empty) run on SQL only."""

from __future__ import annotations

import inspect
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.adapters.store import SqlStore
from bot.adapters.store.alerts import SqlAlertStore
from bot.adapters.store.instances import INSTANCE_LEASE, this_host
from bot.adapters.store.memory import MemoryAlertStore, MemoryStore
from bot.domain.alerts import AlertLevel, AlertState, Usage
from bot.domain.approvals import (
    AuditAction,
    AuditEvent,
    ChangeOrigin,
    ChangeRecord,
    ChangeState,
    Refusal,
    Reminder,
    RequestStatus,
    may_decide,
)
from bot.domain.credits import Balance, ChangeKind, CreditChange, Period
from bot.domain.policy import BudgetUse, Role
from bot.domain.ports import AlertStore, Store
from bot.errors import StoreError
from tests.pg import postgres_url, reset_postgres

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=24)
ADD = CreditChange(ChangeKind.ADD, "acme-eu", 500)


SQL_BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
BACKENDS = ["memory", *SQL_BACKENDS]

AnyStore = SqlStore | MemoryStore


def open_sql_store(backend: str, tmp_path: Path) -> SqlStore:
    if backend == "sqlite":
        return SqlStore.from_url(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    pg = postgres_url()
    if pg is None:
        pytest.skip("TEST_DATABASE_URL is not set")
    reset_postgres(pg)
    return SqlStore.from_url(pg)


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AnyStore]:
    store: AnyStore = (
        MemoryStore() if request.param == "memory" else open_sql_store(request.param, tmp_path)
    )
    yield store
    store.close()


@pytest.fixture(params=SQL_BACKENDS)
def sql_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    store = open_sql_store(request.param, tmp_path)
    yield store
    store.close()


def test_migrations_are_idempotent(sql_store: SqlStore):
    """SQL only: there is nothing to migrate in memory."""
    from bot.adapters.store import migrate

    migrate(sql_store.engine)
    migrate(sql_store.engine)
    assert sql_store.open_requests() == []


def test_a_request_round_trips(store: AnyStore):
    change = CreditChange(
        ChangeKind.RECURRING,
        "acme-eu",
        50_000,
        period=Period.MONTHLY,
        start=datetime(2026, 12, 1).date(),
        initial=10,
    )
    created = store.create_request(change, requester_id="U1", now=NOW, expires_at=LATER)
    store.attach_message(created.id, channel_id="C1", message_ts="1.2")
    loaded = store.get_request(created.id)
    assert loaded is not None
    assert loaded.change == change
    assert (loaded.status, loaded.requester_id) == (RequestStatus.PENDING, "U1")
    assert (loaded.requested_at, loaded.expires_at) == (NOW, LATER)
    assert (loaded.channel_id, loaded.message_ts) == ("C1", "1.2")
    assert store.get_request(created.id + 1000) is None


def test_claim_happens_once_and_records_the_change_as_intent(store: AnyStore):
    request = store.create_request(ADD, requester_id="U1", now=NOW, expires_at=LATER)
    first = store.claim(request.id, approver_id="U2", now=NOW, executor="a")
    second = store.claim(request.id, approver_id="U3", now=NOW, executor="b")
    assert first is not None
    claimed, record = first
    assert (claimed.status, claimed.decided_by) == (RequestStatus.EXECUTING, "U2")
    assert (record.state, record.request_id, record.owner) == (ChangeState.INTENT, request.id, "a")
    assert (record.origin, record.change) == (ChangeOrigin.REQUEST, ADD)
    assert second is None
    assert store.deny(request.id, approver_id="U3", reason=None, now=NOW) is None


def test_claim_under_contention_has_exactly_one_winner(store: AnyStore):
    request = store.create_request(ADD, requester_id="U1", now=NOW, expires_at=LATER)
    winners = []
    barrier = threading.Barrier(12)

    def click(index: int) -> None:
        barrier.wait()
        if store.claim(request.id, approver_id=f"U{index}", now=NOW, executor=f"x{index}"):
            winners.append(index)

    threads = [threading.Thread(target=click, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1


def test_expired_request_cannot_be_claimed_or_denied_and_expires_once(store: AnyStore):
    request = store.create_request(ADD, requester_id="U1", now=NOW, expires_at=NOW)
    assert store.claim(request.id, approver_id="U2", now=NOW, executor="a") is None
    assert store.deny(request.id, approver_id="U2", reason=None, now=NOW) is None
    [expired] = store.expire_due(NOW)
    assert expired.status is RequestStatus.EXPIRED
    assert store.expire_due(NOW) == []


def changed_event(user: str = "acme-eu") -> AuditEvent:
    return AuditEvent(
        at=NOW, actor_id="U1", action=AuditAction.CHANGED, target=user, outcome="sending"
    )


def test_a_direct_change_is_sent_once_by_its_owner_and_settled_once(store: AnyStore):
    record = store.begin_change(ADD, actor_id="U1", owner="me", now=NOW, audit=changed_event())
    assert (record.state, record.origin) == (ChangeState.INTENT, ChangeOrigin.DIRECT)
    before, after = Balance(False, 100), Balance(False, 600)
    assert not store.mark_sent(record.id, owner="someone-else", before=before, now=NOW)
    assert store.mark_sent(record.id, owner="me", before=before, now=NOW)
    assert not store.mark_sent(record.id, owner="me", before=before, now=NOW)
    settled = store.settle(
        record, state=ChangeState.APPLIED, before=before, after=after, detail="ok", now=NOW
    )
    assert settled == (True, None)
    assert store.settle(
        record, state=ChangeState.UNKNOWN, before=before, after=None, detail="late", now=NOW
    ) == (False, None)
    [event] = store.audit(target="acme-eu")
    assert (event.action, event.outcome, event.before, event.after) == (
        AuditAction.CHANGED,
        "ok",
        before,
        after,
    )
    assert store.unfinished_changes("me") == []


def test_settling_an_approved_change_finishes_its_request_with_a_note(store: AnyStore):
    request = store.create_request(ADD, requester_id="U1", now=NOW, expires_at=LATER)
    claimed = store.claim(request.id, approver_id="U2", now=NOW, executor="me")
    assert claimed is not None
    _, record = claimed
    note = AuditEvent(at=NOW, actor_id="U2", action=AuditAction.EXECUTED, request_id=request.id)
    after = Balance(False, 600)
    settled, finished = store.settle(
        record,
        state=ChangeState.APPLIED,
        before=None,
        after=after,
        detail="ok",
        now=NOW,
        note=note,
    )
    assert settled
    assert finished is not None
    assert (finished.status, finished.after) == (RequestStatus.APPROVED, after)
    assert [e.action for e in store.audit()] == [AuditAction.EXECUTED]
    assert store.open_requests() == []


def test_only_changes_of_gone_instances_are_abandoned(store: AnyStore):
    stale = NOW - timedelta(minutes=5)
    store.register_instance("far-away:1:live", kind="serve", now=NOW)
    store.register_instance("far-away:2:silent", kind="serve", now=stale)
    store.register_instance("far-away:3:stopped", kind="serve", now=NOW)
    store.stop_instance("far-away:3:stopped", now=NOW)
    here = f"{this_host()}:{os.getpid()}:me"
    store.register_instance(here, kind="serve", now=NOW)  # beating, and running here
    reused = f"{this_host()}:{os.getpid()}:old"
    store.register_instance(reused, kind="serve", now=stale)  # its pid runs: someone else
    gone_here = f"{this_host()}:{dead_pid()}:gone"
    store.register_instance(gone_here, kind="serve", now=NOW)  # beat just now, but killed
    other_namespace = f"{socket.gethostname()}@1:{dead_pid()}:container"
    store.register_instance(other_namespace, kind="serve", now=NOW)  # same name, other PIDs
    owners = [
        "far-away:1:live",
        "far-away:2:silent",
        "far-away:3:stopped",
        here,
        reused,
        gone_here,
        other_namespace,
        "never:9:seen",
    ]
    for owner in owners:
        store.begin_change(ADD, actor_id="U1", owner=owner, now=NOW, audit=changed_event())
    abandoned = {r.owner for r in store.abandoned_changes(NOW)}
    assert abandoned == {
        "far-away:2:silent",
        "far-away:3:stopped",
        reused,
        gone_here,
        "never:9:seen",
    }
    store.heartbeat("far-away:2:silent", now=NOW)
    assert {r.owner for r in store.abandoned_changes(NOW)} == {
        "far-away:3:stopped",
        reused,
        gone_here,
        "never:9:seen",
    }


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_claimed_request_without_a_change_record_of_a_gone_process_becomes_unknown(
    sql_store: SqlStore,
):
    """Requests claimed before change records existed (an upgrade mid-execution).

    SQL only: such rows exist only in a database that was upgraded while a change ran,
    made here by deleting the change rows with SQL; a memory store never outlives its
    process, so it never holds a request from an older version."""
    from sqlalchemy import delete

    from bot.adapters.store.tables import credit_changes

    store = sql_store
    request = store.create_request(ADD, requester_id="U1", now=NOW, expires_at=LATER)
    store.claim(request.id, approver_id="U2", now=NOW, executor="old:1:process")
    with store.transaction() as connection:
        connection.execute(delete(credit_changes))
    [orphan] = store.orphans_to_unknown(now=NOW)
    assert orphan.status is RequestStatus.UNKNOWN
    assert store.orphans_to_unknown(now=NOW) == []
    assert [r.id for r in store.open_requests()] == [request.id]


def test_audit_is_newest_first_filtered_and_completed(store: AnyStore):
    for index in range(25):
        store.record(
            AuditEvent(
                at=NOW + timedelta(seconds=index),
                actor_id="U1",
                action=AuditAction.REQUESTED,
                target="acme-eu" if index % 2 else "globex",
                arguments={"credits": index},
            )
        )
    latest = store.audit()
    assert len(latest) == 20
    assert latest[0].arguments == {"credits": 24}
    assert [e.target for e in store.audit(target="globex", limit=3)] == ["globex"] * 3


@pytest.mark.postgres
def test_a_database_recreated_empty_is_migrated_again_on_reconnect():
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from bot.errors import StoreError
    from tests.pg import create_database, server_url

    admin = server_url()
    if admin is None:
        pytest.skip("TEST_DATABASE_URL is not set")
    url = create_database()
    store = SqlStore.from_url(url)
    store.create_request(ADD, requester_id="U1", now=NOW, expires_at=LATER)
    name = make_url(url).database
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:  # a restore onto an empty database
        connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    answers = []
    for _ in range(2):  # the first may meet the dead connection; never more than that
        try:
            answers.append(store.open_requests())
        except StoreError:
            answers.append(None)
    assert answers[-1] == []
    store.create_request(ADD, requester_id="U1", now=NOW, expires_at=LATER)
    assert len(store.open_requests()) == 1
    store.close()


# --- more of the contract: times, races, recovery, instances -----------------------------


def test_times_come_back_in_utc(store: AnyStore):
    """Callers pass UTC (`utc_now`); every backend gives back aware UTC datetimes.

    (SQLite keeps no offset: a time in another zone would come back shifted, so the
    contract is UTC in, UTC out.)"""
    request = store.create_request(ADD, requester_id="U1", now=NOW, expires_at=LATER)
    store.record(AuditEvent(at=NOW, actor_id="U1", action=AuditAction.REQUESTED))
    loaded = store.get_request(request.id)
    assert loaded is not None
    [event] = store.audit()
    for value in (loaded.requested_at, loaded.expires_at, event.at):
        assert value.utcoffset() == timedelta(0)
    assert (loaded.requested_at, loaded.expires_at, event.at) == (NOW, LATER, NOW)


def test_a_denied_request_keeps_who_and_why_and_cannot_be_claimed(store: AnyStore):
    request = store.create_request(ADD, requester_id="U1", now=NOW, expires_at=LATER)
    denied = store.deny(request.id, approver_id="U2", reason="too much", now=NOW)
    assert denied is not None
    assert (denied.status, denied.decided_by, denied.reason, denied.decided_at) == (
        RequestStatus.DENIED,
        "U2",
        "too much",
        NOW,
    )
    assert store.deny(request.id, approver_id="U3", reason=None, now=NOW) is None
    assert store.claim(request.id, approver_id="U3", now=NOW, executor="a") is None
    assert store.get_request(request.id) == denied
    assert store.open_requests() == []


def test_settling_under_contention_has_exactly_one_winner(store: AnyStore):
    record = store.begin_change(ADD, actor_id="U1", owner="me", now=NOW, audit=changed_event())
    outcomes = []
    barrier = threading.Barrier(8)

    def settle(index: int) -> None:
        barrier.wait()
        settled, _ = store.settle(
            record, state=ChangeState.FAILED, before=None, after=None, detail=f"{index}", now=NOW
        )
        if settled:
            outcomes.append(index)

    threads = [threading.Thread(target=settle, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(outcomes) == 1
    [event] = store.audit()
    assert (event.action, event.outcome) == (AuditAction.FAILED, str(outcomes[0]))


def test_only_the_owner_settles_its_change(store: AnyStore):
    record = store.begin_change(ADD, actor_id="U1", owner="me", now=NOW, audit=changed_event())
    stranger = replace(record, owner="someone-else")
    assert store.settle(
        stranger, state=ChangeState.FAILED, before=None, after=None, detail="no", now=NOW
    ) == (False, None)
    assert [r.id for r in store.unfinished_changes("me")] == [record.id]
    assert store.unfinished_changes("someone-else") == []


def test_an_owners_late_answer_replaces_recoverys_unknown(store: AnyStore):
    """Recovery took a slow owner for gone; what SendGrid told the owner is the truth."""
    request = store.create_request(ADD, requester_id="U1", now=NOW, expires_at=LATER)
    claimed = store.claim(request.id, approver_id="U2", now=NOW, executor="slow:1:owner")
    assert claimed is not None
    _, record = claimed
    before, after = Balance(False, 100), Balance(False, 600)
    assert store.mark_sent(record.id, owner="slow:1:owner", before=before, now=NOW)
    [abandoned] = store.abandoned_changes(NOW)  # never registered: gone
    assert (abandoned.id, abandoned.state, abandoned.before) == (
        record.id,
        ChangeState.SENT,
        before,
    )
    settled, recovered = store.settle(
        abandoned, state=ChangeState.UNKNOWN, before=None, after=None, detail="gone", now=NOW
    )
    assert settled
    assert recovered is not None
    assert recovered.status is RequestStatus.UNKNOWN
    assert store.abandoned_changes(NOW) == []
    settled, finished = store.settle(
        record, state=ChangeState.APPLIED, before=before, after=after, detail="ok", now=NOW
    )
    assert settled
    assert finished is not None
    assert (finished.status, finished.before, finished.after, finished.detail) == (
        RequestStatus.APPROVED,
        before,
        after,
        "ok",
    )
    assert store.settle(
        record, state=ChangeState.FAILED, before=None, after=None, detail="again", now=NOW
    ) == (False, None)


def test_a_settled_change_is_no_longer_unfinished_and_its_event_tells_the_outcome(
    store: AnyStore,
):
    record = store.begin_change(ADD, actor_id="U1", owner="me", now=NOW, audit=changed_event())
    store.mark_sent(record.id, owner="me", before=Balance(False, 100), now=NOW)
    assert [r.state for r in store.unfinished_changes("me")] == [ChangeState.SENT]
    store.settle(record, state=ChangeState.UNKNOWN, before=None, after=None, detail="?", now=NOW)
    assert store.unfinished_changes("me") == []
    [event] = store.audit()
    assert (event.action, event.outcome, event.before) == (AuditAction.UNKNOWN, "?", None)


def test_a_claimed_request_with_its_change_recorded_is_never_an_orphan(store: AnyStore):
    request = store.create_request(ADD, requester_id="U1", now=NOW, expires_at=LATER)
    store.claim(request.id, approver_id="U2", now=NOW, executor="old:1:process")
    assert store.orphans_to_unknown(now=NOW) == []
    current = store.get_request(request.id)
    assert current is not None
    assert current.status is RequestStatus.EXECUTING


def test_an_instance_id_registers_once(store: AnyStore):
    store.register_instance("far-away:1:a", kind="serve", now=NOW)
    with pytest.raises(StoreError):
        store.register_instance("far-away:1:a", kind="serve", now=NOW)


def test_a_week_silent_instance_is_forgotten_unless_it_owns_unfinished_work(store: AnyStore):
    """Forgotten or not, such an instance is gone; its unfinished work stays abandoned."""
    old = NOW - timedelta(days=8)
    store.register_instance("far-away:1:idle", kind="serve", now=old)
    store.register_instance("far-away:2:busy", kind="serve", now=old)
    store.begin_change(ADD, actor_id="U1", owner="far-away:2:busy", now=old, audit=changed_event())
    store.register_instance("far-away:3:new", kind="serve", now=NOW)
    # The idle one was forgotten, so its id may register again; the busy one was kept.
    store.register_instance("far-away:1:idle", kind="serve", now=NOW)
    with pytest.raises(StoreError):
        store.register_instance("far-away:2:busy", kind="serve", now=NOW)
    assert {r.owner for r in store.abandoned_changes(NOW)} == {"far-away:2:busy"}


def test_heartbeats_keep_an_instance_on_another_host_live(store: AnyStore):
    store.register_instance("far-away:1:a", kind="serve", now=NOW)
    store.begin_change(ADD, actor_id="U1", owner="far-away:1:a", now=NOW, audit=changed_event())
    later = NOW + INSTANCE_LEASE
    assert [r.owner for r in store.abandoned_changes(later)] == ["far-away:1:a"]
    store.heartbeat("far-away:1:a", now=later - timedelta(seconds=1))
    assert store.abandoned_changes(later) == []
    store.stop_instance("far-away:1:a", now=later)
    assert [r.owner for r in store.abandoned_changes(later)] == ["far-away:1:a"]


# --- money policy and deciding from anywhere (migrations 0006, 0007) ---------------------

BUDGET = 1_000
WINDOW = timedelta(hours=1)


def budgeted(store: AnyStore, credits: int, *, actor: str, user: str, at: datetime = NOW):
    return store.begin_budgeted_change(
        CreditChange(ChangeKind.ADD, user, credits),
        actor_id=actor,
        owner="me",
        now=at,
        audit=changed_event(user),
        budget=BUDGET,
        window=WINDOW,
    )


def test_auto_approved_credits_count_in_flight_and_unknown_but_not_failed(store: AnyStore):
    first = budgeted(store, 600, actor="U1", user="acme-eu")
    assert isinstance(first, ChangeRecord)
    assert (first.state, first.origin, first.actor_id) == (
        ChangeState.INTENT,
        ChangeOrigin.DIRECT,
        "U1",
    )
    [event] = store.audit()
    assert event.id == first.audit_event_id
    # Another operator, same subuser; the same operator, another subuser.
    assert budgeted(store, 500, actor="U2", user="acme-eu") == BudgetUse(0, 600)
    assert budgeted(store, 500, actor="U1", user="globex") == BudgetUse(600, 0)
    assert len(store.audit()) == 1  # a refusal records nothing
    store.mark_sent(first.id, owner="me", before=Balance(False, 0), now=NOW)
    assert budgeted(store, 500, actor="U2", user="acme-eu") == BudgetUse(0, 600)
    store.settle(first, state=ChangeState.UNKNOWN, before=None, after=None, detail="?", now=NOW)
    assert budgeted(store, 500, actor="U2", user="acme-eu") == BudgetUse(0, 600)
    # The owner's late answer: SendGrid refused it, so nothing was spent.
    store.settle(first, state=ChangeState.FAILED, before=None, after=None, detail="no", now=NOW)
    second = budgeted(store, 400, actor="U2", user="acme-eu")
    assert isinstance(second, ChangeRecord)
    store.settle(second, state=ChangeState.APPLIED, before=None, after=None, detail="ok", now=NOW)
    assert budgeted(store, 700, actor="U3", user="acme-eu") == BudgetUse(0, 400)
    # Changes that were not auto-approved never count; old ones leave the window.
    store.begin_change(ADD, actor_id="U3", owner="me", now=NOW, audit=changed_event())
    assert isinstance(budgeted(store, 600, actor="U3", user="acme-eu"), ChangeRecord)
    assert budgeted(store, 1, actor="U4", user="acme-eu") == BudgetUse(0, 1_000)
    assert isinstance(
        budgeted(store, 1_000, actor="U4", user="acme-eu", at=NOW + WINDOW), ChangeRecord
    )


def test_budget_checks_racing_from_many_threads_admit_only_what_fits(store: AnyStore):
    admitted: list[int] = []
    barrier = threading.Barrier(8)

    def add(index: int) -> None:
        barrier.wait()
        if isinstance(budgeted(store, 300, actor=f"U{index}", user="acme-eu"), ChangeRecord):
            admitted.append(index)

    threads = [threading.Thread(target=add, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(admitted) == 3  # 3 × 300 ≤ 1,000 < 4 × 300


def test_a_confirmation_is_taken_once_by_its_author_before_it_expires(store: AnyStore):
    change = CreditChange(
        ChangeKind.RECURRING,
        "acme-eu",
        50_000,
        period=Period.MONTHLY,
        start=datetime(2026, 12, 1).date(),
        end=datetime(2027, 1, 1).date(),
        reason="renewal, see https://example.com/T-1",
    )
    expires = NOW + timedelta(minutes=5)
    confirmation = store.create_confirmation(
        change, actor_id="U1", auto_approved=True, now=NOW, expires_at=expires
    )
    assert store.take_confirmation(confirmation, actor_id="U2", now=NOW, confirm=True) is None
    assert store.take_confirmation(confirmation, actor_id="U1", now=expires, confirm=True) is None
    taken = store.take_confirmation(confirmation, actor_id="U1", now=NOW, confirm=True)
    assert taken == (change, True)
    assert store.take_confirmation(confirmation, actor_id="U1", now=NOW, confirm=True) is None
    assert store.take_confirmation(confirmation, actor_id="U1", now=NOW, confirm=False) is None
    declined = store.create_confirmation(
        ADD, actor_id="U1", auto_approved=False, now=NOW, expires_at=expires
    )
    assert declined != confirmation
    assert store.take_confirmation(declined, actor_id="U1", now=NOW, confirm=False) == (
        ADD,
        False,
    )
    assert store.take_confirmation(declined, actor_id="U1", now=NOW, confirm=True) is None
    assert store.take_confirmation(declined + 1000, actor_id="U1", now=NOW, confirm=True) is None


def test_two_approvers_the_first_once_and_the_second_someone_else(store: AnyStore):
    request = store.create_request(
        ADD, requester_id="U1", now=NOW, expires_at=LATER, approvals_needed=2
    )
    assert (request.approvals_needed, request.first_approver) == (2, None)
    assert store.claim(request.id, approver_id="U2", now=NOW, executor="a") is None
    first = store.approve_first(request.id, approver_id="U2", now=NOW)
    assert first is not None
    assert (first.status, first.first_approver) == (RequestStatus.PENDING, "U2")
    assert store.get_request(request.id) == first
    assert store.approve_first(request.id, approver_id="U3", now=NOW) is None
    # What the store keeps is what the domain refuses by: the requester, the first again.
    assert may_decide("U1", Role.APPROVER, first) is Refusal.OWN_REQUEST
    assert may_decide("U2", Role.APPROVER, first) is Refusal.ALREADY_APPROVED
    assert may_decide("U3", Role.APPROVER, first) is None
    assert store.claim(request.id, approver_id="U2", now=NOW, executor="a") is None
    assert store.claim(request.id, approver_id="U3", now=LATER, executor="a") is None  # expired
    claimed = store.claim(request.id, approver_id="U3", now=NOW, executor="a")
    assert claimed is not None
    assert (claimed[0].status, claimed[0].decided_by, claimed[0].first_approver) == (
        RequestStatus.EXECUTING,
        "U3",
        "U2",
    )
    assert store.claim(request.id, approver_id="U4", now=NOW, executor="b") is None
    single = store.create_request(ADD, requester_id="U1", now=NOW, expires_at=LATER)
    assert single.approvals_needed == 1
    assert store.approve_first(single.id, approver_id="U2", now=NOW) is None
    late = store.create_request(ADD, requester_id="U1", now=NOW, expires_at=NOW, approvals_needed=2)
    assert store.approve_first(late.id, approver_id="U2", now=NOW) is None


def test_only_the_requester_cancels_and_only_while_pending(store: AnyStore):
    request = store.create_request(ADD, requester_id="U1", now=NOW, expires_at=LATER)
    assert store.cancel(request.id, requester_id="U2", now=NOW) is None
    cancelled = store.cancel(request.id, requester_id="U1", now=NOW)
    assert cancelled is not None
    assert (cancelled.status, cancelled.decided_by, cancelled.decided_at) == (
        RequestStatus.CANCELLED,
        "U1",
        NOW,
    )
    assert store.cancel(request.id, requester_id="U1", now=NOW) is None
    assert store.claim(request.id, approver_id="U2", now=NOW, executor="a") is None
    assert store.open_requests() == []
    claimed = store.create_request(ADD, requester_id="U1", now=NOW, expires_at=LATER)
    store.claim(claimed.id, approver_id="U2", now=NOW, executor="a")
    assert store.cancel(claimed.id, requester_id="U1", now=NOW) is None
    assert store.cancel(claimed.id + 1000, requester_id="U1", now=NOW) is None


def unknown_request(store: AnyStore) -> int:
    request = store.create_request(ADD, requester_id="U1", now=NOW, expires_at=LATER)
    claimed = store.claim(request.id, approver_id="U2", now=NOW, executor="a")
    assert claimed is not None
    store.settle(
        claimed[1], state=ChangeState.UNKNOWN, before=None, after=None, detail="?", now=NOW
    )
    return request.id


def test_only_an_unknown_outcome_is_resolved_and_only_once(store: AnyStore):
    after = Balance(False, 600)

    def resolve(request_id: int, *, applied: bool):
        return store.resolve(
            request_id, approver_id="U3", applied=applied, detail="seen", after=after, now=NOW
        )

    pending = store.create_request(ADD, requester_id="U1", now=NOW, expires_at=LATER)
    assert resolve(pending.id, applied=True) is None
    applied_id = unknown_request(store)
    resolved = resolve(applied_id, applied=True)
    assert resolved is not None
    assert (resolved.status, resolved.detail, resolved.after) == (
        RequestStatus.APPROVED,
        "seen",
        after,
    )
    assert resolve(applied_id, applied=False) is None
    failed_id = unknown_request(store)
    failed = resolve(failed_id, applied=False)
    assert failed is not None
    assert failed.status is RequestStatus.FAILED
    assert resolve(failed_id + 1000, applied=True) is None
    assert [r.id for r in store.open_requests()] == [pending.id]


def test_a_reminder_is_recorded_once_and_an_escalation_once(store: AnyStore):
    request = store.create_request(ADD, requester_id="U1", now=NOW, expires_at=LATER)
    assert (request.reminders, request.escalated_at) == (0, None)
    first = Reminder(request=request, number=1, escalate=False, waited=timedelta(minutes=30))
    reminded = store.mark_reminded(first, now=NOW)
    assert reminded is not None
    assert (reminded.reminders, reminded.escalated_at) == (1, None)
    assert store.mark_reminded(first, now=NOW) is None  # another instance posted it
    escalation = Reminder(request=reminded, number=1, escalate=True, waited=timedelta(hours=1))
    escalated = store.mark_reminded(escalation, now=NOW + timedelta(hours=1))
    assert escalated is not None
    assert (escalated.reminders, escalated.escalated_at) == (1, NOW + timedelta(hours=1))
    assert store.get_request(request.id) == escalated
    again = Reminder(request=escalated, number=2, escalate=True, waited=timedelta(hours=2))
    assert store.mark_reminded(again, now=NOW) is None
    store.deny(request.id, approver_id="U2", reason=None, now=NOW)
    later = Reminder(request=escalated, number=2, escalate=False, waited=timedelta(hours=2))
    assert store.mark_reminded(later, now=NOW) is None


# --- the alert store -------------------------------------------------------------------

AnyAlertStore = SqlAlertStore | MemoryAlertStore


@pytest.fixture
def alerts(store: AnyStore) -> AnyAlertStore:
    return MemoryAlertStore(store) if isinstance(store, MemoryStore) else SqlAlertStore(store)


def snapshot_times(store: AnyStore) -> list[datetime]:
    """What the store holds of balance snapshots (the port has no read: sweeps only write)."""
    if isinstance(store, MemoryStore):
        return sorted(s.at for s in store.balance_snapshots)
    from sqlalchemy import select

    from bot.adapters.store.sql import _utc
    from bot.adapters.store.tables import balance_snapshots

    with store.transaction() as connection:
        rows = connection.execute(select(balance_snapshots.c.at)).scalars().all()
    return sorted(t for t in (_utc(row) for row in rows) if t is not None)


def test_alert_states_round_trip_in_utc_and_are_replaced(alerts: AnyAlertStore):
    state = AlertState(
        "acme-eu",
        announced=AlertLevel.LOW,
        snoozed_until=LATER,
        usage=Usage(1_000, NOW, 12.5),
    )
    alerts.save_states([state, AlertState("globex")])
    found = alerts.states(["acme-eu", "globex", "nobody"])
    assert found == {
        "acme-eu": AlertState(
            "acme-eu", announced=AlertLevel.LOW, snoozed_until=LATER, usage=Usage(1_000, NOW, 12.5)
        ),
        "globex": AlertState("globex"),
    }
    snoozed = found["acme-eu"].snoozed_until
    assert snoozed is not None
    assert snoozed.utcoffset() == timedelta(0)
    alerts.save_states([AlertState("acme-eu", announced=AlertLevel.EXHAUSTED)])
    assert alerts.states(["acme-eu"]) == {
        "acme-eu": AlertState("acme-eu", announced=AlertLevel.EXHAUSTED)
    }


def test_alert_states_of_many_subusers_are_saved_and_read_whole(alerts: AnyAlertStore):
    users = [f"sub-{i:04d}" for i in range(1_200)]  # more than two chunks
    alerts.save_states([AlertState(u, announced=AlertLevel.LOW) for u in users[::2]])
    alerts.save_states([AlertState(u, announced=AlertLevel.EXHAUSTED) for u in users])
    found = alerts.states(users)
    assert len(found) == len(users)
    assert {s.announced for s in found.values()} == {AlertLevel.EXHAUSTED}


def test_a_threshold_is_set_and_replaced(alerts: AnyAlertStore):
    assert alerts.thresholds() == {}
    alerts.set_threshold("acme-eu", 5_000, by="U1", at=NOW)
    alerts.set_threshold("globex", 10, by="U1", at=NOW)
    alerts.set_threshold("acme-eu", 7_000, by="U2", at=LATER)
    assert alerts.thresholds() == {"acme-eu": 7_000, "globex": 10}


def test_a_snooze_keeps_what_was_announced(alerts: AnyAlertStore):
    usage = Usage(50, NOW, 2.0)
    alerts.save_states([AlertState("acme-eu", announced=AlertLevel.LOW, usage=usage)])
    alerts.snooze("acme-eu", until=LATER)
    alerts.snooze("never-swept", until=LATER)
    assert alerts.states(["acme-eu", "never-swept"]) == {
        "acme-eu": AlertState("acme-eu", AlertLevel.LOW, snoozed_until=LATER, usage=usage),
        "never-swept": AlertState("never-swept", snoozed_until=LATER),
    }


def test_snapshots_are_added_and_pruned_by_age(store: AnyStore, alerts: AnyAlertStore):
    alerts.add_snapshots([], at=NOW)
    balances = [("acme-eu", Balance(False, 10)), ("globex", Balance.no_limit())]
    alerts.add_snapshots(balances, at=NOW - timedelta(days=8))
    alerts.add_snapshots(balances, at=NOW)
    assert len(snapshot_times(store)) == 4
    alerts.prune_snapshots(before=NOW - timedelta(days=7))
    assert snapshot_times(store) == [NOW, NOW]


def test_a_digest_is_edited_from_its_last_edit_not_the_clicked_copy(alerts: AnyAlertStore):
    def add(line: str):
        return lambda content: f"{content}|{line}"

    first = alerts.edit_digest("C1", "1.1", seen="digest", edit=add("a"), now=NOW)
    assert first == "digest|a"
    stale_click = alerts.edit_digest("C1", "1.1", seen="digest", edit=add("b"), now=NOW)
    assert stale_click == "digest|a|b"
    assert alerts.edit_digest("C1", "2.2", seen="other", edit=add("c"), now=NOW) == "other|c"


# --- only in memory -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("port", "implementation"),
    [(Store, MemoryStore), (Store, SqlStore), (AlertStore, MemoryAlertStore)],
    ids=["Store-memory", "Store-sql", "AlertStore-memory"],
)
def test_every_port_method_exists_with_the_same_parameters(port: type, implementation: type):
    """Static: a method added to a port (or a parameter to one) and missed by an
    implementation fails here, before any behaviour test reaches it."""

    def parameters(function: object) -> list[tuple[str, object, object]]:
        return [
            (p.name, p.kind, p.default)
            for p in inspect.signature(function).parameters.values()  # type: ignore[arg-type]
        ]

    methods = [n for n, v in vars(port).items() if callable(v) and not n.startswith("_")]
    assert methods
    drift = {
        name: parameters(getattr(implementation, name, None) or (lambda: None))
        for name in methods
        if parameters(getattr(implementation, name, None) or (lambda: None))
        != parameters(getattr(port, name))
    }
    assert drift == {}


def test_a_memory_store_that_is_down_fails_every_call_and_keeps_everything():
    store = MemoryStore()
    alerts = MemoryAlertStore(store)
    request = store.create_request(ADD, requester_id="U1", now=NOW, expires_at=LATER)
    store.down()
    calls = [
        lambda: store.get_request(request.id),
        store.open_requests,
        lambda: store.claim(request.id, approver_id="U2", now=NOW, executor="a"),
        lambda: store.begin_change(ADD, actor_id="U1", owner="a", now=NOW, audit=changed_event()),
        store.audit,
        lambda: store.abandoned_changes(NOW),
        lambda: store.register_instance("a", kind="serve", now=NOW),
        lambda: alerts.states(["acme-eu"]),
        lambda: alerts.set_threshold("acme-eu", 1, by="U1", at=NOW),
    ]
    for call in calls:
        with pytest.raises(StoreError):
            call()
    store.up()
    assert store.open_requests() == [request]
    assert store.audit() == []
    assert alerts.thresholds() == {}


def test_memory_claims_stay_single_when_threads_switch_constantly():
    """The lock, not the GIL, makes a check and its update one step: with threads
    switching every microsecond, every request still has exactly one winner."""
    import random
    import sys

    store = MemoryStore()
    ids = [
        store.create_request(ADD, requester_id="U1", now=NOW, expires_at=LATER).id
        for _ in range(300)
    ]
    wins: list[int] = []
    barrier = threading.Barrier(6)

    def click(index: int) -> None:
        order = random.Random(index).sample(ids, len(ids))
        barrier.wait()
        for request_id in order:
            if store.claim(request_id, approver_id="U2", now=NOW, executor=f"x{index}"):
                wins.append(request_id)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=click, args=(i,)) for i in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert sorted(wins) == ids
    assert len(store.changes()) == len(ids)
