"""`ChangeService` on a `MemoryStore` and a real SendGrid client against the simulator."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from bot.adapters.sendgrid import SendGridV2Client
from bot.adapters.store.memory import MemoryStore
from bot.commands import messages
from bot.commands.changes import SYSTEM, ChangeService
from bot.commands.replies import ApprovalRequestedReply, ErrorReply, NoticeReply
from bot.domain.approvals import (
    ApprovalRequest,
    AuditAction,
    AuditEvent,
    ChangeRecord,
    ChangeState,
    RequestStatus,
)
from bot.domain.credits import Balance, ChangeKind, CreditChange
from bot.domain.policy import Limits, RoleBook
from bot.errors import ShuttingDown, Unavailable, UnknownAccount
from bot.simulator import FaultRule, SimulatorState
from tests.conftest import ClientFactory
from tests.helpers import wait_until

ADMIN, APPROVER, OPERATOR = "UADMIN", "UAPPROVER", "UOPER"
ROLES = RoleBook(
    admins=frozenset({ADMIN}), approvers=frozenset({APPROVER}), operators=frozenset({OPERATOR})
)
TTL = timedelta(hours=24)
ADD = CreditChange(ChangeKind.ADD, "acme-eu", 500)  # acme-eu starts at 31,200


class Timeline:
    """An injected clock the test moves forward."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@dataclass
class RecordingNotifier:
    """The `ApprovalNotifier` port, keeping what would have been shown in Slack."""

    posted: list[int] = field(default_factory=list)
    outcomes: list[tuple[int, RequestStatus]] = field(default_factory=list)
    told_requester: list[int] = field(default_factory=list)
    direct_messages: list[tuple[str, str]] = field(default_factory=list)

    logged: list[str] = field(default_factory=list)
    reminded: list[int] = field(default_factory=list)

    def post_request(
        self,
        request: ApprovalRequest,
        *,
        current: Balance,
        expected: Balance | None,
        warning: str | None = None,
    ) -> tuple[str, str]:
        self.posted.append(request.id)
        return "C0APPROVALS", f"{request.id}.0001"

    def show_progress(self, request: ApprovalRequest) -> None:
        self.outcomes.append((request.id, request.status))

    def log(self, text: str) -> None:
        self.logged.append(text)

    def remind(self, request: ApprovalRequest, text: str) -> None:
        self.reminded.append(request.id)

    def show_outcome(self, request: ApprovalRequest) -> None:
        self.outcomes.append((request.id, request.status))

    def tell_requester(self, request: ApprovalRequest) -> None:
        self.told_requester.append(request.id)

    def tell_user(self, user_id: str, text: str) -> None:
        self.direct_messages.append((user_id, text))


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def clock() -> Timeline:
    return Timeline()


@pytest.fixture
def notifier() -> RecordingNotifier:
    return RecordingNotifier()


@pytest.fixture
def client(make_client: ClientFactory) -> SendGridV2Client:
    return make_client()


def this_process(tag: str) -> str:
    """An instance id of this running process: live by the process table."""
    return f"{socket.gethostname()}:{os.getpid()}:{tag}"


@pytest.fixture
def changes(
    store: MemoryStore, client: SendGridV2Client, clock: Timeline, notifier: RecordingNotifier
) -> ChangeService:
    executor = this_process("changes")
    store.register_instance(executor, kind="serve", now=clock())
    return ChangeService(
        store=store,
        backend=client,
        roles=ROLES,
        directory=None,
        notifier=notifier,
        ttl=TTL,
        executor=executor,
        clock=clock,
    )


def remaining(balance: Balance | None) -> int | None:
    assert balance is not None
    return balance.remaining


def only_change(store: MemoryStore) -> ChangeRecord:
    [record] = store.changes()
    return record


def actions(store: MemoryStore, target: str = "acme-eu") -> list[AuditAction]:
    """The audit trail of `target`, oldest first."""
    return [e.action for e in reversed(store.audit(target=target))]


