"""One contract suite for the store: SQLite always, PostgreSQL when TEST_DATABASE_URL is set."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.adapters.store import SqlStore
from bot.domain.approvals import (
    AuditAction,
    AuditEvent,
    ChangeOrigin,
    ChangeState,
    RequestStatus,
)
from bot.domain.credits import Balance, ChangeKind, CreditChange, Period
from tests.pg import postgres_url, reset_postgres

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=24)
ADD = CreditChange(ChangeKind.ADD, "acme-eu", 500)


BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.sqlite3'}"
    else:
        pg = postgres_url()
        if pg is None:
            pytest.skip("TEST_DATABASE_URL is not set")
        reset_postgres(pg)
        url = pg
    store = SqlStore.from_url(url)
    yield store
    store.close()


def test_migrations_are_idempotent(store: SqlStore):
    from bot.adapters.store import migrate

    migrate(store.engine)
    migrate(store.engine)
    assert store.open_requests() == []


def test_a_request_round_trips(store: SqlStore):
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


def test_claim_happens_once_and_records_the_change_as_intent(store: SqlStore):
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


def test_claim_under_contention_has_exactly_one_winner(store: SqlStore):
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


def test_expired_request_cannot_be_claimed_or_denied_and_expires_once(store: SqlStore):
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


def test_a_direct_change_is_sent_once_by_its_owner_and_settled_once(store: SqlStore):
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


def test_settling_an_approved_change_finishes_its_request_with_a_note(store: SqlStore):
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


def test_only_changes_of_gone_instances_are_abandoned(store: SqlStore):
    stale = NOW - timedelta(minutes=5)
    store.register_instance("far-away:1:live", kind="serve", now=NOW)
    store.register_instance("far-away:2:silent", kind="serve", now=stale)
    store.register_instance("far-away:3:stopped", kind="serve", now=NOW)
    store.stop_instance("far-away:3:stopped", now=NOW)
    here = f"{socket.gethostname()}:{os.getpid()}:me"
    store.register_instance(here, kind="serve", now=stale)  # no beats, but running here
    gone_here = f"{socket.gethostname()}:{dead_pid()}:gone"
    store.register_instance(gone_here, kind="serve", now=NOW)  # beat just now, but killed
    owners = [
        "far-away:1:live",
        "far-away:2:silent",
        "far-away:3:stopped",
        here,
        gone_here,
        "never:9:seen",
    ]
    for owner in owners:
        store.begin_change(ADD, actor_id="U1", owner=owner, now=NOW, audit=changed_event())
    abandoned = {r.owner for r in store.abandoned_changes(NOW)}
    assert abandoned == {"far-away:2:silent", "far-away:3:stopped", gone_here, "never:9:seen"}
    store.heartbeat("far-away:2:silent", now=NOW)
    assert {r.owner for r in store.abandoned_changes(NOW)} == {
        "far-away:3:stopped",
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
    store: SqlStore,
):
    """Requests claimed before change records existed (an upgrade mid-execution)."""
    from sqlalchemy import delete

    from bot.adapters.store.tables import credit_changes

    request = store.create_request(ADD, requester_id="U1", now=NOW, expires_at=LATER)
    store.claim(request.id, approver_id="U2", now=NOW, executor="old:1:process")
    with store.transaction() as connection:
        connection.execute(delete(credit_changes))
    [orphan] = store.orphans_to_unknown(now=NOW)
    assert orphan.status is RequestStatus.UNKNOWN
    assert store.orphans_to_unknown(now=NOW) == []
    assert [r.id for r in store.open_requests()] == [request.id]


def test_audit_is_newest_first_filtered_and_completed(store: SqlStore):
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
    event_id = store.record(
        AuditEvent(at=NOW, actor_id="U9", action=AuditAction.CHANGED, target="x", outcome="sent")
    )
    store.complete(
        event_id,
        action=AuditAction.UNKNOWN,
        outcome="timeout",
        before=Balance(False, 1),
        after=Balance.no_limit(),
    )
    [event] = store.audit(target="x")
    assert (event.action, event.outcome, event.after) == (
        AuditAction.UNKNOWN,
        "timeout",
        Balance.no_limit(),
    )
    assert event.at == NOW


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
