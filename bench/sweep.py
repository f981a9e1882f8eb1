"""How fast, and in how much memory, does a low-credit sweep run?

Each figure is printed next to its bound, measured in the same run:

(a) rate-bound: N=10,000 subusers; the simulator allows 6,000 requests/minute
    and the client's limiter is set to the same. Bound: N / rate. Target: sweep
    time ÷ bound ≤ 1.15, and zero HTTP 429s in the simulator's log.
(b) latency-bound: no rate limit, every call 20 ms, concurrency C. Bound:
    N·L/C. Target ≤ 1.15. Also the speed-up over a sequential loop of reads,
    timed on a sample in the same run.
(c) peak RSS of this process sweeping 100,000 subusers. Target < 200 MB.

    python bench/sweep.py [--rate-n 10000] [--latency-n 2000] [--memory-n 100000]

The simulator runs as its own process (loaded from a generated data file), so
its memory and CPU are not this process's; the sweep writes to a scratch SQLite
database. Loopback only; bounded by the N given.
"""

from __future__ import annotations

import argparse
import logging
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.adapters.sendgrid import RetryPolicy, SendGridV2Client, SlidingWindowLimiter  # noqa: E402
from bot.adapters.sendgrid.ratelimit import NoLimit  # noqa: E402
from bot.adapters.store import SqlStore  # noqa: E402
from bot.adapters.store.alerts import SqlAlertStore  # noqa: E402
from bot.commands.sweep import SweepService  # noqa: E402
from bot.domain.alerts import Thresholds  # noqa: E402
from bot.simulator import DEMO_API_KEY, DEMO_API_USER  # noqa: E402


class Simulator:
    """`credits-bot simulator` in its own process, with N generated subusers."""

    def __init__(self, n: int, *, rate_limit: int) -> None:
        # The simulator generates its own accounts: this process's memory stays the sweep's.
        command = ["-m", "bot", "simulator", "--port", "0", "--generate", str(n)]
        self.process = subprocess.Popen(
            [sys.executable, *command, "--rate-limit", str(rate_limit)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        self.url = next(w for w in line.split() if w.startswith("http://"))

    def stats(self) -> dict[str, object]:
        base = self.url.removesuffix("/apiv2/")
        return dict(requests.get(base + "/_sim/stats", timeout=60).json())

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=20)


def client(url: str, *, key: str = DEMO_API_KEY, limiter: object) -> SendGridV2Client:
    return SendGridV2Client(
        api_user=DEMO_API_USER,
        api_key=key,
        base_url=url,
        timeout=30,
        limiter=limiter,
        retry=RetryPolicy(attempts=3),  # type: ignore[arg-type]
        logger=logging.getLogger("bench"),
    )


def sweeper(backend: SendGridV2Client, scratch: Path, name: str, concurrency: int) -> SweepService:
    store = SqlStore.from_url(f"sqlite:///{scratch / name}")
    return SweepService(
        backend=backend,
        store=SqlAlertStore(store),
        poster=None,
        thresholds=Thresholds(below=1000, percent=10),
        concurrency=concurrency,
        clock=lambda: datetime.now(UTC),
    )


def timed_sweep(service: SweepService) -> tuple[float, int, int]:
    started = time.perf_counter()
    report = service.sweep()
    return time.perf_counter() - started, report.read, len(report.failures)


def rate_bound(scratch: Path, n: int, concurrency: int) -> None:
    rate = 6_000  # per minute, both sides
    sim = Simulator(n, rate_limit=rate)
    try:
        # The listing is one call; the reads are what the limiter paces.
        service = sweeper(
            client(sim.url, limiter=SlidingWindowLimiter(limit=rate)), scratch, "a.db", concurrency
        )
        seconds, read, failed = timed_sweep(service)
        stats = sim.stats()
    finally:
        sim.stop()
    active = read + failed
    bound = active / (rate / 60)
    outcomes = stats["outcomes"]
    limited = outcomes.get("rate-limited", 0) if isinstance(outcomes, dict) else "?"
    print(
        f"(a) rate-bound: {active:,} reads of {n:,} subusers at {rate:,}/min, "
        f"concurrency {concurrency}"
    )
    print(
        f"    sweep {seconds:.1f} s, bound N/rate {bound:.1f} s, ratio {seconds / bound:.3f} "
        f"(target ≤ 1.15); HTTP 429s: {limited} (target 0); failed reads: {failed}"
    )


def latency_bound(scratch: Path, n: int, concurrency: int, latency_ms: int, sample: int) -> None:
    sim = Simulator(n, rate_limit=0)
    key = f"{DEMO_API_KEY}~latency:{latency_ms}"
    try:
        backend = client(sim.url, key=key, limiter=NoLimit())
        seconds, read, failed = timed_sweep(sweeper(backend, scratch, "b.db", concurrency))
        users = [f"sub-{i:06d}" for i in range(sample)]
        started = time.perf_counter()
        for user in users:
            backend.get_balance(user)
        sequential_per_read = (time.perf_counter() - started) / sample
    finally:
        sim.stop()
    reads = read + failed
    bound = reads * latency_ms / 1000 / concurrency
    sequential = sequential_per_read * reads
    print(f"(b) latency-bound: {reads:,} reads, {latency_ms} ms each, concurrency {concurrency}")
    print(
        f"    sweep {seconds:.2f} s, bound N·L/C {bound:.2f} s, ratio {seconds / bound:.3f} "
        f"(target ≤ 1.15); a sequential loop ({sample} reads timed, "
        f"{sequential_per_read * 1000:.1f} ms each) would take {sequential:.1f} s: "
        f"speed-up ×{sequential / seconds:.1f}"
    )


def memory(scratch: Path, n: int, concurrency: int) -> None:
    sim = Simulator(n, rate_limit=0)
    try:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        service = sweeper(client(sim.url, limiter=NoLimit()), scratch, "c.db", concurrency)
        seconds, read, failed = timed_sweep(service)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    finally:
        sim.stop()
    print(f"(c) memory: swept {n:,} subusers ({read:,} read, {failed} failed) in {seconds:.0f} s")
    print(
        f"    peak RSS of this process {peak:.0f} MB (target < 200 MB); "
        f"{before:.0f} MB before the sweep started"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rate-n", type=int, default=10_000)
    parser.add_argument("--latency-n", type=int, default=2_000)
    parser.add_argument("--memory-n", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--only", choices=("a", "b", "c"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as scratch_dir:
        scratch = Path(scratch_dir)
        if args.only in (None, "c"):  # first, so the other runs do not inflate the peak
            memory(scratch, args.memory_n, args.concurrency)
        if args.only in (None, "b"):
            latency_bound(scratch, args.latency_n, args.concurrency, 20, sample=200)
        if args.only in (None, "a"):
            rate_bound(scratch, args.rate_n, args.concurrency)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
