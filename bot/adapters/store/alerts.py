"""Alert state, balance snapshots and threshold overrides, for the low-credit sweep.

Read and written in chunks, so a sweep of 100,000 subusers never holds more
than a chunk's rows in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, insert, select, update

from bot.adapters.store.sql import SqlStore, _utc
from bot.adapters.store.tables import (
    alert_states,
    alert_thresholds,
    balance_snapshots,
    digest_messages,
)
from bot.domain.alerts import AlertLevel, AlertState, Snapshot, Usage, attention
from bot.domain.credits import Balance

CHUNK = 500


class SqlAlertStore:
    """The `AlertStore` port on the same database as approvals and audit."""

    def __init__(self, store: SqlStore) -> None:
        self._store = store

    def states(self, users: Sequence[str]) -> dict[str, AlertState]:
        found: dict[str, AlertState] = {}
        with self._store.transaction() as connection:
            for start in range(0, len(users), CHUNK):
                chunk = list(users[start : start + CHUNK])
                rows = connection.execute(
                    select(alert_states).where(alert_states.c.target.in_(chunk))
                ).all()
                for row in rows:
                    state = _state(row._mapping)
                    found[state.user] = state
        return found

    def save_states(self, states: Iterable[AlertState]) -> None:
        """Insert or update, in bulk: one query, one executemany of each kind per chunk."""
        rows = [{"target": state.user, **_values(state)} for state in states]
        with self._store.transaction() as connection:
            _save_states(connection, rows)

    def add_snapshots(self, balances: Iterable[tuple[str, Balance]], *, at: datetime) -> None:
        rows = _snapshot_rows(balances, at)
        if not rows:
            return
        with self._store.transaction() as connection:
            connection.execute(insert(balance_snapshots), rows)

    def save_reads(
        self, states: Sequence[AlertState], balances: Sequence[tuple[str, Balance, datetime]]
    ) -> None:
        """A batch of reads in one transaction: the states (bulk upsert) and a snapshot of
        each balance at the moment it was read."""
        rows = [r for user, b, at in balances for r in _snapshot_rows([(user, b)], at)]
        with self._store.transaction() as connection:
            _save_states(connection, [{"target": s.user, **_values(s)} for s in states])
            if rows:
                connection.execute(insert(balance_snapshots), rows)

    def runways(self, *, limit: int = 50) -> list[AlertState]:
        """Accounts needing attention, most urgent first: exhausted, then low, then the
        shortest runway; from the stored state, without calling SendGrid."""
        table = alert_states.c
        with self._store.transaction() as connection:
            rows = connection.execute(
                select(alert_states).where(table.level.in_(["low", "exhausted"]))
            ).all()
        return attention([_state(row._mapping) for row in rows], limit=limit)

    def prune_snapshots(self, *, before: datetime) -> None:
        with self._store.transaction() as connection:
            connection.execute(delete(balance_snapshots).where(balance_snapshots.c.at < before))

    def thresholds(self) -> dict[str, int]:
        with self._store.transaction() as connection:
            rows = connection.execute(
                select(alert_thresholds.c.target, alert_thresholds.c.below)
            ).all()
        return {target: int(below) for target, below in rows}

    def latest_snapshots(
        self, *, at_or_below: int | None = None, limit: int = 1000
    ) -> list[Snapshot]:
        """Each subuser's latest snapshot, fewest credits first (unlimited last); with
        `at_or_below`, only limited balances at or below it."""
        table = balance_snapshots.c
        newest = (
            select(table.target, func.max(table.at).label("at")).group_by(table.target).subquery()
        )
        query = select(table.target, table.at, table.remaining, table.unlimited).join(
            newest, (table.target == newest.c.target) & (table.at == newest.c.at)
        )
        if at_or_below is not None:
            query = query.where(
                table.unlimited.is_(False),
                table.remaining.is_not(None),
                table.remaining <= at_or_below,
            )
        query = query.order_by(
            table.unlimited, table.remaining.is_(None), table.remaining, table.target
        )
        found: dict[str, Snapshot] = {}
        with self._store.transaction() as connection:
            for row in connection.execute(query.limit(limit * 2)):
                if row.target not in found:  # two snapshots at the same instant: one
                    found[row.target] = _snapshot(row._mapping)
        return list(found.values())[:limit]

    def subuser_names(self) -> list[str]:
        """Every subuser a sweep has read (within the snapshots kept), sorted."""
        with self._store.transaction() as connection:
            rows = connection.execute(
                select(balance_snapshots.c.target).distinct().order_by(balance_snapshots.c.target)
            ).scalars()
            return list(rows)

    def snapshot_history(self, user: str, *, since: datetime) -> list[Snapshot]:
        """`user`'s snapshots since `since`, oldest first."""
        table = balance_snapshots.c
        with self._store.transaction() as connection:
            rows = connection.execute(
                select(table.target, table.at, table.remaining, table.unlimited)
                .where(table.target == user, table.at >= since)
                .order_by(table.at, table.id)
            ).all()
        return [_snapshot(row._mapping) for row in rows]

    def worrying_states(self, *, within_hours: float, limit: int) -> list[AlertState]:
        """States announced low or exhausted, or whose stored pace runs out within
        `within_hours`, soonest first (at most `limit`)."""
        c = alert_states.c
        paced = (c.per_hour > 0) & c.last_remaining.is_not(None)
        query = (
            select(alert_states)
            .where(
                (c.announced != AlertLevel.OK.value)
                | (paced & (c.last_remaining <= c.per_hour * within_hours))
            )
            .order_by(
                (c.per_hour > 0).is_not(True),
                (c.last_remaining / func.nullif(c.per_hour, 0)),
                c.target,
            )
            .limit(limit)
        )
        with self._store.transaction() as connection:
            return [_state(row._mapping) for row in connection.execute(query)]

    def set_threshold(self, user: str, below: int, *, by: str, at: datetime) -> None:
        with self._store.transaction() as connection:
            changed = connection.execute(
                update(alert_thresholds)
                .where(alert_thresholds.c.target == user)
                .values(below=below, set_by=by, set_at=at)
            ).rowcount
            if not changed:
                connection.execute(
                    insert(alert_thresholds).values(target=user, below=below, set_by=by, set_at=at)
                )

    def edit_digest(
        self,
        channel_id: str,
        message_ts: str,
        *,
        seen: str,
        edit: Callable[[str], str],
        now: datetime,
    ) -> str:
        """Apply `edit` to the digest message as last edited (or to `seen`, the copy the
        click carried, the first time), with the row locked; returns the new content."""
        table = digest_messages.c
        key = (table.channel_id == channel_id, table.message_ts == message_ts)
        with self._store.transaction() as connection:
            current = connection.execute(
                select(table.blocks).where(*key).with_for_update()
            ).scalar_one_or_none()
            if current is None:
                connection.execute(
                    insert(digest_messages).values(
                        channel_id=channel_id, message_ts=message_ts, blocks=seen, updated_at=now
                    )
                )
                # Of two first edits at the same moment, one loses on the primary key
                # (StoreError) and is retried by the caller, then finds this row.
                current = seen
            edited = edit(current)
            connection.execute(
                update(digest_messages).where(*key).values(blocks=edited, updated_at=now)
            )
        return edited

    def snooze(self, user: str, *, until: datetime) -> None:
        with self._store.transaction() as connection:
            current = connection.execute(
                select(alert_states).where(alert_states.c.target == user)
            ).one_or_none()
            state = _state(current._mapping) if current else AlertState(user)
            _upsert_state(connection, replace(state, snoozed_until=until))


