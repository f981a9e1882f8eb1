"""A bounded soak: mixed commands and clicks on two instances sharing PostgreSQL.

5,000 operations (shows, direct adds, operator requests, approvals, pending/audit)
from 16 threads, alternating between two `credits-bot serve` processes (gunicorn)
on one PostgreSQL database, while the simulator injects a fault into 1% of calls
(503s and dropped connections). Reports throughput, errors by class, p50/p99 time
to the HTTP answer, RSS growth of both servers, and checks that the books balance:
- every change issued has its audit row (direct: changed/failed/unknown; requests:
  requested; approvals: executed/failed/unknown or a refusal);
- SendGrid applied exactly as many writes as the audit trail says succeeded.

    python bench/soak.py [--operations 5000] [--server postgresql://postgres@127.0.0.1/postgres]

Loopback only; bounded by --operations; it creates its own database and drops it at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
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


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--operations", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=16)
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

    simulator, sim_url = helper(
        ["-m", "bot", "simulator", "--port", "0", "--rate-limit", "0", "--generate", "200"]
    )
    slack, slack_url = helper(["-m", "tests.fakes.slack_api"])
    for fault in (
        {"kind": "status", "arg": "503", "probability": 0.005},
        {"kind": "drop", "probability": 0.005},
    ):
        requests.post(sim_url + "/_sim/faults", json=fault, timeout=5).raise_for_status()
    env = clean_env(
        SLACK_BOT_TOKEN="xoxb-soak",
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_API_URL=slack_url + "/api/",
        SENDGRID_API_USER=DEMO_API_USER,
        SENDGRID_API_KEY=DEMO_API_KEY,
        SENDGRID_API_URL=sim_url + "/apiv2/",
        SENDGRID_RATE_LIMIT="60000",
        DATABASE_URL=database,
        CREDITS_ADMINS=ADMIN,
        CREDITS_OPERATORS=OPERATOR,
        CREDITS_APPROVERS=APPROVER,
        CREDITS_VIEWERS=VIEWER,
        CREDITS_APPROVAL_CHANNEL="C0APPROVE",
        LOG_LEVEL="ERROR",
    )
    servers = [ServeProcess(env), ServeProcess(env)]
    issued: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    lock = threading.Lock()
    request_ids: list[int] = []
    kinds: dict[str, str] = {}
    rng = random.Random(11)
    try:
        for server in servers:
            server.wait_healthy()
        rss_before = [rss_mb(s) for s in servers]

        def send(index: int) -> None:
            server = servers[index % 2]
            roll = rng.random()
            user = f"sub-{rng.randrange(200):06d}"
            name = f"{slack_url}/response/op-{index}"
            if roll < 0.45:
                kind, body = (
                    "show",
                    slash_command_body(text=f"show {user}", user_id=VIEWER, response_url=name),
                )
            elif roll < 0.70:
                kind, body = (
                    "direct add",
                    slash_command_body(
                        text=f"add {user} {rng.randint(1, 50)}", user_id=ADMIN, response_url=name
                    ),
                )
            elif roll < 0.85:
                kind, body = (
                    "request",
                    slash_command_body(
                        text=f"add {user} {rng.randint(1, 50)}", user_id=OPERATOR, response_url=name
                    ),
                )
            elif roll < 0.95 and request_ids:
                with lock:
                    request_id = rng.choice(request_ids)
                kind, body = "approve click", click_body(APPROVER, request_id, name)
            else:
                kind, body = (
                    "pending/audit",
                    slash_command_body(
                        text=rng.choice(["pending", "audit"]), user_id=VIEWER, response_url=name
                    ),
                )
            with lock:
                kinds[f"op-{index}"] = kind
            started = time.perf_counter()
            response = post_signed(server.url + "/slack/events", SECRET, body, timeout=30)
            elapsed = time.perf_counter() - started
            with lock:
                issued[kind] += 1
                statuses[response.status_code] += 1
                latencies.append(elapsed)

        def harvest_request_ids() -> None:
            answer = requests.get(slack_url + "/_fake/responses?full=1", timeout=30).json()
            found = {
                int(m)
                for r in answer["responses"]
                for m in re.findall(r"request \*#(\d+)\*", r.get("text", ""))
            }
            with lock:
                request_ids[:] = sorted(found)

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.threads) as pool:
            for batch in range(0, args.operations, 500):
                list(pool.map(send, range(batch, min(batch + 500, args.operations))))
                harvest_request_ids()
        sent_seconds = time.perf_counter() - started
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            count = requests.get(slack_url + "/_fake/responses", timeout=10).json()["count"]
            if count >= args.operations:
                break
            time.sleep(0.5)
        settle_seconds = time.perf_counter() - started
        rss_after = [rss_mb(s) for s in servers]
        replies = requests.get(slack_url + "/_fake/responses?full=1", timeout=60).json()
        sim_stats = requests.get(sim_url + "/_sim/stats", timeout=60).json()
    finally:
        for server in servers:
            server.stop()
        for process in (simulator, slack):
            process.terminate()
            process.wait(timeout=10)

    report(
        args=args,
        issued=issued,
        statuses=statuses,
        latencies=latencies,
        replies=replies,
        sim_stats=sim_stats,
        database=database,
        sent_seconds=sent_seconds,
        settle_seconds=settle_seconds,
        rss_before=rss_before,
        rss_after=rss_after,
        kinds=kinds,
    )
    return 0


MARKERS = (
    ("unknown outcome", "may or may not"),
    ("SendGrid unavailable", "could not be reached"),
    ("unreadable answer", "could not read"),
    ("already handled", "already handled"),
    ("no credit limit", "has no credit limit"),
    ("approved but not applied", "did not apply it"),
    ("verify", "verify the balance"),
)


def report(
    *,
    args,
    issued,
    statuses,
    latencies,
    replies,
    sim_stats,
    database,
    sent_seconds,
    settle_seconds,
    rss_before,
    rss_after,
    kinds,
) -> None:
    classes: Counter[str] = Counter()
    refused_requests = 0
    for reply in replies["responses"]:
        said = reply.get("text", "")
        kind = kinds.get(reply.get("_path", "").rsplit("/", 1)[-1], "?")
        for label, marker in MARKERS:
            if marker in said:
                classes[f"{kind}: {label}"] += 1
        if kind == "request" and "Sent for approval" not in said and "Recorded as" not in said:
            refused_requests += 1
    engine = create_engine(database)
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT action, request_id IS NULL AS direct, outcome = 'ok' AS ok, count(*) "
                "FROM audit_events GROUP BY 1, 2, 3"
            )
        ).all()
    engine.dispose()
    audit: Counter[str] = Counter()
    for action, direct, ok, count in rows:
        audit[f"{action}{'' if direct else ' (request)'}{' ok' if ok else ''}"] += count
    direct_audited = sum(
        c
        for k, c in audit.items()
        if k.split()[0] in ("changed", "failed", "unknown") and "(request)" not in k
    )
    succeeded = audit["changed ok"] + audit["executed (request) ok"]

    print(
        f"soak: {args.operations:,} operations on 2 instances (PostgreSQL), {args.threads} "
        f"threads, 1% SendGrid faults (0.5% HTTP 503, 0.5% dropped connections)"
    )
    print(f"  issued: {dict(issued)}")
    print(f"  HTTP answers: {dict(statuses)}; replies at response_urls: {replies['count']:,}")
    print(
        f"  throughput: {args.operations / sent_seconds:.0f} operations/s acknowledged over "
        f"{sent_seconds:.1f} s; the last reply {settle_seconds:.1f} s after the start"
    )
    q = statistics.quantiles(latencies, n=100)
    print(
        f"  time to HTTP answer: p50 {q[49] * 1000:.0f} ms, p99 {q[98] * 1000:.0f} ms, "
        f"max {max(latencies) * 1000:.0f} ms"
    )
    print(f"  replies by kind and error class: {dict(sorted(classes.items()))}")
    print(
        "  RSS (master + worker): "
        + ", ".join(f"{b:.0f} → {a:.0f} MB" for b, a in zip(rss_before, rss_after, strict=True))
    )
    print(f"  SendGrid calls by outcome: {sim_stats['outcomes']}")
    print(f"  audit rows: {dict(sorted(audit.items()))}")
    ok1 = direct_audited == issued["direct add"]
    ok2 = audit["requested (request)"] + refused_requests == issued["request"]
    ok3 = sim_stats["applied"] == succeeded
    print(
        f"  books: direct adds issued {issued['direct add']} = audited {direct_audited}: "
        f"{'yes' if ok1 else 'NO'}; requests issued {issued['request']} = recorded "
        f"{audit['requested (request)']} + refused before recording {refused_requests}: "
        f"{'yes' if ok2 else 'NO'}; writes SendGrid applied {sim_stats['applied']} = "
        f"audited successes {succeeded}: {'yes' if ok3 else 'NO'}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
