"""How fast, and in how much memory, does a low-credit sweep run?

Each figure is printed next to its baseline or bound, measured in the same run,
with its conditions and the load average.

(d) production (the default): N=2,000 subusers, SendGrid's real limit (600
    requests/minute, enforced by the simulator with 429s), every call L=100 ms.
    `credits-bot sweep` as production runs it (the fleet budget in a database,
    sweep priority, SENDGRID_INTERACTIVE_RESERVE 20%), the same with the reserve
    at 0, and a sequential script (list, then read each subuser, waiting out 429s),
    each against its own simulator, side by side. Target: the bot no slower.
(a) rate-bound: N=10,000, the simulator and the limiter at 6,000/min (not
    SendGrid's limit). Bound: N / rate. Target ≤ 1.15 and zero 429s.
(b) latency-bound, NOT production (no rate limit at all): every call 20 ms,
    concurrency C. Bound: N·L/C. Target ≤ 1.15.
(c) peak RSS of this process sweeping 100,000 subusers. Target < 200 MB.

    python bench/sweep.py [--only d|a|b|c|all] [--prod-n 2000] [--latency-ms 100]

The simulators run as their own processes (loaded from generated data), so their
memory and CPU are not this process's; the sweeps write to scratch SQLite
databases this bench creates (and deletes). Loopback only; bounded by the N given.
"""

from __future__ import annotations

import argparse
import logging
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.adapters.sendgrid import RetryPolicy, SendGridV2Client, SlidingWindowLimiter  # noqa: E402
from bot.adapters.sendgrid.ratelimit import NoLimit, Priority  # noqa: E402
from bot.adapters.store import SqlStore  # noqa: E402
from bot.adapters.store.alerts import SqlAlertStore  # noqa: E402
from bot.adapters.store.ratelimit import SqlRateBudget  # noqa: E402
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


KEY = DEMO_API_KEY


def client(
    url: str, *, key: str = DEMO_API_KEY, limiter: object, retry: RetryPolicy | None = None
) -> SendGridV2Client:
    return SendGridV2Client(
        api_user=DEMO_API_USER,
        api_key=key,
        base_url=url,
        timeout=30,
        limiter=limiter,  # type: ignore[arg-type]
        retry=retry or RetryPolicy(attempts=3),
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


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def production_sweep(
    scratch: Path, name: str, url: str, *, limit: int, reserve: float
) -> SweepService:
    """`credits-bot sweep`'s set-up: the budget in the database, sweep priority."""
    store = SqlStore.from_url(f"sqlite:///{scratch / name}")
    limiter = SlidingWindowLimiter(
        limit=limit, budget=SqlRateBudget(store.engine), priority=Priority.SWEEP, reserve=reserve
    )
    return SweepService(
        backend=client(url, key=KEY, limiter=limiter),
        store=SqlAlertStore(store),
        poster=None,
        thresholds=Thresholds(below=1000, percent=10),
        concurrency=8,
        clock=lambda: datetime.now(UTC),
    )


def run_sweep(service: SweepService) -> float:
    seconds, _read, failed = timed_sweep(service)
    if failed:
        print(f"    ({failed} failed reads)")
    return seconds


def sequential_script(url: str) -> float:
    """What an operator would write: list, then read each subuser in turn; on a 429,
    wait what SendGrid says and read again."""
    backend = client(
        url, key=KEY, limiter=NoLimit(), retry=RetryPolicy(attempts=20, max_retry_after=61.0)
    )
    started = time.perf_counter()
    for account in list(backend.list_accounts()):
        if account.active:
            backend.get_balance(account.username)
    return time.perf_counter() - started


def production(scratch: Path, n: int, latency_ms: int) -> None:
    global KEY  # noqa: PLW0603 (one key for the clients of this section)
    KEY = f"{DEMO_API_KEY}~latency:{latency_ms}"
    limit = 600
    sims = [Simulator(n, rate_limit=limit) for _ in range(3)]
    load_before = loadavg()
    try:
        # Built one after the other: opening a store runs Alembic, which is not thread-safe.
        bots = [
            production_sweep(scratch, f"d{i}.db", sim.url, limit=limit, reserve=reserve)
            for i, (sim, reserve) in enumerate(zip(sims, (0.2, 0.0), strict=False))
        ]
        with ThreadPoolExecutor(max_workers=3) as pool:
            bot = pool.submit(run_sweep, bots[0])
            bot0 = pool.submit(run_sweep, bots[1])
            script = pool.submit(sequential_script, sims[2].url)
            seconds = (bot.result(), bot0.result(), script.result())
        limited = [_outcome(sim.stats(), "rate-limited") for sim in sims]
    finally:
        for sim in sims:
            sim.stop()
    print(
        f"(d) production: {n:,} subusers, SendGrid limit {limit}/min (simulator, 429 past it), "
        f"{latency_ms} ms per call; three simulators side by side; "
        f"loadavg {load_before} → {loadavg()}"
    )
    names = (
        "credits-bot sweep (reserve 20%, the default)",
        "credits-bot sweep (SENDGRID_INTERACTIVE_RESERVE=0)",
        "sequential script (the baseline)",
    )
    for name, took, n429 in zip(names, seconds, limited, strict=True):
        print(f"    {name:52} {took:7.1f} s   429s: {n429}")
    print(
        f"    bot/script: {seconds[0] / seconds[2]:.2f} (reserve 20%), "
        f"{seconds[1] / seconds[2]:.2f} (reserve 0); target ≤ 1.00"
    )


def _outcome(stats: dict[str, object], name: str) -> object:
    outcomes = stats["outcomes"]
    return outcomes.get(name, 0) if isinstance(outcomes, dict) else "?"


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
    parser.add_argument("--prod-n", type=int, default=2_000)
    parser.add_argument("--latency-ms", type=int, default=100)
    parser.add_argument("--only", choices=("a", "b", "c", "d", "all"), default="d")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as scratch_dir:
        scratch = Path(scratch_dir)
        if args.only in ("all", "d"):
            production(scratch, args.prod_n, args.latency_ms)
        if args.only in ("all", "c"):  # first, so the other runs do not inflate the peak
            memory(scratch, args.memory_n, args.concurrency)
        if args.only in ("all", "b"):
            latency_bound(scratch, args.latency_n, args.concurrency, 20, sample=200)
        if args.only in ("all", "a"):
            rate_bound(scratch, args.rate_n, args.concurrency)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
