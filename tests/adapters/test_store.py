"""One contract suite for the store: SQLite always, PostgreSQL when TEST_DATABASE_URL is set."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.adapters.store import SqlStore
from bot.domain.approvals import AuditAction, AuditEvent, RequestStatus
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


def test_claim_happens_once(store: SqlStore):
    request = store.create_request(ADD, requester_id="U1", now=NOW, expires_at=LATER)
    first = store.claim(request.id, approver_id="U2", now=NOW, executor="a")
    second = store.claim(request.id, approver_id="U3", now=NOW, executor="b")
    assert first is not None
    assert (first.status, first.decided_by) == (RequestStatus.EXECUTING, "U2")
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


def test_finish_records_balances_and_only_for_the_executor(store: SqlStore):
    request = store.create_request(ADD, requester_id="U1", now=NOW, expires_at=LATER)
    store.claim(request.id, approver_id="U2", now=NOW, executor="me")
    before, after = Balance(False, 100), Balance(False, 600)
    assert (
        store.finish(
            request.id,
            status=RequestStatus.APPROVED,
            executor="someone-else",
            before=before,
            after=after,
            detail=None,
        )
        is None
    )
    done = store.finish(
        request.id,
        status=RequestStatus.APPROVED,
        executor="me",
        before=before,
        after=after,
        detail="ok",
    )
    assert done is not None
    assert (done.status, done.before, done.after) == (RequestStatus.APPROVED, before, after)


def test_orphans_become_unknown_but_their_executor_can_still_finish(store: SqlStore):
    request = store.create_request(ADD, requester_id="U1", now=NOW, expires_at=LATER)
    store.claim(request.id, approver_id="U2", now=NOW, executor="old-process")
    [orphan] = store.orphans_to_unknown(live_executor="new-process", now=NOW)
    assert orphan.status is RequestStatus.UNKNOWN
    assert store.orphans_to_unknown(live_executor="new-process", now=NOW) == []
    assert [r.id for r in store.open_requests()] == [request.id]
    late = store.finish(
        request.id,
        status=RequestStatus.APPROVED,
        executor="old-process",
        before=None,
        after=Balance(False, 1),
        detail=None,
    )
    assert late is not None
    assert late.status is RequestStatus.APPROVED
    assert store.open_requests() == []


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