# --- direct changes --------------------------------------------------------------------


def test_a_direct_change_is_sent_once_and_recorded_applied(
    changes: ChangeService, store: MemoryStore, sim_state: SimulatorState
):
    result, recorded = changes.apply_directly(ADMIN, ADD, auto_approved=False)
    assert recorded
    assert (result.before.remaining, remaining(result.after)) == (31_200, 31_700)
    assert len(sim_state.writes(user="acme-eu", task="increment")) == 1
    record = only_change(store)
    assert (record.state, record.owner, record.detail) == (
        ChangeState.APPLIED,
        changes.executor,
        "ok",
    )
    assert (record.before, record.after) == (result.before, result.after)
    [event] = store.audit(target="acme-eu")
    assert (event.action, event.outcome, event.after) == (AuditAction.CHANGED, "ok", result.after)
    assert event.arguments is not None
    assert event.arguments["auto_approved"] is False
    assert store.unfinished_changes(changes.executor) == []


def test_a_change_sendgrid_refuses_is_recorded_failed_and_raised(
    changes: ChangeService, store: MemoryStore, sim_state: SimulatorState
):
    change = CreditChange(ChangeKind.ADD, "nobody-here", 500)
    with pytest.raises(UnknownAccount):
        changes.apply_directly(ADMIN, change, auto_approved=False)
    record = only_change(store)
    assert record.state is ChangeState.FAILED
    assert record.detail is not None
    assert record.detail.startswith("UnknownAccount")
    assert actions(store, "nobody-here") == [AuditAction.FAILED]
    assert sim_state.writes() == []


def test_a_write_sendgrid_refuses_is_failed_and_keeps_the_balance_read_before_it(
    changes: ChangeService, store: MemoryStore, sim_state: SimulatorState
):
    sim_state.add_fault(FaultRule(kind="status", arg="500", task="increment"))
    with pytest.raises(Unavailable):
        changes.apply_directly(ADMIN, ADD, auto_approved=False)
    record = only_change(store)
    assert record.state is ChangeState.FAILED
    assert remaining(record.before) == 31_200
    assert actions(store) == [AuditAction.FAILED]
    assert sim_state.writes() == []


def test_a_change_stopped_before_sending_fails_and_sends_nothing(
    changes: ChangeService, store: MemoryStore, sim_state: SimulatorState
):
    changes.stopping.set()
    with pytest.raises(ShuttingDown):
        changes.apply_directly(ADMIN, ADD, auto_approved=False)
    assert only_change(store).state is ChangeState.FAILED
    assert sim_state.writes() == []


def test_a_write_without_an_answer_is_recorded_unknown_and_never_repeated(
    changes: ChangeService, store: MemoryStore, sim_state: SimulatorState
):
    sim_state.add_fault(FaultRule(kind="drop", task="increment"))
    result, recorded = changes.apply_directly(ADMIN, ADD, auto_approved=False)
    assert recorded
    assert result.outcome_unknown
    record = only_change(store)
    assert record.state is ChangeState.UNKNOWN
    assert record.before == result.before  # recorded as `sent` before the write left
    increments = [c for c in sim_state.calls() if c.task == "increment"]
    assert len(increments) == 1
    assert actions(store) == [AuditAction.UNKNOWN]


# --- approvals -------------------------------------------------------------------------


def request(changes: ChangeService, change: CreditChange = ADD) -> ApprovalRequest:
    reply = changes.request_approval(OPERATOR, change)
    assert isinstance(reply, ApprovalRequestedReply)
    assert reply.posted_to == "C0APPROVALS"
    return reply.request


