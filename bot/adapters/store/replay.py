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

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, delete, insert
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from bot.adapters.store.tables import seen_requests
from bot.errors import StoreError

# Slack's window: a timestamp more than 5 minutes from now is refused as stale.
SLACK_WINDOW = timedelta(minutes=5)
# Other instances' clocks may differ from ours by this much.
CLOCK_MARGIN = timedelta(minutes=1)
# Forgetting is one DELETE on an indexed column, at most this often per process.
PRUNE_INTERVAL = timedelta(seconds=30)


class SeenRequests:
    """The signatures of requests already handled, shared through the database."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._next_prune = datetime.min.replace(tzinfo=UTC)

    def first_time(self, signature: str, *, signed_at: datetime, now: datetime) -> bool:
        """Record `signature` (stamped `signed_at` by Slack); False if already recorded.

        Raises StoreError when the database fails, so the caller decides what an
        unchecked request may still do.
        """
        try:
            with self._engine.begin() as connection:
                connection.execute(
                    insert(seen_requests).values(signature=signature[:80], seen_at=signed_at)
                )
                if now >= self._next_prune:
                    self._next_prune = now + PRUNE_INTERVAL
                    connection.execute(
                        delete(seen_requests).where(
                            seen_requests.c.seen_at < now - SLACK_WINDOW - CLOCK_MARGIN
                        )
                    )
        except IntegrityError:
            return False
        except SQLAlchemyError as error:
            raise StoreError(f"the database failed ({type(error).__name__})") from error
        return True


class ReplayClaim:
    """One admitted request's claim to run its work, decided when the work starts."""

    def __init__(
        self, seen: SeenRequests, signature: str, *, signed_at: datetime, now: datetime
    ) -> None:
        self._seen = seen
        self._signature = signature
        self._signed_at = signed_at
        self._now = now

    def claim(self) -> bool | None:
        """True: the first time, run the work. False: a replay, run nothing.
        None: the database could not say (a replay would go unnoticed: the caller
        may still answer reads, and must refuse changes)."""
        try:
            return self._seen.first_time(self._signature, signed_at=self._signed_at, now=self._now)
        except StoreError:
            return None
