"""What the read-only surfaces cost: `/credits low` over many subusers, and drawing the
30-day history chart.

    python bench/views.py [--subusers 10000] [--snapshots 8] [--runs 5]

`/credits low` runs through `CommandService.handle` (parse, roles, the handler, the
reply) on SQLite in a scratch directory holding `--subusers` subusers with
`--snapshots` snapshots each (15 minutes apart) and their alert state. Its baseline,
in the same run on the same database, is the plainest read of the same rows: the
alert states of every subuser (`AlertStore.states`). The chart is a 30-day hourly
history (720 points) drawn to PNG; its baseline is saving a blank image of the same
size. No SendGrid call is made by either (`low` reads stored state only); the
backend points at the embedded simulator to prove it: its call count is printed.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402

from bot.adapters.sendgrid import SendGridV2Client  # noqa: E402
from bot.adapters.sendgrid.ratelimit import NoLimit  # noqa: E402
from bot.adapters.store import SqlStore  # noqa: E402
from bot.adapters.store.alerts import SqlAlertStore  # noqa: E402
from bot.commands.replies import LowReply  # noqa: E402
from bot.commands.service import Actor, CommandService  # noqa: E402
from bot.domain.alerts import AlertState, Snapshot, Thresholds, Usage  # noqa: E402
from bot.domain.credits import Balance  # noqa: E402
from bot.domain.policy import RoleBook  # noqa: E402
from bot.simulator import DEMO_API_KEY, DEMO_API_USER, SimulatorServer, sample_state  # noqa: E402
from bot.transports.charts import HEIGHT, WIDTH, HistoryChart, history_png  # noqa: E402

VIEWER = "U0BENCHVIEW"
NOW = datetime.now(UTC)


def timed(run, runs: int) -> list[float]:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        run()
        samples.append(time.perf_counter() - started)
    return samples


def ms(samples: list[float]) -> str:
    return f"median {statistics.median(samples) * 1000:.1f} ms (min {min(samples) * 1000:.1f})"


def seed(alerts: SqlAlertStore, subusers: int, snapshots: int) -> list[str]:
    rng = random.Random(15)
    users = [f"sub-{i:05d}" for i in range(subusers)]
    balances = {
        u: rng.choice([0, rng.randint(1, 2_000), rng.randint(2_000, 200_000)]) for u in users
    }
    for step in range(snapshots, 0, -1):
        at = NOW - timedelta(minutes=15 * step)
        alerts.add_snapshots(
            [(u, Balance(False, b + 10 * step)) for u, b in balances.items()], at=at
        )
    alerts.save_states(
        [
            AlertState(u, usage=Usage(b, NOW - timedelta(minutes=15), 40.0))
            for u, b in balances.items()
        ]
    )
    return users


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subusers", type=int, default=10_000)
    parser.add_argument("--snapshots", type=int, default=8)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    logging.disable(logging.INFO)
    print(
        f"conditions: {os.cpu_count()} cores, load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; SQLite in a scratch directory; "
        f"{args.subusers:,} subusers x {args.snapshots} snapshots; {args.runs} runs each"
    )
    with (
        tempfile.TemporaryDirectory(prefix="credits-bench-views-") as scratch,
        SimulatorServer(sample_state()).running() as simulator,
    ):
        store = SqlStore.from_url(f"sqlite:///{scratch}/views.sqlite3")
        try:
            alerts = SqlAlertStore(store)
            users = seed(alerts, args.subusers, args.snapshots)
            backend = SendGridV2Client(
                api_user=DEMO_API_USER,
                api_key=DEMO_API_KEY,
                base_url=simulator.url,
                limiter=NoLimit(),
            )
            service = CommandService(
                backend=backend,
                roles=RoleBook(viewers=frozenset({VIEWER})),
                directory=None,
                alerts=alerts,
                thresholds=Thresholds(below=1_000, percent=10),
                horizon=timedelta(hours=1, minutes=15),
            )
            calls = len(simulator.state.calls())
            replies: list[object] = []
            low = timed(lambda: replies.append(service.handle(Actor(VIEWER), "low")), args.runs)
            baseline = timed(lambda: alerts.states(users), args.runs)
            reply = replies[-1]
            assert isinstance(reply, LowReply), reply
            print(
                f"/credits low: {ms(low)}; listed {len(reply.accounts)} (+{reply.more} more); "
                f"SendGrid calls {len(simulator.state.calls()) - calls}"
            )
            print(f"baseline, alert states of all {len(users):,} subusers: {ms(baseline)}")
            backend.close()
        finally:
            store.close()
    points = tuple(
        Snapshot("acme-eu", NOW - timedelta(hours=h), 40_000 - 50 * (720 - h), False)
        for h in range(720, 0, -1)
    )
    pngs: list[bytes] = []
    chart = timed(
        lambda: pngs.append(history_png(HistoryChart("acme-eu", points, now=NOW, hours_left=30))),
        args.runs,
    )

    def blank() -> None:
        Image.new("RGB", (WIDTH, HEIGHT), (255, 255, 255)).save(io.BytesIO(), "PNG", optimize=True)

    print(f"history chart (720 points): {ms(chart)}; PNG {len(pngs[-1]):,} bytes")
    print(f"baseline, a blank {WIDTH}x{HEIGHT} PNG: {ms(timed(blank, args.runs))}")


if __name__ == "__main__":
    main()
