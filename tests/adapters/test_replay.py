"""The seen-requests table: a signature is remembered for as long as Slack's window
accepts its timestamp, whichever side of now that timestamp is on."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, event, func, select

from bot.adapters.store import SqlStore
from bot.adapters.store.replay import ReplayClaim, SeenRequests
from bot.adapters.store.tables import seen_requests
from bot.errors import StoreError
from tests.helpers import wait_until
from tests.pg import postgres_url, reset_postgres

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
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


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def rows(store: SqlStore) -> int:
    with store.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(seen_requests)).scalar_one())


def test_a_request_stamped_in_the_future_is_remembered_until_its_stamp_is_stale(
    store: SqlStore,
):
    """The issue's case: stamped +280 s, replayed at +368 s, after other requests pruned."""
    seen = SeenRequests(store.engine)
    assert seen.first_time("v0=future", signed_at=at(280), now=at(0))
    assert seen.first_time("v0=other", signed_at=at(368), now=at(368))  # prunes
    assert not seen.first_time("v0=future", signed_at=at(280), now=at(368))
    # Slack's window (+ a minute for other clocks) has passed for it: forgotten.
    assert seen.first_time("v0=later", signed_at=at(700), now=at(700))  # prunes
    assert rows(store) == 2  # "v0=other" (stamped 368 s) is still inside its window
    assert seen.first_time("v0=future", signed_at=at(280), now=at(700))


def test_a_request_stamped_in_the_past_is_forgotten_once_outside_the_window(store: SqlStore):
    seen = SeenRequests(store.engine)
    assert seen.first_time("v0=old", signed_at=at(-290), now=at(0))
    assert seen.first_time("v0=new", signed_at=at(60), now=at(60))  # prunes: kept
    assert not seen.first_time("v0=old", signed_at=at(-290), now=at(60))
    assert seen.first_time("v0=newer", signed_at=at(100), now=at(100))  # prunes: gone
    assert rows(store) == 2


def test_an_unreachable_database_raises_store_error(tmp_path: Path):
    engine = create_engine(f"sqlite:///{tmp_path / 'missing' / 'store.sqlite3'}")
    with pytest.raises(StoreError):
        SeenRequests(engine).first_time("v0=x", signed_at=T0, now=T0)


def test_threads_claiming_together_are_recorded_in_one_transaction(store: SqlStore):
    """A burst of 50 requests in one process: not 50 INSERT + COMMIT contending for
    connections. The first claim is held in the database until 49 more queue behind it."""
    seen = SeenRequests(store.engine)
    held, release = threading.Event(), threading.Event()
    transactions: list[int] = []

    def hold_the_first(*args: Any) -> None:
        statement = str(args[2])
        if statement.lstrip().upper().startswith("INSERT INTO SEEN_REQUESTS"):
            transactions.append(1)
            if len(transactions) == 1:
                held.set()
                assert release.wait(10)

    event.listen(store.engine, "before_cursor_execute", hold_the_first)
    try:
        with ThreadPoolExecutor(max_workers=50) as pool:
            first = pool.submit(seen.first_time, "v0=0", signed_at=T0, now=T0)
            assert held.wait(10)
            rest = [
                pool.submit(seen.first_time, f"v0={i}", signed_at=T0, now=T0) for i in range(1, 50)
            ]
            wait_until(lambda: seen.waiting() == 49)
            release.set()
            assert [f.result(timeout=10) for f in [first, *rest]] == [True] * 50
    finally:
        event.remove(store.engine, "before_cursor_execute", hold_the_first)
    assert len(transactions) == 2  # the first alone, then the 49 that queued behind it
    assert rows(store) == 50


def test_the_same_signature_twice_in_one_batch_is_new_once(store: SqlStore):
    seen = SeenRequests(store.engine)
    held, release = threading.Event(), threading.Event()

    def hold_the_first(*args: Any) -> None:
        statement = str(args[2])
        if "SEEN_REQUESTS" in statement.upper() and not held.is_set():
            held.set()
            assert release.wait(10)

    event.listen(store.engine, "before_cursor_execute", hold_the_first)
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            first = pool.submit(seen.first_time, "v0=first", signed_at=T0, now=T0)
            assert held.wait(10)
            twins = [
                pool.submit(seen.first_time, "v0=twin", signed_at=T0, now=T0) for _ in range(2)
            ]
            again = pool.submit(seen.first_time, "v0=first", signed_at=T0, now=T0)
            wait_until(lambda: seen.waiting() == 3)
            release.set()
            assert first.result(timeout=10) is True
            assert sorted(f.result(timeout=10) for f in twins) == [False, True]
            assert again.result(timeout=10) is False  # recorded by the batch before
    finally:
        event.remove(store.engine, "before_cursor_execute", hold_the_first)


def test_a_failed_batch_fails_every_claim_in_it(tmp_path: Path):
    engine = create_engine(f"sqlite:///{tmp_path / 'missing' / 'store.sqlite3'}")
    seen = SeenRequests(engine)
    with ThreadPoolExecutor(max_workers=8) as pool:
        claims = [pool.submit(seen.first_time, f"v0={i}", signed_at=T0, now=T0) for i in range(8)]
        for claim in claims:
            with pytest.raises(StoreError):
                claim.result(timeout=10)
    assert seen.waiting() == 0
    engine.dispose()


def test_claims_admitted_before_the_first_work_starts_are_recorded_together(store: SqlStore):
    """A claim is put in line when its request is admitted; the first work thread to
    ask records every claim in line by then, in one transaction."""
    seen = SeenRequests(store.engine)
    inserts: list[str] = []

    def count(*args: Any) -> None:
        if str(args[2]).lstrip().upper().startswith("INSERT INTO SEEN_REQUESTS"):
            inserts.append(str(args[2]))

    claims = [ReplayClaim(seen, f"v0={i}", signed_at=T0, now=T0) for i in range(10)]
    replay = ReplayClaim(seen, "v0=3", signed_at=T0, now=T0)
    assert rows(store) == 0  # admitted: nothing written yet
    event.listen(store.engine, "before_cursor_execute", count)
    try:
        assert [c.claim() for c in claims] == [True] * 10
        assert replay.claim() is False
    finally:
        event.remove(store.engine, "before_cursor_execute", count)
    assert len(inserts) == 1
    assert rows(store) == 10
