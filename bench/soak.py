"""A fleet soak: 2 `serve` + 1 `clock` on one SendGrid budget, with an instance killed mid-run.

Mixed operations (shows, direct adds, operator requests, approvals, pending/audit) paced
over --minutes against two `credits-bot serve` processes (gunicorn) and a `credits-bot
clock` sweeping every minute, all on one PostgreSQL database and one SendGrid account
whose limit the simulator enforces (HTTP 429 past it, in any 60-second window). 1% of
SendGrid calls fail (503 or a dropped connection). Midway, one `serve` is SIGKILLed and
restarted. Every direct add carries a unique amount, so a write sent twice is visible.

Prints: acks and replies (p50/p99), SendGrid requests in the busiest 60 s against the
budget, 429s, duplicate writes, and the books: every change ends applied / failed /
unknown (none left "intent"/"sent"), and SendGrid's applied writes lie between the
changes recorded applied and applied + unknown.

    python bench/soak.py [--minutes 4] [--rate 3] [--latency 0] [--server postgresql://…/postgres]

Loopback only; bounded by --minutes; it creates its own database and drops it at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode

import requests
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.config import normalize_database_url  # noqa: E402
from bot.simulator import DEMO_API_KEY, DEMO_API_USER  # noqa: E402
from tests.fakes.processes import ServeProcess, clean_env  # noqa: E402
from tests.fakes.slack_requests import post_signed, slash_command_body  # noqa: E402
from tests.pg import create_database  # noqa: E402

SECRET = "soak-signing-secret"
ADMIN, OPERATOR, APPROVER, VIEWER = "U0SOAKADM", "U0SOAKOPS", "U0SOAKAPR", "U0SOAKVWR"


def helper(args: list[str]) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert process.stdout is not None
    url = next(w for w in process.stdout.readline().split() if w.startswith("http://"))
    return process, url.removesuffix("/apiv2/").rstrip("/")


def rss_mb(server: ServeProcess) -> float:
    """Resident memory of the server's process group (gunicorn master and worker)."""
    pids = [server.process.pid]
    children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    total = 0.0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) / 1024
    return total


