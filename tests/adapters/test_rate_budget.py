"""One contract suite for the fleet's rate budget: in memory, on SQLite, on PostgreSQL.

The SQL budgets are exercised as several processes would use them: separate
engines on one database, and many threads at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, event, func, select

from bot.adapters.sendgrid import Priority, SlidingWindowLimiter
from bot.adapters.sendgrid.ratelimit import MemoryRateBudget, RateBudget
from bot.adapters.store import SqlStore, create_store_engine, migrate
from bot.adapters.store.ratelimit import PRUNE_EVERY, SqlRateBudget
from bot.adapters.store.replay import SeenRequests
from bot.adapters.store.tables import rate_budgets, rate_grants
from bot.simulator import FaultRule
from tests.helpers import wait_until
from tests.pg import postgres_url, reset_postgres


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0  # epoch seconds, as the SQL budgets store them

    def __call__(self) -> float:
        return self.now


BUDGETS = ["memory", "sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
SQL = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def database_url(kind: str, tmp_path: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'budget.sqlite3'}"
    url = postgres_url()
    if url is None:
        pytest.skip("TEST_DATABASE_URL is not set")
    reset_postgres(url)
    return url


@pytest.fixture
def engines(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Engine]]:
    """New engines on one migrated database: each one stands for another process."""
    url = database_url(request.param, tmp_path)
    made: list[Engine] = []

    def new_engine() -> Engine:
        engine = create_store_engine(url)
        if not made:
            migrate(engine)
        made.append(engine)
        return engine

    yield new_engine
    for engine in made:
        engine.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=BUDGETS)
def new_budget(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> Iterator[Callable[..., RateBudget]]:
    """Budgets on one shared state (another engine each time for SQL), on `clock`."""
    if request.param == "memory":
        shared = MemoryRateBudget(clock=clock)
        yield lambda name="sendgrid": shared
        return
    url = database_url(request.param, tmp_path)
    made: list[Engine] = []

    def build(name: str = "sendgrid") -> RateBudget:
        engine = create_store_engine(url)
        if not made:
            migrate(engine)
        made.append(engine)
        return SqlRateBudget(engine, name=name, clock=clock)

    yield build
    for engine in made:
        engine.dispose()


def test_grants_up_to_the_limit_then_says_how_long_to_wait(new_budget, clock: FakeClock):
    budget = new_budget()
    assert [budget.take(limit=3, window=10.0) for _ in range(3)] == [0.0] * 3
    clock.now += 4.0
    # The oldest of the three leaves the window at +10 s: 6 s from now.
    assert budget.take(limit=3, window=10.0) == pytest.approx(6.0)
    clock.now += 6.0
    assert budget.take(limit=3, window=10.0) == 0.0


def test_a_lower_limit_waits_while_the_full_limit_is_granted(new_budget, clock: FakeClock):
    first, second = new_budget(), new_budget()
    for _ in range(8):
        assert first.take(limit=8, window=60.0) == 0.0
    assert second.take(limit=8, window=60.0) == pytest.approx(60.0)
    assert second.take(limit=10, window=60.0) == 0.0
    assert first.take(limit=10, window=60.0) == 0.0
    assert first.take(limit=10, window=60.0) == pytest.approx(60.0)


def test_a_pause_holds_every_holder_and_is_never_shortened(new_budget, clock: FakeClock):
    first, second = new_budget(), new_budget()
    first.pause(5.0)
    assert second.take(limit=100, window=60.0) == pytest.approx(5.0)
    second.pause(1.0)
    clock.now += 2.0
    assert first.take(limit=100, window=60.0) == pytest.approx(3.0)
    clock.now += 3.0
    assert first.take(limit=100, window=60.0) == 0.0


def test_budgets_with_other_names_are_separate(new_budget, clock: FakeClock):
    if isinstance(new_budget(), MemoryRateBudget):
        pytest.skip("one memory budget per object")
    sendgrid, other = new_budget("sendgrid"), new_budget("other-account")
    assert sendgrid.take(limit=1, window=60.0) == 0.0
    assert sendgrid.take(limit=1, window=60.0) > 0
    assert other.take(limit=1, window=60.0) == 0.0


@pytest.mark.parametrize("engines", SQL, indirect=True)
def test_pruning_forgets_only_grants_outside_the_window(engines, clock: FakeClock):
    engine = engines()
    budget = SqlRateBudget(engine, clock=clock)
    for _ in range(PRUNE_EVERY * 2):
        assert budget.take(limit=10, window=1.0) == 0.0
        clock.now += 0.2
    with engine.connect() as connection:
        kept = connection.execute(select(func.count()).select_from(rate_grants)).scalar_one()
    assert 5 <= kept < PRUNE_EVERY + 5
    assert budget.take(limit=4, window=1.0) > 0  # the last four are still in the window


@pytest.mark.postgres
@pytest.mark.parametrize("engines", ["postgresql"], indirect=True)
def test_on_postgresql_a_take_is_one_statement_in_its_own_transaction(engines):
    """One round trip per take (the server's `credits_take_grants`): in a busy process
    every further round trip waited for the interpreter lock again (issue 16)."""
    engine = engines()
    budget = SqlRateBudget(engine)
    statements: list[str] = []

    def seen(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    budget.take(limit=10, window=60.0)  # the first use may look at the connection
    event.listen(engine, "before_cursor_execute", seen)
    try:
        assert budget.take_many(3, limit=10, window=60.0) == (3, 0.0)
        granted, delay = budget.take_many(20, limit=10, window=60.0)
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert (granted, delay > 59.0) == (6, False)  # 10 - 1 - 3 left in the window
    assert len(statements) == 2
    assert all("credits_take_grants" in s for s in statements)
    assert budget.take_many(1, limit=10, window=60.0)[0] == 0  # full: a wait, not a grant


@pytest.mark.parametrize("engines", SQL, indirect=True)
def test_many_threads_in_several_processes_never_exceed_and_never_fail(engines):
    """Eight threads on each of three engines, on the real clock, beside other writers.

    SQLite: no "database is locked" (the grant takes the write lock up front and
    waits for it). Exactly `limit` grants in a window no thread could outlast.
    """
    budgets = [SqlRateBudget(engines()) for _ in range(3)]
    store = SqlStore(engines())
    seen = SeenRequests(store.engine)
    limit, attempts = 50, 240

    def take(index: int) -> bool:
        if index % 4 == 0:  # another writer on the same database, as `serve` has
            now = datetime.now(UTC)
            seen.first_time(f"v0=signature-{index}", signed_at=now, now=now)
        return budgets[index % 3].take(limit=limit, window=3600.0) == 0.0

    with ThreadPoolExecutor(max_workers=24) as pool:
        granted = sum(pool.map(take, range(attempts)))
    assert granted == limit


@pytest.mark.parametrize("engines", SQL, indirect=True)
def test_an_interactive_caller_gets_a_grant_while_the_sweep_is_held_back(engines):
    """Two processes on the real clock: the sweep waits at 80% of the window; a
    command in the other process is granted at once, while the sweep still waits."""
    sweep_held = threading.Event()
    stop = threading.Event()

    def sweep_sleep(seconds: float) -> None:
        sweep_held.set()
        if stop.wait(seconds):
            raise InterruptedError("test over")

    def new_limiter(priority: Priority, **options: object) -> SlidingWindowLimiter:
        budget = SqlRateBudget(engines())
        return SlidingWindowLimiter(
            limit=10, window=3600.0, budget=budget, priority=priority, **options
        )  # type: ignore[arg-type]

    sweep = new_limiter(Priority.SWEEP, sleep=sweep_sleep)
    interactive = new_limiter(Priority.INTERACTIVE)
    for _ in range(8):
        sweep.acquire()
    outcome: list[object] = []

    def ninth_sweep_grant() -> None:
        try:
            outcome.append(sweep.acquire())
        except InterruptedError as stopped:
            outcome.append(stopped)

    waiting = threading.Thread(target=ninth_sweep_grant)
    waiting.start()
    try:
        assert sweep_held.wait(10)
        interactive.acquire()
        interactive.acquire()
        assert waiting.is_alive()  # the sweep is still held back
    finally:
        stop.set()
        waiting.join(10)
    assert [type(o) for o in outcome] == [InterruptedError]


@pytest.mark.parametrize("engines", SQL, indirect=True)
def test_a_429_in_one_process_pauses_the_others(engines, make_client, simulator):
    """SendGrid's Retry-After, seen by one client, holds a limiter on another engine."""
    simulator.state.add_fault(FaultRule(kind="ratelimit", arg="2", times=1))
    first = make_client(limiter=SlidingWindowLimiter(limit=100, budget=SqlRateBudget(engines())))
    engine = engines()
    other = SlidingWindowLimiter(limit=100, budget=SqlRateBudget(engine))

    def paused() -> bool:
        with engine.connect() as connection:
            return bool(connection.execute(select(rate_budgets.c.paused_until)).scalar())

    with ThreadPoolExecutor(max_workers=1) as pool:
        balance = pool.submit(first.get_balance, "acme-eu")
        wait_until(paused)  # the first client got its 429 and stored the pause
        waited = other.acquire()
        assert balance.result(timeout=10).remaining == 31_200
    assert waited > 1.0  # most of the 2 s pause was left when it asked
    assert [c.outcome for c in simulator.state.calls()] == ["fault:ratelimit", "ok"]


@pytest.mark.postgres
def test_with_the_shared_budget_unreachable_a_process_keeps_a_quarter_of_it_on_its_own():
    """Reads must answer with the database down (writes are refused before any call)."""
    from sqlalchemy import text

    from tests.pg import create_database, server_url

    admin = server_url()
    if admin is None:
        pytest.skip("TEST_DATABASE_URL is not set")
    url = create_database()
    engine = create_store_engine(url)
    migrate(engine)
    clock = FakeClock()

    def sleep(seconds: float) -> None:
        clock.now += seconds

    limiter = SlidingWindowLimiter(
        limit=40, window=60, budget=SqlRateBudget(engine), clock=clock, sleep=sleep
    )
    limiter.acquire()
    name = url.rsplit("/", 1)[1]
    admin_engine = create_store_engine(admin).execution_options(isolation_level="AUTOCOMMIT")
    with admin_engine.connect() as connection:
        connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin_engine.dispose()
    waits = [limiter.acquire() for _ in range(10)]
    assert waits == [0.0] * 10  # a quarter of 40: granted at once, from its own budget
    assert limiter.acquire() > 50  # the 11th waits for its own window to move
    engine.dispose()