def test_an_approved_request_executes_once_however_many_click(
    changes: ChangeService,
    store: MemoryStore,
    sim_state: SimulatorState,
    notifier: RecordingNotifier,
):
    pending = request(changes)
    assert notifier.posted == [pending.id]
    assert sim_state.writes() == []
    clicks = [(APPROVER if i % 2 else ADMIN) for i in range(8)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        replies = list(pool.map(lambda who: changes.approve(pending.id, who), clicks))
    done = [r for r in replies if isinstance(r, NoticeReply)]
    assert len(done) == 1
    assert not done[0].warning
    assert all(isinstance(r, ErrorReply) for r in replies if r is not done[0])
    assert len(sim_state.writes(user="acme-eu", task="increment")) == 1
    finished = store.get_request(pending.id)
    assert finished is not None
    assert (finished.status, remaining(finished.after)) == (RequestStatus.APPROVED, 31_700)
    assert only_change(store).state is ChangeState.APPLIED
    assert actions(store) == [AuditAction.REQUESTED, AuditAction.APPROVED, AuditAction.EXECUTED]
    assert notifier.outcomes == [(pending.id, RequestStatus.APPROVED)]
    assert notifier.told_requester == [pending.id]


def test_nobody_decides_their_own_request(changes: ChangeService, store: MemoryStore):
    reply = changes.request_approval(APPROVER, ADD)
    assert isinstance(reply, ApprovalRequestedReply)
    pending = reply.request
    refused = changes.approve(pending.id, APPROVER)
    assert isinstance(refused, ErrorReply)
    assert refused.message == messages.OWN_REQUEST
    current = store.get_request(pending.id)
    assert current is not None
    assert current.status is RequestStatus.PENDING
    assert actions(store) == [AuditAction.REQUESTED, AuditAction.REFUSED]


def test_a_denied_request_is_never_executed(
    changes: ChangeService,
    store: MemoryStore,
    sim_state: SimulatorState,
    notifier: RecordingNotifier,
):
    pending = request(changes)
    denied = changes.deny(pending.id, APPROVER, "  not this month  ")
    assert isinstance(denied, NoticeReply)
    late = changes.approve(pending.id, ADMIN)
    assert isinstance(late, ErrorReply)
    current = store.get_request(pending.id)
    assert current is not None
    assert (current.status, current.reason, current.decided_by) == (
        RequestStatus.DENIED,
        "not this month",
        APPROVER,
    )
    assert sim_state.writes() == []
    assert store.changes() == []
    assert notifier.outcomes == [(pending.id, RequestStatus.DENIED)]


def test_a_request_past_its_ttl_expires_once_and_cannot_be_approved(
    changes: ChangeService, store: MemoryStore, clock: Timeline, sim_state: SimulatorState
):
    pending = request(changes)
    assert changes.expire_due() == 0
    clock.now += TTL
    late = changes.approve(pending.id, APPROVER)
    assert isinstance(late, ErrorReply)
    assert late.message == messages.REQUEST_EXPIRED.format(id=pending.id)
    assert changes.expire_due() == 0  # the click expired it already
    current = store.get_request(pending.id)
    assert current is not None
    assert current.status is RequestStatus.EXPIRED
    [expired] = [e for e in store.audit() if e.action is AuditAction.EXPIRED]
    assert expired.actor_id == SYSTEM
    assert sim_state.writes() == []


# --- recovery --------------------------------------------------------------------------


def begin(store: MemoryStore, owner: str, now: datetime, user: str = "acme-eu") -> ChangeRecord:
    change = CreditChange(ChangeKind.ADD, user, 100)
    event = AuditEvent(at=now, actor_id=ADMIN, action=AuditAction.CHANGED, target=user)
    return store.begin_change(change, actor_id=ADMIN, owner=owner, now=now, audit=event)


def test_recovery_settles_only_gone_owners_changes_and_sends_nothing(
    changes: ChangeService,
    store: MemoryStore,
    clock: Timeline,
    sim_state: SimulatorState,
    notifier: RecordingNotifier,
):
    now = clock()
    gone, live = "far-away:1:gone", "far-away:2:live"
    store.register_instance(gone, kind="serve", now=now - timedelta(minutes=5))
    store.register_instance(live, kind="serve", now=now)
    not_sent = begin(store, gone, now, "acme-eu")
    sent = begin(store, gone, now, "globex")
    store.mark_sent(sent.id, owner=gone, before=Balance(False, 640), now=now)
    working = begin(store, live, now, "initech")
    pending = request(changes, CreditChange(ChangeKind.ADD, "soylent", 10))
    claimed = store.claim(pending.id, approver_id=APPROVER, now=now, executor=gone)
    assert claimed is not None
    store.mark_sent(claimed[1].id, owner=gone, before=Balance(False, 4_800), now=now)

    assert changes.recover_abandoned() == 3
    states = {r.id: r.state for r in store.changes()}
    assert states == {
        not_sent.id: ChangeState.FAILED,
        sent.id: ChangeState.UNKNOWN,
        working.id: ChangeState.INTENT,
        claimed[1].id: ChangeState.UNKNOWN,
    }
    recovered = store.get_request(pending.id)
    assert recovered is not None
    assert recovered.status is RequestStatus.UNKNOWN
    assert notifier.outcomes == [(pending.id, RequestStatus.UNKNOWN)]
    assert [who for who, _ in notifier.direct_messages] == [ADMIN, ADMIN]
    assert sim_state.writes() == []
    assert changes.recover_abandoned() == 0


def test_a_graceful_stop_abandons_its_own_changes_in_flight(
    changes: ChangeService, store: MemoryStore, clock: Timeline
):
    own = begin(store, changes.executor, clock())
    other = begin(store, "far-away:2:other", clock())
    assert changes.abandon_own() == 1
    states = {r.id: r.state for r in store.changes()}
    assert states == {own.id: ChangeState.FAILED, other.id: ChangeState.INTENT}
    assert changes.abandon_own() == 0


# --- the database away while SendGrid answers ------------------------------------------


@pytest.fixture
def slow_write(sim_state: SimulatorState) -> None:
    """SendGrid applies each increment, then answers 1.5 s later: time to take the
    store down while the write is in flight."""
    sim_state.add_fault(FaultRule(kind="slow-write", arg="1500", task="increment"))


@pytest.fixture
def in_flight() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=1) as pool:
        yield pool


