"""How fast does Slack get its answer while SendGrid is slow?

Bursts of 50 concurrent signed `/credits show` commands against credits-bot
under gunicorn (the Procfile's `web:` factory), with the SendGrid simulator
answering every call after 500 ms; then the same against a bare Bolt app that
only acks, under the same gunicorn settings, in the same run. Prints p50/p99
time to the HTTP answer for both, and their ratio, for two load shapes:

- burst: each burst of 50 starts once the previous burst's replies have all
  reached the response_url (the issue's scenario, repeated for percentiles);
- sustained: bursts back to back, so acks overlap the previous bursts'
  SendGrid work and replies (a harsher shape, reported alongside).

    python bench/ack_latency.py [--rounds 6] [--concurrency 50] [--latency-ms 500]

Target (issue 3): burst p99 < 100 ms and p99 ratio ≤ 1.5.
The simulator and the fake Slack run as separate processes, so the bot's
post-ack traffic does not compete with this process's timing threads.
Loopback only; bounded: 2 × (rounds + 1) × concurrency requests per app.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.simulator import DEMO_API_KEY, DEMO_API_USER  # noqa: E402
from tests.fakes.slack_requests import post_signed, slash_command_body  # noqa: E402

SECRET = "bench-signing-secret"
VIEWER = "U0BENCHVW"
GUNICORN = ["--worker-class", "gthread", "--workers", "1", "--threads", "32", "--timeout", "60"]
APPS = (
    ("credits-bot", "bot.transports.slack.wsgi:application_from_environment()", True),
    ("bare Bolt ack", "bench.bare_bolt_app:application()", False),
)
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


def start_gunicorn(factory: str, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", *GUNICORN, "--bind", f"127.0.0.1:{port}", factory],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            requests.get(base + "/healthz", timeout=1)  # any answer: gunicorn is up
            return process, base
        except requests.ConnectionError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit(f"{factory} did not start")


class Replies:
    """Counts the replies the fake Slack has received at response_urls."""

    def __init__(self, slack_url: str) -> None:
        self.slack_url = slack_url
        self.expected = 0

    def count(self) -> int:
        answer = requests.get(self.slack_url + "/_fake/responses", timeout=5)
        return int(answer.json()["count"])

    def wait(self, timeout: float = 120.0) -> float:
        started = time.monotonic()
        while self.count() < self.expected and time.monotonic() - started < timeout:
            time.sleep(0.05)
        return time.monotonic() - started


def measure(
    base: str, replies: Replies, *, rounds: int, concurrency: int, settle: bool, answers: bool
) -> list[float]:
    """Seconds to the HTTP answer for each request, after one warm-up burst."""
    url = base + "/slack/events"
    samples: list[float] = []
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for round_number in range(rounds + 1):
            if settle and answers:
                replies.wait()
            barrier = threading.Barrier(concurrency)

            def one(i: int, tag: int = round_number, barrier: threading.Barrier = barrier) -> float:
                body = slash_command_body(
                    text="show acme-eu",
                    user_id=VIEWER,
                    response_url=f"{replies.slack_url}/response/{tag}-{i}",
                )
                barrier.wait()
                started = time.perf_counter()
                response = post_signed(url, SECRET, body, timeout=30)
                elapsed = time.perf_counter() - started
                if response.status_code != 200:
                    raise SystemExit(f"HTTP {response.status_code}: {response.text[:200]}")
                return elapsed

            timings = list(pool.map(one, range(concurrency)))
            if answers:
                replies.expected += concurrency
            if round_number:  # the first burst warms up connections, imports and caches
                samples.extend(timings)
    return samples


def percentile(samples: list[float], p: int) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[p - 1]


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--latency-ms", type=int, default=500)
    args = parser.parse_args()

    scratch = tempfile.mkdtemp(prefix="ack-latency-")
    base_env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLACK_", "SENDGRID_", "CREDITS_", "DATABASE_"))
    }
    base_env["PYTHONPATH"] = str(ROOT)
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
        # The client's rate limiter is not what is measured here; let replies flow.
        "SENDGRID_RATE_LIMIT": "60000",
        "CREDITS_VIEWERS": VIEWER,
        "LOG_LEVEL": "WARNING",
        "DATABASE_URL": f"sqlite:///{scratch}/bench.sqlite3",
    }
    replies = Replies(slack_url)
    results: dict[tuple[str, str], list[float]] = {}
    delivered = ""
    try:
        for name, factory, answers in APPS:
            process, base = start_gunicorn(factory, env)
            try:
                for shape, settle in SHAPES:
                    results[name, shape] = measure(
                        base,
                        replies,
                        rounds=args.rounds,
                        concurrency=args.concurrency,
                        settle=settle,
                        answers=answers,
                    )
                if answers:
                    waited = replies.wait()
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

    print(
        f"ack latency: bursts of {args.concurrency} concurrent signed /credits commands, "
        f"{args.rounds} bursts (+1 warm-up) per shape, SendGrid simulator {args.latency_ms} ms slow"
    )
    print(f"{'':26}{'p50':>9}{'p99':>9}{'max':>9}")
    verdict = True
    for shape, _ in SHAPES:
        bot, bare = results["credits-bot", shape], results["bare Bolt ack", shape]
        for name, samples in (("credits-bot", bot), ("bare Bolt ack", bare)):
            p50, p99 = percentile(samples, 50), percentile(samples, 99)
            print(
                f"{shape:10}{name:16}{p50 * 1000:>7.1f}ms{p99 * 1000:>7.1f}ms"
                f"{max(samples) * 1000:>7.1f}ms"
            )
        p50_ratio = percentile(bot, 50) / percentile(bare, 50)
        p99_ratio = percentile(bot, 99) / percentile(bare, 99)
        print(f"{shape:10}{'ratio bot/bare':16}{p50_ratio:>9.2f}{p99_ratio:>9.2f}")
        if shape == "burst":
            verdict = percentile(bot, 99) < 0.100 and p99_ratio <= 1.5
    print(delivered)
    print(f"target (burst) p99 < 100 ms and p99 ratio ≤ 1.5: {'met' if verdict else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
