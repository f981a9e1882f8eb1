"""How fast are the type-ahead and the App Home with many subusers?

The real WSGI app (wsgiref, in this process) on a scratch SQLite database seeded
as a sweep of `--subusers` accounts leaves it (one snapshot each, 2% low, 1%
exhausted, a burn rate stored for the low ones), the fake Slack Web API, and the
SendGrid simulator (which neither surface calls). Times, over `--requests`
sequential requests each:

- type-ahead: a signed `block_suggestion` POST (queries of 1–4 letters) until
  its HTTP answer with the options (Slack's budget for it is 3 s; the issue's
  target is < 200 ms);
- Home: a signed `app_home_opened` POST until the fake Slack has received the
  `views.publish` (target < 1 s);
- baseline, same run: `GET /healthz` (the WSGI server and HTTP round trip alone);
- and the ranking alone (`rank_subusers`) on the cached list, in microseconds.

    python bench/surfaces.py [--subusers 10000] [--requests 200]

Loopback only; sequential (one request in flight), so figures are latencies,
not throughput. Prints load average and CPU count alongside.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import timeit
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.adapters.store import SqlStore  # noqa: E402
from bot.adapters.store.alerts import SqlAlertStore  # noqa: E402
from bot.commands.home import rank_subusers  # noqa: E402
from bot.config import load_settings  # noqa: E402
from bot.domain.alerts import AlertState, Usage  # noqa: E402
from bot.domain.credits import Balance  # noqa: E402
from bot.simulator import DEMO_API_KEY, DEMO_API_USER, SimulatorServer, sample_state  # noqa: E402
from bot.transports.slack.wsgi import build_wsgi_app  # noqa: E402
from tests.fakes.slack_api import FakeSlack  # noqa: E402
from tests.fakes.slack_requests import post_signed, signed_headers  # noqa: E402
from tests.fakes.wsgi_server import serving  # noqa: E402

SECRET = "bench-signing-secret-0123456789"
VIEWER = "U0VIEWER1"
QUERIES = ["a", "ac", "acm", "acme", "cu", "cust", "x", "42", "9", "zz"]


def seed(database: Path, subusers: int) -> None:
    store = SqlStore.from_url(f"sqlite:///{database}")
    alerts = SqlAlertStore(store)
    now = datetime.now(UTC)
    balances = []
    states = []
    for i in range(subusers):
        name = f"customer-{i:06d}" if i % 3 else f"acme-{i:06d}"
        if i % 100 == 0:
            remaining = 0
        elif i % 50 == 1:
            remaining = 100 + i % 900
            states.append(AlertState(name, usage=Usage(remaining, now, 5.0 + i % 40)))
        else:
            remaining = 50_000 + i
        balances.append((name, Balance(False, remaining)))
    alerts.add_snapshots(balances, at=now - timedelta(minutes=5))
    alerts.save_states(states)
    store.close()


def percentile(samples: list[float], p: int) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def row(name: str, samples: list[float]) -> str:
    ms = [s * 1000 for s in samples]
    return (
        f"{name:<34} p50 {statistics.median(ms):7.1f} ms  p95 {percentile(ms, 95):7.1f} ms  "
        f"max {max(ms):7.1f} ms  (n={len(ms)})"
    )


def suggestion_body(query: str) -> str:
    payload = {
        "type": "block_suggestion",
        "user": {"id": VIEWER},
        "action_id": "user_select",
        "block_id": "user",
        "value": query,
        "team": {"id": "T0EXAMPLE"},
        "api_app_id": "A0CREDITS",
        "token": "x",
        "view": {"id": "V0", "type": "modal", "callback_id": "credits_request_form"},
    }
    return urlencode({"payload": json.dumps(payload)})


def home_body(n: int) -> str:
    return json.dumps(
        {
            "type": "event_callback",
            "event_id": f"EvBench{n}",
            "event_time": int(time.time()),
            "team_id": "T0EXAMPLE",
            "api_app_id": "A0CREDITS",
            "token": "x",
            "event": {"type": "app_home_opened", "user": VIEWER, "tab": "home", "channel": "D0"},
        }
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subusers", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="home-bench-") as scratch:
        database = Path(scratch) / "bench.sqlite3"
        seed(database, args.subusers)
        simulator = SimulatorServer(sample_state())
        simulator.start()
        try:
            with FakeSlack().running() as slack:
                settings = load_settings(
                    {
                        "SLACK_BOT_TOKEN": "xoxb-bench",
                        "SLACK_SIGNING_SECRET": SECRET,
                        "SLACK_API_URL": slack.api_url,
                        "SENDGRID_API_USER": DEMO_API_USER,
                        "SENDGRID_API_KEY": DEMO_API_KEY,
                        "SENDGRID_API_URL": simulator.url,
                        "DATABASE_URL": f"sqlite:///{database}",
                        "CREDITS_VIEWERS": VIEWER,
                    }
                )
                with serving(build_wsgi_app(settings)) as url:
                    return run(args, url, slack, database)
        finally:
            simulator.stop()


def run(args: argparse.Namespace, url: str, slack: FakeSlack, database: Path) -> int:
    events = url + "/slack/events"
    session = requests.Session()
    started = time.perf_counter()
    suggest(events, "a")  # the first reads the name list (then cached for a minute)
    cold = time.perf_counter() - started
    health, typeahead, home = [], [], []
    for n in range(args.requests):
        started = time.perf_counter()
        session.get(url + "/healthz", timeout=10).raise_for_status()
        health.append(time.perf_counter() - started)
        started = time.perf_counter()
        options = suggest(events, QUERIES[n % len(QUERIES)])
        typeahead.append(time.perf_counter() - started)
        assert len(options) <= 100
    for n in range(max(1, args.requests // 4)):
        before = len(slack.state.calls_to("views.publish"))
        body = home_body(n)
        headers = {**signed_headers(SECRET, body), "Content-Type": "application/json"}
        started = time.perf_counter()
        requests.post(events, data=body.encode(), headers=headers, timeout=10).raise_for_status()
        with slack.state.condition:
            slack.state.condition.wait_for(
                lambda before=before: (
                    len([c for c in slack.state.calls if c.method == "views.publish"]) > before
                ),
                10,
            )
        home.append(time.perf_counter() - started)
    names = sorted(f"customer-{i:06d}" for i in range(args.subusers))
    repeat = 200
    ranking_us = {
        q: min(timeit.repeat(lambda q=q: rank_subusers(names, q), number=repeat, repeat=3))
        / repeat
        * 1e6
        for q in ("c", "cust", "0042", "zz")
    }
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(
        f"{args.subusers:,} subusers (SQLite, {database.stat().st_size // 1024} KiB), "
        f"load average {load}, {os.cpu_count()} CPUs, sequential requests on loopback"
    )
    print(row("baseline GET /healthz", health))
    print(row("type-ahead block_suggestion", typeahead))
    print(f"type-ahead with the name list read (once a minute): {cold * 1000:.1f} ms")
    print(row("App Home open → views.publish", home))
    print(
        "ranking alone on the cached list: "
        + ", ".join(f"{q!r} {us:.0f} µs" for q, us in ranking_us.items())
    )
    return 0


def suggest(events: str, query: str) -> list[dict[str, object]]:
    response = post_signed(events, SECRET, suggestion_body(query))
    response.raise_for_status()
    options: list[dict[str, object]] = response.json()["options"]
    return options


if __name__ == "__main__":
    sys.exit(main())