def take_down_once_written(store: MemoryStore, sim_state: SimulatorState) -> None:
    wait_until(lambda: sim_state.writes(task="increment"))
    store.down()


@pytest.mark.usefixtures("slow_write")
def test_an_outcome_the_store_did_not_take_is_kept_and_recorded_later(
    changes: ChangeService,
    store: MemoryStore,
    sim_state: SimulatorState,
    in_flight: ThreadPoolExecutor,
):
    running = in_flight.submit(changes.apply_directly, ADMIN, ADD, auto_approved=False)
    take_down_once_written(store, sim_state)
    result, recorded = running.result(timeout=30)
    assert not recorded
    assert remaining(result.after) == 31_700
    assert len(changes.unrecorded) == 1
    assert changes.flush_unrecorded() == 1  # still down: kept
    store.up()
    assert only_change(store).state is ChangeState.SENT
    assert changes.flush_unrecorded() == 0
    record = only_change(store)
    assert (record.state, record.after) == (ChangeState.APPLIED, result.after)
    assert actions(store) == [AuditAction.CHANGED]
    assert store.audit()[0].outcome == "ok"
    assert len(sim_state.writes(task="increment")) == 1  # the record is retried, never the write


@pytest.mark.usefixtures("slow_write")
def test_an_approval_recorded_late_is_announced_when_recorded(
    changes: ChangeService,
    store: MemoryStore,
    sim_state: SimulatorState,
    notifier: RecordingNotifier,
    in_flight: ThreadPoolExecutor,
):
    pending = request(changes)
    running = in_flight.submit(changes.approve, pending.id, APPROVER)
    take_down_once_written(store, sim_state)
    reply = running.result(timeout=30)
    assert isinstance(reply, NoticeReply)
    assert messages.NOT_RECORDED_YET in reply.message
    assert notifier.outcomes == []
    store.up()
    assert changes.flush_unrecorded() == 0
    finished = store.get_request(pending.id)
    assert finished is not None
    assert finished.status is RequestStatus.APPROVED
    assert notifier.outcomes == [(pending.id, RequestStatus.APPROVED)]
    assert actions(store)[-1] is AuditAction.EXECUTED


