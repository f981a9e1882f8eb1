"""Refuse a signed Slack request seen before (a replay inside Slack's 5-minute window).

Slack signs `v0:{timestamp}:{body}`; the same signature twice is the same request
twice. Slack does not retry slash commands or interactions, so a repeat is a replay:
one unique INSERT per request decides, across every instance sharing the database.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, delete, insert
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from bot.adapters.store.tables import seen_requests
from bot.errors import StoreError

# Slack refuses timestamps more than 5 minutes off; keep a little longer than that.
KEEP = timedelta(minutes=6)
PRUNE_EVERY = 200


class SeenRequests:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._inserts = itertools.count(1)

    def first_time(self, signature: str, *, now: datetime | None = None) -> bool:
        """Record `signature`; False if it was already recorded (a replay)."""
        now = now or datetime.now(UTC)
        try:
            with self._engine.begin() as connection:
                connection.execute(
                    insert(seen_requests).values(signature=signature[:80], seen_at=now)
                )
                if next(self._inserts) % PRUNE_EVERY == 0:
                    connection.execute(
                        delete(seen_requests).where(seen_requests.c.seen_at < now - KEEP)
                    )
        except IntegrityError:
            return False
        except SQLAlchemyError as error:
            raise StoreError(f"the database failed ({type(error).__name__})") from error
        return True
