"""What one grant from the fleet's SendGrid rate budget costs, on SQLite and PostgreSQL.

For each database, `SqlRateBudget.take()` is timed:
- one thread, `--grants` grants of a 600 budget (every call is a full grant: lock the
  budget row, read the time and the 600th latest grant, insert);
- three limiters on three engines (three processes' worth) × 4 threads each,
  `--grants` grants in all (a limiter lets one of its threads ask at a time);
- a burst of 50 threads in one limiter (50 `/credits show` at once): time until the
  last is granted, against 50 single grants in a row in the same run;
- refusals: the window is full, so a call locks, reads and answers how long to wait.
Each line gives the mean (wall time ÷ calls) and the p50/p99 of single calls.

    python bench/ratelimit.py [--grants 2000] [--server postgresql://postgres@127.0.0.1:5432/postgres]

Loopback only; bounded by --grants. SQLite in a scratch directory; PostgreSQL in a
database it creates and drops.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.adapters.sendgrid import SlidingWindowLimiter  # noqa: E402
from bot.adapters.store import create_store_engine, migrate  # noqa: E402
from bot.adapters.store.ratelimit import SqlRateBudget  # noqa: E402
from bot.config import normalize_database_url  # noqa: E402
from tests.pg import create_database  # noqa: E402

LIMIT = 600


def timed(takers: list[Callable[[], object]], calls: int, threads: int) -> str:
    def one(index: int) -> float:
        started = time.perf_counter()
        takers[index % len(takers)]()
        return time.perf_counter() - started

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        each = sorted(pool.map(one, range(calls)))
    wall = time.perf_counter() - started
    p50 = each[len(each) // 2] * 1e6
    p99 = each[int(len(each) * 0.99)] * 1e6
    return (
        f"{wall / calls * 1e6:7.0f} µs/call (wall ÷ calls)  "
        f"p50 {p50:6.0f} µs  p99 {p99:6.0f} µs  mean {statistics.fmean(each) * 1e6:6.0f} µs"
    )


def burst(budget: SqlRateBudget, size: int = 50, rounds: int = 10) -> str:
    """50 `/credits show` arriving together in one process: the time until the last of
    them is granted, batched (one limiter, its waiting threads granted together) and,
    in the same run, one grant per transaction in a row (what each thread used to do)."""
    together, in_a_row = [], []
    for _ in range(rounds):
        limiter = SlidingWindowLimiter(limit=LIMIT, window=0.5, budget=budget)
        barrier = threading.Barrier(size)

        def one(
            limiter: SlidingWindowLimiter = limiter, barrier: threading.Barrier = barrier
        ) -> float:
            barrier.wait()
            limiter.acquire()
            return time.perf_counter()

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=size) as pool:
            together.append(max(pool.map(lambda _: one(), range(size))) - started)
        time.sleep(0.6)  # the window empties
        started = time.perf_counter()
        for _ in range(size):
            budget.take(limit=LIMIT, window=0.5)
        in_a_row.append(time.perf_counter() - started)
        time.sleep(0.6)
    return (
        f"last granted after {statistics.median(together) * 1e3:5.1f} ms (median of {rounds}); "
        f"{size} single grants in a row: {statistics.median(in_a_row) * 1e3:5.1f} ms"
    )


def measure(label: str, url: str, grants: int) -> None:
    engines = [create_store_engine(url) for _ in range(3)]
    migrate(engines[0])
    budgets = [SqlRateBudget(engine) for engine in engines]
    # As in production: the 600th latest grant is read (an index scan of 600 entries).
    # A 0.5 s window keeps it outside the window, so every call here is a grant.
    grant = partial(budgets[0].take, limit=LIMIT, window=0.5)
    limiters = [SlidingWindowLimiter(limit=LIMIT, window=0.5, budget=budget) for budget in budgets]
    timed([grant], LIMIT, 1)  # warm up: connections, the budget row, 600 grants to read past
    print(f"{label}:")
    print(f"  1 thread, {grants} grants:                  {timed([grant], grants, 1)}")
    acquires = [limiter.acquire for limiter in limiters]
    print(f"  3 limiters × 4 threads, {grants} grants:    {timed(acquires, grants, 12)}")
    print(f"  burst of 50 threads in one limiter:        {burst(budgets[1])}")
    # A full 600-per-hour window: every call is refused (and says how long to wait).
    while budgets[0].take(limit=LIMIT, window=3600.0) == 0.0:
        pass
    refuse = partial(budgets[0].take, limit=LIMIT, window=3600.0)
    print(f"  1 thread, {grants} refusals:                {timed([refuse], grants, 1)}")
    for engine in engines:
        engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--grants", type=int, default=2000)
    parser.add_argument(
        "--server",
        default=os.environ.get(
            "TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
        help="a PostgreSQL server; the bench creates its own database there and drops it",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        measure("SQLite (file)", f"sqlite:///{Path(scratch) / 'budget.db'}", args.grants)
    os.environ["TEST_DATABASE_URL"] = normalize_database_url(args.server)
    measure("PostgreSQL", create_database("credits_bench_"), args.grants)
    return 0


if __name__ == "__main__":
    sys.exit(main())