def test_a_store_down_before_anything_is_sent_stops_the_change(
    changes: ChangeService, store: MemoryStore, sim_state: SimulatorState
):
    from bot.errors import StoreError

    store.down()
    with pytest.raises(StoreError):
        changes.apply_directly(ADMIN, ADD, auto_approved=False)
    store.up()
    assert store.changes() == []
    assert sim_state.calls() == []


def test_threads_share_one_store(store: MemoryStore):
    """The lock makes each call one step: concurrent creates get distinct ids."""
    now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    barrier = threading.Barrier(8)

    def create(_: int) -> int:
        barrier.wait()
        return store.create_request(ADD, requester_id=OPERATOR, now=now, expires_at=now + TTL).id

    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = list(pool.map(create, range(8)))
    assert sorted(ids) == list(range(1, 9))


def test_two_approvers_on_the_memory_store_execute_once_on_the_second(
    store: MemoryStore,
    client: SendGridV2Client,
    clock: Timeline,
    notifier: RecordingNotifier,
    sim_state: SimulatorState,
):
    """The store port's two-approval transitions, through the service, in memory."""
    second_approver = "UAPPROVER2"
    executor = this_process("two")
    store.register_instance(executor, kind="serve", now=clock())
    changes = ChangeService(
        store=store,
        backend=client,
        roles=RoleBook(admins=frozenset({ADMIN}), approvers=frozenset({APPROVER, second_approver})),
        directory=None,
        notifier=notifier,
        ttl=TTL,
        executor=executor,
        clock=clock,
        limits=Limits(two_approvals_above=100),
    )
    reply = changes.request_approval(ADMIN, ADD)
    assert isinstance(reply, ApprovalRequestedReply)
    pending = reply.request
    assert pending.approvals_needed == 2
    first = changes.approve(pending.id, APPROVER)
    assert isinstance(first, NoticeReply)
    assert sim_state.writes() == []
    again = changes.approve(pending.id, APPROVER)
    assert isinstance(again, ErrorReply)
    assert again.message == messages.ALREADY_APPROVED
    own = changes.approve(pending.id, ADMIN)
    assert isinstance(own, ErrorReply)
    assert own.message == messages.OWN_REQUEST
    assert isinstance(changes.approve(pending.id, second_approver), NoticeReply)
    assert isinstance(changes.approve(pending.id, second_approver), ErrorReply)
    assert len(sim_state.writes()) == 1
    done = store.get_request(pending.id)
    assert done is not None
    assert (done.status, done.first_approver, done.decided_by) == (
        RequestStatus.APPROVED,
        APPROVER,
        second_approver,
    )


def test_only_the_requester_cancels_on_the_memory_store(
    changes: ChangeService, store: MemoryStore, sim_state: SimulatorState
):
    pending = request(changes)
    refused = changes.cancel(pending.id, APPROVER)
    assert isinstance(refused, ErrorReply)
    assert isinstance(changes.cancel(pending.id, OPERATOR), NoticeReply)
    assert isinstance(changes.approve(pending.id, APPROVER), ErrorReply)
    current = store.get_request(pending.id)
    assert current is not None
    assert (current.status, current.decided_by) == (RequestStatus.CANCELLED, OPERATOR)
    assert sim_state.writes() == []
    assert actions(store) == [AuditAction.REQUESTED, AuditAction.REFUSED, AuditAction.CANCELLED]
