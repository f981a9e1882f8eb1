"""The audit ledger: every version of every audit row, chained by SHA-256.

An audit row is written before a SendGrid call and completed after it, so a row
has versions. Each version is appended here, in the same transaction that wrote
it, as `entry` (the row as canonical JSON) with
`hash = sha256(prev_hash + entry)`. Appending reads the one `ledger_head` row
with `FOR UPDATE` (PostgreSQL; on SQLite the audit write already holds the
database's write lock), so appends are serialised across instances and the
chain never forks.

`verify` then finds, without trusting anything but the chain:
- an edited ledger entry, or one deleted or inserted (the hashes or the
  sequence break, or the head no longer matches the last entry);
- an edited audit row (it differs from its newest ledger version);
- a deleted audit row (its ledger versions remain, the row does not);
- an audit row written behind the bot's back (no ledger version at all).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from bot.adapters.store.tables import audit_events, ledger_entries, ledger_head

CHAIN = "audit"
GENESIS = "0" * 64


def canonical(row: Any) -> str:
    """An audit row as the JSON its hash covers (stable across SQLite and PostgreSQL)."""
    m = row._mapping
    at: datetime = m["at"]
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    values = {
        "id": m["id"],
        "at": at.isoformat(timespec="microseconds"),
        "actor_id": m["actor_id"],
        "action": m["action"],
        "target": m["target"],
        "request_id": m["request_id"],
        "arguments": m["arguments"],
        "outcome": m["outcome"],
        "before_balance": m["before_balance"],
        "after_balance": m["after_balance"],
    }
    return json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def chained(prev_hash: str, entry: str) -> str:
    return hashlib.sha256((prev_hash + entry).encode()).hexdigest()


def seal(connection: Connection, rows: Iterable[Any]) -> None:
    """Append these audit rows, as just written (RETURNING), to the chain, in the
    transaction that wrote them."""
    entries = [(row.id, canonical(row)) for row in rows]
    if not entries:
        return
    head = ledger_head.c
    # Locked until commit (FOR UPDATE on PostgreSQL; SQLite's write lock is already held
    # by the audit write before it), so appends from every instance form one chain.
    seq, prev_hash = connection.execute(
        select(head.seq, head.hash).where(head.name == CHAIN).with_for_update()
    ).one()
    values = []
    for event_id, entry in entries:
        seq += 1
        digest = chained(prev_hash, entry)
        values.append(
            {
                "seq": seq,
                "event_id": event_id,
                "entry": entry,
                "prev_hash": prev_hash,
                "hash": digest,
            }
        )
        prev_hash = digest
    connection.execute(insert(ledger_entries), values)
    connection.execute(
        update(ledger_head).where(head.name == CHAIN).values(seq=seq, hash=prev_hash)
    )


@dataclass
class LedgerReport:
    """What `verify` found: `problems` empty means the trail is intact."""

    entries: int = 0
    rows: int = 0
    unchained: int = 0  # audit rows from before the ledger existed
    problems: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.problems


def verify(connection: Connection) -> LedgerReport:
    """Walk the chain and compare every audit row with its newest ledger version."""
    report = LedgerReport()
    head = connection.execute(select(ledger_head).where(ledger_head.c.name == CHAIN)).one()
    latest: dict[int, str] = {}
    expected_prev, expected_seq = GENESIS, 0
    for entry in connection.execute(select(ledger_entries).order_by(ledger_entries.c.seq)):
        report.entries += 1
        expected_seq += 1
        if entry.seq != expected_seq:
            report.problems.append(
                f"ledger entry {expected_seq} is missing (next is {entry.seq})"
                if entry.seq > expected_seq
                else f"ledger entry {entry.seq} is out of order"
            )
            expected_seq = entry.seq
        if entry.prev_hash != expected_prev:
            report.problems.append(f"ledger entry {entry.seq} does not follow the one before")
        if chained(entry.prev_hash, entry.entry) != entry.hash:
            report.problems.append(f"ledger entry {entry.seq} was edited (its hash is wrong)")
        expected_prev = entry.hash
        latest[entry.event_id] = entry.entry
    if head.seq != expected_seq or head.hash != expected_prev:
        report.problems.append(
            f"the ledger ends at entry {expected_seq} but its head says {head.seq}: "
            "entries were removed from the end"
        )
    seen: set[int] = set()
    for row in connection.execute(select(audit_events).order_by(audit_events.c.id)):
        report.rows += 1
        seen.add(row.id)
        if row.id in latest:
            if canonical(row) != latest[row.id]:
                report.problems.append(f"audit row {row.id} was edited after it was recorded")
        elif row.id <= head.unchained_through:
            report.unchained += 1
        else:
            report.problems.append(f"audit row {row.id} is not in the ledger (written outside)")
    for event_id in sorted(set(latest) - seen):
        report.problems.append(f"audit row {event_id} was deleted")
    return report