def click_body(user: str, request_id: int, response_url: str) -> str:
    payload = {
        "type": "block_actions",
        "user": {"id": user, "team_id": "T0EXAMPLE"},
        "api_app_id": "A0CREDITS",
        "team": {"id": "T0EXAMPLE"},
        "container": {"type": "message", "message_ts": "1.1", "channel_id": "C0APPROVE"},
        "channel": {"id": "C0APPROVE"},
        "trigger_id": "1.2.3",
        "response_url": response_url,
        "actions": [
            {
                "action_id": "approval_approve",
                "block_id": f"approval-{request_id}",
                "value": str(request_id),
                "type": "button",
                "action_ts": "1.1",
            }
        ],
    }
    return urlencode({"payload": json.dumps(payload)})


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=4.0, help="how long to send (default 4)")
    parser.add_argument("--rate", type=float, default=3.0, help="operations per second (3)")
    parser.add_argument("--limit", type=int, default=600, help="SendGrid requests/minute (600)")
    parser.add_argument(
        "--latency",
        type=int,
        default=0,
        help="ms per SendGrid call (0)",
    )
    parser.add_argument(
        "--server",
        default=os.environ.get(
            "TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
        help="a PostgreSQL server; the soak creates its own database there and drops it",
    )
    args = parser.parse_args()
    os.environ["TEST_DATABASE_URL"] = normalize_database_url(args.server)
    database = create_database("credits_soak_")
    args.load_before = loadavg()

    simulator, sim_url = helper(
        [
            "-m",
            "bot",
            "simulator",
            "--port",
            "0",
            "--rate-limit",
            str(args.limit),
            "--generate",
            "200",
        ]
    )
    slack, slack_url = helper(["-m", "tests.fakes.slack_api"])
    faults: list[dict[str, object]] = [
        {"kind": "status", "arg": "503", "probability": 0.005},
        {"kind": "drop", "probability": 0.005},
    ]
    if args.latency:
        faults.append({"kind": "latency", "arg": str(args.latency)})
    for fault in faults:
        requests.post(sim_url + "/_sim/faults", json=fault, timeout=5).raise_for_status()
    env = clean_env(
        SLACK_BOT_TOKEN="xoxb-soak",
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_API_URL=slack_url + "/api/",
        SENDGRID_API_USER=DEMO_API_USER,
        SENDGRID_API_KEY=DEMO_API_KEY,
        SENDGRID_API_URL=sim_url + "/apiv2/",
        SENDGRID_RATE_LIMIT=str(args.limit),
        DATABASE_URL=database,
        CREDITS_ADMINS=ADMIN,
        CREDITS_OPERATORS=OPERATOR,
        CREDITS_APPROVERS=APPROVER,
        CREDITS_VIEWERS=VIEWER,
        CREDITS_APPROVAL_CHANNEL="C0APPROVE",
        CREDITS_ALERT_CHANNEL="C0ALERTS",
        CREDITS_ALERT_SCHEDULE="* * * * *",
        LOG_LEVEL="ERROR",
    )
    servers = [ServeProcess(env), ServeProcess(env)]
    clock = subprocess.Popen(
        [sys.executable, "-m", "bot", "clock"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    issued: Counter[str] = Counter()
    ack_ms: list[float] = []
    sent_at: dict[str, float] = {}
    lock = threading.Lock()
    request_ids: list[int] = []
    kinds: dict[str, str] = {}
    rng = random.Random(11)
    killed_at = restarted_at = 0.0
    try:
        for server in servers:
            server.wait_healthy()

        def send(index: int) -> None:
            server = servers[index % 2]
            roll = rng.random()
            user = f"sub-{rng.randrange(200):06d}"
            name = f"op-{index}"
            url = f"{slack_url}/response/{name}"
            if roll < 0.45:
                kind, text_, who = "show", f"show {user}", VIEWER
            elif roll < 0.70:
                kind, text_, who = "direct add", f"add {user} {index + 1}", ADMIN
            elif roll < 0.85:
                kind, text_, who = "request", f"add {user} {rng.randint(1, 50)}", OPERATOR
            elif roll < 0.95 and request_ids:
                with lock:
                    request_id = rng.choice(request_ids)
                kind, text_, who = "approve click", "", APPROVER
            else:
                kind, text_, who = "pending/audit", rng.choice(["pending", "audit"]), VIEWER
            body = (
                click_body(APPROVER, request_id, url)
                if kind == "approve click"
                else slash_command_body(text=text_, user_id=who, response_url=url)
            )
            with lock:
                kinds[name] = kind
                sent_at[name] = time.time()
            started = time.perf_counter()
            try:
                response = post_signed(server.url + "/slack/events", SECRET, body, timeout=30)
                status = response.status_code
            except requests.ConnectionError:
                status = 0  # the instance was killed under us
            with lock:
                issued[f"{kind} {status}"] += 1
                if status == 200:
                    ack_ms.append((time.perf_counter() - started) * 1000)

        def harvest_request_ids() -> None:
            answer = requests.get(slack_url + "/_fake/responses?full=1", timeout=30).json()
            found = {
                int(m)
                for r in answer["responses"]
                for m in re.findall(r"request \*#(\d+)\*", r.get("text", ""))
            }
            with lock:
                request_ids[:] = sorted(found)

        started = time.monotonic()
        total = int(args.minutes * 60 * args.rate)
        kill_index = total // 2
        with ThreadPoolExecutor(max_workers=32) as pool:
            for index in range(total):
                due = started + index / args.rate
                time.sleep(max(0.0, due - time.monotonic()))
                if index == kill_index:
                    victim = servers[0]
                    killed_at = time.time()
                    victim.kill()
                    servers[0] = ServeProcess(env)
                    servers[0].wait_healthy()
                    restarted_at = time.time()
                if index % 100 == 0:
                    pool.submit(harvest_request_ids)
                pool.submit(send, index)
        settle_deadline = time.monotonic() + 120
        while time.monotonic() < settle_deadline:
            count = requests.get(slack_url + "/_fake/responses", timeout=10).json()["count"]
            if count >= sum(c for k, c in issued.items() if k.endswith(" 200")) - 5:
                break
            time.sleep(1)
        time.sleep(20)  # the clock's recovery of the killed instance's changes
        replies = requests.get(slack_url + "/_fake/responses?full=1", timeout=60).json()
        calls = requests.get(sim_url + "/_sim/calls", timeout=60).json()
    finally:
        for server in servers:
            server.stop()
        os.killpg(clock.pid, signal.SIGTERM)
        clock.wait(timeout=30)
        for process in (simulator, slack):
            process.terminate()
            process.wait(timeout=10)

    report(
        args=args,
        issued=issued,
        ack_ms=ack_ms,
        replies=replies,
        calls=calls,
        database=database,
        sent_at=sent_at,
        kinds=kinds,
        killed=(killed_at, restarted_at),
    )
    return 0


def busiest_window(times: list[float], window: float = 60.0) -> int:
    times = sorted(times)
    most, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= window:
            start += 1
        most = max(most, end - start + 1)
    return most


def report(*, args, issued, ack_ms, replies, calls, database, sent_at, kinds, killed) -> None:
    reply_ms = [
        (r["_received_at"] - sent_at[r["_path"].rsplit("/", 1)[-1]]) * 1000
        for r in replies["responses"]
        if "_received_at" in r and r.get("_path", "").rsplit("/", 1)[-1] in sent_at
    ]
    engine = create_engine(database)
    with engine.connect() as connection:
        states = dict(
            connection.execute(text("SELECT state, count(*) FROM credit_changes GROUP BY 1")).all()
        )
        orphaned = connection.execute(
            text("SELECT count(*) FROM audit_events WHERE action = 'orphaned'")
        ).scalar_one()
    engine.dispose()
    writes = [c for c in calls if c["applied"]]
    amounts = Counter(
        (c["params"].get("user"), c["params"].get("credits"))
        for c in writes
        if c["params"].get("task") == "increment"
    )
    duplicates = sum(n - 1 for n in amounts.values() if n > 1)
    limited = sum(1 for c in calls if c["outcome"] == "rate-limited")
    busiest = busiest_window([c["at"] for c in calls])
    applied, unknown = states.get("applied", 0), states.get("unknown", 0)
    unfinished = states.get("intent", 0) + states.get("sent", 0)
    print(
        f"soak: {args.minutes:g} min at {args.rate:g} operations/s on 2 serve + 1 clock "
        f"(PostgreSQL), SendGrid limit {args.limit}/min shared, {args.latency} ms a call, "
        f"1% SendGrid faults; one serve "
        f"SIGKILLed at {killed[0] - min(sent_at.values()):.0f} s and back "
        f"{killed[1] - killed[0]:.1f} s later; loadavg {args.load_before} → {loadavg()}"
    )
    print(f"  issued (kind, HTTP status): {dict(sorted(issued.items()))}")
    q = statistics.quantiles(ack_ms, n=100)
    r = statistics.quantiles(reply_ms, n=100) if len(reply_ms) > 1 else [0.0] * 99
    print(
        f"  acks: p50 {q[49]:.0f} ms, p99 {q[98]:.0f} ms; replies ({len(reply_ms):,}): "
        f"p50 {r[49]:.0f} ms, p99 {r[98]:.0f} ms"
    )
    print(
        f"  SendGrid calls: {len(calls):,}; by outcome {dict(Counter(c['outcome'] for c in calls))}"
    )
    print(
        f"  changes by state: {dict(sorted(states.items()))}; orphaned after the kill: {orphaned}"
    )
    print(
        f"  books: unfinished changes {unfinished}; writes SendGrid applied {len(writes)} within "
        f"[applied {applied}, applied + unknown {applied + unknown}]: "
        f"{'yes' if applied <= len(writes) <= applied + unknown else 'NO'}"
    )
    print(f"  duplicate writes: {duplicates}")
    print(
        f"  most SendGrid requests in any 60 s: {busiest} (SENDGRID_RATE_LIMIT {args.limit}); "
        f"429s: {limited}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
