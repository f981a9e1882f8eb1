"""How fast does a person get an answer while SendGrid is slow: the ack and the reply.

Bursts of 50 concurrent signed `/credits show` commands against credits-bot
as production runs it (`python -m bot serve`, the Procfile's `web:`: gunicorn,
one worker per CPU, at most 4, unless WEB_CONCURRENCY), with the SendGrid simulator
answering every call after 500 ms and the bot at SendGrid's real rate limit
(600/min, the fleet budget in a PostgreSQL database each run creates and drops, or
a scratch SQLite file with --sqlite); then the same
against a bare Bolt app that only acks, under the same gunicorn settings (workers,
threads), in the same run. Two load shapes:

- burst: each burst of 50 starts once the previous burst's replies have all
  reached the response_url (the issue's scenario, repeated for percentiles);
- sustained: bursts back to back, so acks overlap the previous bursts'
  SendGrid work and replies (a harsher shape; its later bursts exceed the
  600/min budget, so their replies wait for it by design).

Acks: seconds from sending the request to its HTTP answer (bot vs bare Bolt).
Replies: seconds from sending the request to the reply's arrival at the fake
Slack's response_url (its `_received_at`, same machine clock), bot only.

    python bench/ack_latency.py [--runs 3] [--rounds 6] [--concurrency 50] [--latency-ms 500]
                                [--workers N]   (both apps; default: what `serve` uses here)

Targets (issue 16), burst shape: reply p50 ≤ latency + 100 ms, reply p99 ≤
latency + 300 ms; ack p99 ≤ 1.5 × bare Bolt's in the same run.
The simulator and the fake Slack run as separate processes, so the bot's
post-ack traffic does not compete with this process's timing threads.
Loopback only; bounded: runs × 2 × (rounds + 1) × concurrency requests per app.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.config import Settings, normalize_database_url  # noqa: E402
from bot.simulator import DEMO_API_KEY, DEMO_API_USER  # noqa: E402
from bot.transports.slack.server import GUNICORN_OPTIONS, serve_workers  # noqa: E402
from tests.fakes.slack_requests import signed_headers, slash_command_body  # noqa: E402
from tests.pg import create_database, drop_database  # noqa: E402

SECRET = "bench-signing-secret"
VIEWER = "U0BENCHVW"
APPS = (("credits-bot", None, True), ("bare Bolt ack", "bench.bare_bolt_app:application()", False))
SHAPES = (("burst", True), ("sustained", False))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_helper(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    """Start a helper process that prints its URL on its first line."""
    process = subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    url = next(word for word in line.split() if word.startswith("http://"))
    return process, url.removesuffix("/apiv2/").rstrip("/")


def start_gunicorn(
    factory: str | None, env: dict[str, str], workers: int
) -> tuple[subprocess.Popen[bytes], str]:
    """`python -m bot serve` (factory None), or `factory` under the same gunicorn options."""
    port = free_port()
    if factory is None:
        command = ["-m", "bot", "serve", "--port", str(port)]
        env = {**env, "WEB_CONCURRENCY": str(workers)}
    else:
        command = ["-m", "gunicorn", *gunicorn_flags(), f"--workers={workers}"]
        command += ["--bind", f"127.0.0.1:{port}", factory]
    process = subprocess.Popen(
        [sys.executable, *command],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            requests.get(base + "/healthz", timeout=5)  # any answer: the worker is up
            return process, base
        except requests.RequestException:
            time.sleep(0.1)
    process.kill()
    raise SystemExit(f"{factory or 'credits-bot serve'} did not start")


def gunicorn_flags() -> list[str]:
    """`serve`'s gunicorn options as command-line flags."""
    flags = {"worker_class": "--worker-class", "keepalive": "--keep-alive"}
    return [
        f"{flags.get(key, '--' + key.replace('_', '-'))}={value}"
        for key, value in GUNICORN_OPTIONS.items()
    ]


class Replies:
    """Counts the replies the fake Slack has received at response_urls."""

    def __init__(self, slack_url: str) -> None:
        self.slack_url = slack_url
        self.expected = 0

    def count(self) -> int:
        answer = requests.get(self.slack_url + "/_fake/responses", timeout=5)
        return int(answer.json()["count"])

    def arrivals(self) -> dict[str, float]:
        """When each reply reached the fake Slack, by response_url path."""
        answer = requests.get(self.slack_url + "/_fake/responses?full=1", timeout=30)
        return {r["_path"]: float(r["_received_at"]) for r in answer.json()["responses"]}

    def wait(self, timeout: float = 120.0) -> float:
        started = time.monotonic()
        while self.count() < self.expected and time.monotonic() - started < timeout:
            time.sleep(0.05)
        return time.monotonic() - started


