"""Refuse a signed Slack request seen before (a replay inside Slack's 5-minute window).

Slack signs `v0:{timestamp}:{body}`; the same signature twice is the same request
twice. Slack does not retry slash commands or interactions, so a repeat is a replay:
one unique INSERT per request decides, across every instance sharing the database.

The record is made when the request's *work* starts, not before its ack
(`ReplayClaim`): a replay is acknowledged like any request, and its work, finding
the signature already recorded, does nothing. The ack then costs no database
round trip; the guarantee is the same (the work of one signed request runs at
most once, across every instance).

A signature is accepted for as long as its *timestamp* is within 5 minutes of now,
on either side. So the row stores that timestamp (in `seen_at`, the moment Slack
says it sent the request), and a row is forgotten only once its timestamp has left
the window, plus a margin for the clocks of other instances: not so many minutes
after the insert, which for a request stamped in the future is too early.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from bot.adapters.store.tables import seen_requests
from bot.errors import StoreError

# Slack's window: a timestamp more than 5 minutes from now is refused as stale.
SLACK_WINDOW = timedelta(minutes=5)
# Other instances' clocks may differ from ours by this much.
CLOCK_MARGIN = timedelta(minutes=1)
# Forgetting is one DELETE on an indexed column, at most this often per process.
PRUNE_INTERVAL = timedelta(seconds=30)


class SeenRequests:
    """The signatures of requests already handled, shared through the database.

    Threads of one process never record side by side: one records, in one
    transaction, every signature waiting at that moment (a burst of 50 commands
    costs a few transactions, not 50 contending for connections), and tells each
    thread whether its own was new. Each signature is still one unique row: the
    same signature twice, in one batch or across instances, is new only once.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._next_prune = datetime.min.replace(tzinfo=UTC)
        self._state = threading.Condition()
        self._queued: list[Queued] = []
        self._recording = False

    def first_time(self, signature: str, *, signed_at: datetime, now: datetime) -> bool:
        """Record `signature` (stamped `signed_at` by Slack); False if already recorded.

        Raises StoreError when the database fails, so the caller decides what an
        unchecked request may still do.
        """
        return self.outcome(self.queue(signature, signed_at=signed_at, now=now))

    def queue(self, signature: str, *, signed_at: datetime, now: datetime) -> Queued:
        """Put `signature` in line to be recorded, without waiting: the next thread
        that asks for an outcome records it with its own (`outcome`)."""
        pending = Queued(signature[:80], signed_at, now)
        with self._state:
            self._queued.append(pending)
        return pending

    def outcome(self, queued: Queued) -> bool:
        """Whether `queued`'s signature was new: records every signature in line now,
        unless another thread is recording them (then waits for it)."""
        mine = queued
        with self._state:
            while mine.outcome is None and self._recording:
                self._state.wait()
            if mine.outcome is None:  # nobody is recording: record every queued one
                batch, self._queued = self._queued, []
                self._recording = True
        if mine.outcome is None:
            failure: StoreError | None = None
            try:
                self._record(batch)
            except StoreError as error:
                failure = error
            finally:
                with self._state:
                    for pending in batch:  # all of them, whatever happened
                        if failure is not None or pending.outcome is None:
                            pending.outcome = failure or StoreError("the database failed")
                    self._recording = False
                    self._state.notify_all()
        if isinstance(mine.outcome, StoreError):
            raise mine.outcome
        return bool(mine.outcome)

    def waiting(self) -> int:
        """How many signatures are queued behind the one being recorded now."""
        with self._state:
            return len(self._queued)

    def _record(self, batch: list[Queued]) -> None:
        """One transaction: insert every new signature of `batch`, and say which were."""
        now = max(pending.now for pending in batch)
        rows: dict[str, datetime] = {}
        for pending in batch:
            rows.setdefault(pending.signature, pending.signed_at)
        try:
            with self._engine.begin() as connection:
                statement = _insert_new(connection.dialect.name)
                inserted = set(
                    connection.execute(
                        statement.values(
                            [{"signature": s, "seen_at": at} for s, at in rows.items()]
                        )
                        .on_conflict_do_nothing(index_elements=["signature"])
                        .returning(seen_requests.c.signature)
                    ).scalars()
                )
                if now >= self._next_prune:
                    self._next_prune = now + PRUNE_INTERVAL
                    connection.execute(
                        delete(seen_requests).where(
                            seen_requests.c.seen_at < now - SLACK_WINDOW - CLOCK_MARGIN
                        )
                    )
        except SQLAlchemyError as error:
            raise StoreError(f"the database failed ({type(error).__name__})") from error
        for pending in batch:  # the first of a signature in the batch takes it
            pending.outcome = pending.signature in inserted
            inserted.discard(pending.signature)


def _insert_new(dialect: str) -> Any:
    """INSERT … ON CONFLICT DO NOTHING for this dialect (PostgreSQL and SQLite ≥ 3.35)."""
    if dialect == "postgresql":
        return postgresql.insert(seen_requests)
    if dialect == "sqlite":
        return sqlite.insert(seen_requests)
    raise StoreError(f"no replay record for the {dialect} dialect")


@dataclass(slots=True, eq=False)
class Queued:
    """A signature in line to be recorded, and once recorded, whether it was new."""

    signature: str
    signed_at: datetime
    now: datetime
    outcome: bool | StoreError | None = None


class ReplayClaim:
    """One admitted request's claim to run its work: put in line when the request is
    admitted (no waiting, nothing written before the ack), decided when the work
    starts. The first work thread to ask records every claim in line by then, so a
    burst's claims go to the database together."""

    def __init__(
        self, seen: SeenRequests, signature: str, *, signed_at: datetime, now: datetime
    ) -> None:
        self._seen = seen
        self._queued = seen.queue(signature, signed_at=signed_at, now=now)

    def claim(self) -> bool | None:
        """True: the first time, run the work. False: a replay, run nothing.
        None: the database could not say (a replay would go unnoticed: the caller
        may still answer reads, and must refuse changes)."""
        try:
            return self._seen.outcome(self._queued)
        except StoreError:
            return None
