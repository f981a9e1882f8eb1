"""What the audit ledger costs: one audit append (row + chained ledger entry), and a
full `verify`, on SQLite and PostgreSQL.

    python bench/ledger.py [--events 2000] [--server postgresql://postgres@127.0.0.1:5432/postgres]

For comparison each line also times the same append without the ledger entry (the
audit row alone, as before migration 0007). Loopback only; SQLite in a scratch
directory; PostgreSQL in a database it creates (dropped at exit).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert  # noqa: E402

from bot.adapters.store import SqlStore  # noqa: E402
from bot.adapters.store.tables import audit_events  # noqa: E402
from bot.config import normalize_database_url  # noqa: E402
from bot.domain.approvals import AuditAction, AuditEvent  # noqa: E402

EVENT = {"actor_id": "U0BENCH", "action": AuditAction.CHANGED, "target": "globex"}


def percentiles(samples: list[float]) -> str:
    cuts = statistics.quantiles(samples, n=100)
    return f"p50 {cuts[49] * 1000:.2f} ms, p99 {cuts[98] * 1000:.2f} ms"


def bench(url: str, events: int) -> None:
    store = SqlStore.from_url(url)
    chained: list[float] = []
    for i in range(events):
        started = time.perf_counter()
        store.record(AuditEvent(at=datetime.now(UTC), outcome=f"ok {i}", **EVENT))  # type: ignore[arg-type]
        chained.append(time.perf_counter() - started)
    plain: list[float] = []
    for i in range(events):
        started = time.perf_counter()
        with store.transaction() as connection:
            connection.execute(
                insert(audit_events).values(
                    at=datetime.now(UTC),
                    actor_id="U0BENCH",
                    action="changed",
                    target="globex",
                    outcome=f"plain {i}",
                )
            )
        plain.append(time.perf_counter() - started)
    started = time.perf_counter()
    report = store.verify_ledger()
    verify = time.perf_counter() - started
    name = url.split(":", 1)[0]
    print(f"{name}: append with ledger {percentiles(chained)}; row alone {percentiles(plain)}")
    print(
        f"{name}: verify of {report.rows} rows / {report.entries} entries: {verify:.2f} s "
        f"({len(report.problems)} problems: the {events} rows written without the ledger)"
    )
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--server", default=os.environ.get("TEST_DATABASE_URL"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        bench(f"sqlite:///{Path(scratch) / 'ledger.sqlite3'}", args.events)
    if args.server:
        os.environ["TEST_DATABASE_URL"] = args.server
        from tests.pg import create_database  # noqa: PLC0415

        bench(normalize_database_url(create_database("credits_bench_")), args.events)


if __name__ == "__main__":
    main()