def measure(
    base: str,
    replies: Replies,
    *,
    rounds: int,
    concurrency: int,
    settle: bool,
    answers: bool,
    label: str,
    sent: dict[str, float],
) -> list[float]:
    """Seconds to the HTTP answer for each request, after one warm-up burst.

    Records in `sent` when each measured request was sent (wall clock, by its
    response_url path), so its reply can be timed when it arrives.
    """
    address = urlsplit(base)
    samples: list[float] = []
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for round_number in range(rounds + 1):
            if settle and answers:
                replies.wait()
            barrier = threading.Barrier(concurrency)

            def one(i: int, tag: int = round_number, barrier: threading.Barrier = barrier) -> float:
                path = f"/response/{label}-{tag}-{i}"
                body = slash_command_body(
                    text="show acme-eu",
                    user_id=VIEWER,
                    response_url=replies.slack_url + path,
                )
                # Signed and encoded before the start: timed from the moment it is sent
                # (the 50 threads of this one process would otherwise queue for its GIL
                # while building requests, and that queue would be counted as the bot's).
                headers = signed_headers(SECRET, body)
                connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
                barrier.wait()
                try:
                    started = time.perf_counter()
                    if tag:  # the first burst warms up connections, imports and caches
                        sent[path] = time.time()
                    connection.request("POST", "/slack/events", body=body.encode(), headers=headers)
                    response = connection.getresponse()
                    response.read()
                    elapsed = time.perf_counter() - started
                finally:
                    connection.close()
                if response.status != 200:
                    raise SystemExit(f"HTTP {response.status} from {base}")
                return elapsed

            timings = list(pool.map(one, range(concurrency)))
            if answers:
                replies.expected += concurrency
            if round_number:  # the first burst warms up connections, imports and caches
                samples.extend(timings)
    return samples


def percentile(samples: list[float], p: int) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[p - 1]


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def shapes(args: argparse.Namespace) -> tuple[tuple[str, bool], ...]:
    return tuple(s for s in SHAPES if args.shape in (None, s[0]))