def _save_states(connection: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert or update, in bulk: one query, one executemany of each kind per chunk."""
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start : start + CHUNK]
        existing = set(
            connection.execute(
                select(alert_states.c.target).where(
                    alert_states.c.target.in_([r["target"] for r in chunk])
                )
            ).scalars()
        )
        new = [r for r in chunk if r["target"] not in existing]
        old = [{**r, "key": r["target"]} for r in chunk if r["target"] in existing]
        if new:
            connection.execute(insert(alert_states), new)
        if old:
            connection.execute(
                update(alert_states)
                .where(alert_states.c.target == bindparam("key"))
                .values({k: bindparam(k) for k in _values(AlertState("-"))}),
                old,
            )


def _snapshot_rows(balances: Iterable[tuple[str, Balance]], at: datetime) -> list[dict[str, Any]]:
    return [
        {"target": user, "at": at, "remaining": b.remaining, "unlimited": b.unlimited}
        for user, b in balances
    ]


def _values(state: AlertState) -> dict[str, Any]:
    return {
        "announced": state.announced.value,
        "snoozed_until": state.snoozed_until,
        "last_remaining": state.usage.remaining if state.usage else None,
        "last_seen_at": state.usage.at if state.usage else None,
        "per_hour": state.usage.per_hour if state.usage else None,
        "rate_spread": state.usage.spread if state.usage else None,
        "level": state.level.value if state.level else None,
        "due_at": state.due,
    }


def _upsert_state(connection: Connection, state: AlertState) -> None:
    values = _values(state)
    changed = connection.execute(
        update(alert_states).where(alert_states.c.target == state.user).values(values)
    ).rowcount
    if not changed:
        connection.execute(insert(alert_states).values(target=state.user, **values))


def _snapshot(m: Any) -> Snapshot:
    at = _utc(m["at"])
    assert at is not None
    remaining = m["remaining"]
    return Snapshot(
        user=m["target"],
        at=at,
        remaining=int(remaining) if remaining is not None else None,
        unlimited=bool(m["unlimited"]),
    )


def _state(m: Any) -> AlertState:
    usage = None
    if m["last_seen_at"] is not None and m["last_remaining"] is not None:
        seen = _utc(m["last_seen_at"])
        assert seen is not None
        usage = Usage(int(m["last_remaining"]), seen, m["per_hour"], m["rate_spread"])
    return AlertState(
        user=m["target"],
        announced=AlertLevel(m["announced"]),
        snoozed_until=_utc(m["snoozed_until"]),
        usage=usage,
        level=AlertLevel(m["level"]) if m["level"] else None,
        due=_utc(m["due_at"]),
    )