def one_run(args: argparse.Namespace, base_env: dict[str, str], number: int) -> bool:
    """Both apps, both shapes, one fresh database; prints the run's lines; True if met."""
    scratch = tempfile.mkdtemp(prefix="ack-latency-")
    database = (
        f"sqlite:///{scratch}/bench.sqlite3" if args.sqlite else create_database("credits_bench_")
    )
    load_before = loadavg()
    simulator, sim_url = start_helper(
        ["-m", "bot", "simulator", "--port", "0", "--rate-limit", "0"], base_env
    )
    slack, slack_url = start_helper(["-m", "tests.fakes.slack_api"], base_env)
    env = {
        **base_env,
        "SLACK_BOT_TOKEN": "xoxb-bench",
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": slack_url + "/api/",
        "SENDGRID_API_USER": DEMO_API_USER,
        # The simulator delays every call by --latency-ms (a fault chosen by the key).
        "SENDGRID_API_KEY": f"{DEMO_API_KEY}~latency:{args.latency_ms}",
        "SENDGRID_API_URL": sim_url + "/apiv2/",
        "SENDGRID_RATE_LIMIT": str(args.rate_limit),
        "CREDITS_VIEWERS": VIEWER,
        "LOG_LEVEL": "WARNING",
        # A database this run creates (so the budget in it starts empty), and drops.
        "DATABASE_URL": database,
    }
    replies = Replies(slack_url)
    results: dict[tuple[str, str], list[float]] = {}
    sent: dict[str, dict[str, float]] = {shape: {} for shape, _ in SHAPES}
    arrivals: dict[str, float] = {}
    delivered = ""
    try:
        for name, factory, answers in APPS:
            process, base = start_gunicorn(factory, env, args.workers)
            try:
                for shape, settle in shapes(args):
                    results[name, shape] = measure(
                        base,
                        replies,
                        rounds=args.rounds,
                        concurrency=args.concurrency,
                        settle=settle,
                        answers=answers,
                        label=shape,
                        sent=sent[shape] if answers else {},
                    )
                if answers:
                    waited = replies.wait()
                    arrivals = replies.arrivals()
                    delivered = (
                        f"replies at the response_url: {replies.count()}/{replies.expected} "
                        f"(the last {waited:.1f} s after the last ack)"
                    )
            finally:
                process.terminate()
                process.wait(timeout=20)
    finally:
        for helper in (simulator, slack):
            helper.terminate()
            helper.wait(timeout=10)
        shutil.rmtree(scratch, ignore_errors=True)
        if not args.sqlite:
            drop_database(database)

    latency = args.latency_ms / 1000
    print(
        f"run {number}: bursts of {args.concurrency} concurrent signed /credits show, "
        f"{args.rounds} bursts (+1 warm-up) per shape, SendGrid simulator {args.latency_ms} ms, "
        f"rate limit {args.rate_limit}/min, {'SQLite' if args.sqlite else 'PostgreSQL'}, "
        f"gunicorn: {args.workers} worker(s) × {GUNICORN_OPTIONS['threads']} threads each, "
        f"{len(os.sched_getaffinity(0))} CPUs; "
        f"loadavg {load_before} → {loadavg()}"
    )
    print(f"  {'':28}{'p50':>9}{'p99':>9}{'max':>9}")
    verdict = True
    for shape, _ in shapes(args):
        bot, bare = results["credits-bot", shape], results["bare Bolt ack", shape]
        for name, samples in (("ack credits-bot", bot), ("ack bare Bolt", bare)):
            print(f"  {shape:10}{name:18}{_row(samples)}")
        p50_ratio = percentile(bot, 50) / percentile(bare, 50)
        p99_ratio = percentile(bot, 99) / percentile(bare, 99)
        print(f"  {shape:10}{'ack ratio bot/bare':18}{p50_ratio:>9.2f}{p99_ratio:>9.2f}")
        times = [arrivals[p] - t for p, t in sent[shape].items() if p in arrivals]
        if times:
            print(f"  {shape:10}{'reply credits-bot':18}{_row(times)}")
            over = (percentile(times, 50) - latency, percentile(times, 99) - latency)
            extra = f"{over[0] * 1000:>7.1f}ms{over[1] * 1000:>7.1f}ms"
            print(f"  {shape:10}{'reply − SendGrid':18}{extra}")
        if shape == "burst":
            verdict = (
                p99_ratio <= 1.5
                and len(times) == len(sent[shape])
                and percentile(times, 50) <= latency + 0.100
                and percentile(times, 99) <= latency + 0.300
            )
    print(f"  {delivered}")
    print(
        "  targets (burst): ack p99 ≤ 1.5 × bare Bolt, reply p50 ≤ SendGrid + 100 ms, "
        f"reply p99 ≤ SendGrid + 300 ms: {'met' if verdict else 'NOT met'}"
    )
    return verdict


def _row(samples: list[float]) -> str:
    p50, p99 = percentile(samples, 50), percentile(samples, 99)
    return f"{p50 * 1000:>7.1f}ms{p99 * 1000:>7.1f}ms{max(samples) * 1000:>7.1f}ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--latency-ms", type=int, default=500)
    parser.add_argument("--rate-limit", type=int, default=600, help="SENDGRID_RATE_LIMIT")
    parser.add_argument(
        "--server",
        default=os.environ.get(
            "TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
        help="a PostgreSQL server; each run creates its own database there and drops it",
    )
    parser.add_argument(
        "--shape", choices=[name for name, _ in SHAPES], help="one load shape only (default: both)"
    )
    parser.add_argument("--sqlite", action="store_true", help="a scratch SQLite file instead")
    parser.add_argument(
        "--workers",
        type=int,
        default=serve_workers(Settings()),
        help="gunicorn workers for both apps (default: what `credits-bot serve` uses here)",
    )
    args = parser.parse_args()
    os.environ["TEST_DATABASE_URL"] = normalize_database_url(args.server)
    base_env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLACK_", "SENDGRID_", "CREDITS_", "DATABASE_"))
    }
    base_env["PYTHONPATH"] = str(ROOT)
    met = [one_run(args, base_env, number) for number in range(1, args.runs + 1)]
    print(f"targets met in {sum(met)} of {len(met)} runs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
