"""Issue 6: a fleet of processes on one SendGrid account keeps to one rate budget.

Three real processes share one database (a SQLite file, or a PostgreSQL database
this run creates): two answer `/credits show` as fast as their limiter lets them
(built like `serve` builds them) and one runs `credits-bot sweep` over many
subusers. The simulator enforces the same sliding window SendGrid does, scaled
down (LIMIT requests per WINDOW seconds instead of 600 per 60 s) so the run takes
seconds. From its call log: no 429, and no WINDOW-second window with more than
LIMIT requests.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from bot.adapters.sendgrid import SlidingWindowLimiter
from bot.adapters.store import create_store_engine, migrate
from bot.adapters.store.ratelimit import SqlRateBudget
from bot.config import normalize_database_url
from bot.simulator import DEMO_API_KEY, DEMO_API_USER, SimulatorServer, SimulatorState
from bot.simulator.state import CallRecord, generated_subusers
from tests.fakes.processes import clean_env
from tests.helpers import wait_until
from tests.pg import create_database

LIMIT = 30
WINDOW = 3.0
VIEWER = "U0VIEWER1"
SUBUSERS = 40
SHOWS_PER_PROCESS = 30
ROOT = Path(__file__).resolve().parents[2]


def busiest_window(calls: Sequence[CallRecord], window: float) -> int:
    """The most calls the simulator received within any `window` seconds."""
    times = sorted(c.at for c in calls)
    worst, start = 0, 0
    for end, at in enumerate(times):
        while times[start] <= at - window:
            start += 1
        worst = max(worst, end - start + 1)
    return worst


def bot_env(simulator: SimulatorServer, database_url: str, **extra: str) -> dict[str, str]:
    return clean_env(
        SENDGRID_API_USER=DEMO_API_USER,
        SENDGRID_API_KEY=DEMO_API_KEY,
        SENDGRID_API_URL=simulator.url,
        DATABASE_URL=database_url,
        CREDITS_VIEWERS=VIEWER,
        LOG_LEVEL="WARNING",
        **extra,
    )


def show_command(shows: int, users: Sequence[str]) -> list[str]:
    return [
        sys.executable,
        *("-m", "tests.scenarios.fleet_load", "--shows", str(shows), "--as", VIEWER),
        *users,
    ]


def run_fleet(database_url: str) -> tuple[SimulatorState, list[str]]:
    """Two `show` processes and a sweep at once; the simulator's state and their outputs."""
    engine = create_store_engine(normalize_database_url(database_url))
    migrate(engine)  # once, before three processes would race to create the schema
    engine.dispose()
    state = SimulatorState(
        api_user=DEMO_API_USER,
        api_key=DEMO_API_KEY,
        subusers=generated_subusers(SUBUSERS, seed=3),
        rate_limit=LIMIT,
        rate_window=WINDOW,
    )
    users = sorted(state.subusers)
    with SimulatorServer(state).running() as simulator:
        env = bot_env(
            simulator,
            database_url,
            SENDGRID_RATE_LIMIT=str(LIMIT),
            SENDGRID_RATE_WINDOW=str(WINDOW),
        )
        show = show_command(SHOWS_PER_PROCESS, users[:10])
        commands = [show, show, [sys.executable, "-m", "bot", "sweep"]]
        processes = [
            subprocess.Popen(
                command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            for command in commands
        ]
        outputs = []
        for process in processes:
            out, err = process.communicate(timeout=90)
            assert process.returncode == 0, err.decode()[-2000:]
            outputs.append(out.decode())
    return state, outputs


def assert_one_budget(state: SimulatorState, outputs: list[str]) -> None:
    calls = state.calls()
    for output in outputs[:2]:
        assert json.loads(output.strip().splitlines()[-1]) == {"BalanceReply": SHOWS_PER_PROCESS}
    assert f"swept {SUBUSERS} accounts" in outputs[2]
    # Every process really sent: more than three windows' worth in all.
    assert len(calls) > 3 * LIMIT
    assert [c for c in calls if c.status == 429] == []
    assert busiest_window(calls, WINDOW) <= LIMIT


@pytest.mark.slow
def test_three_processes_on_one_sqlite_file_share_one_budget(tmp_path: Path):
    state, outputs = run_fleet(f"sqlite:///{tmp_path / 'fleet.db'}")
    assert_one_budget(state, outputs)


@pytest.mark.slow
@pytest.mark.postgres
def test_three_processes_on_one_postgres_database_share_one_budget():
    try:
        database_url = create_database()
    except RuntimeError:
        pytest.skip("TEST_DATABASE_URL is not set")
    state, outputs = run_fleet(database_url)
    assert_one_budget(state, outputs)


def test_commands_go_ahead_of_a_sweep_held_back_in_another_process(tmp_path: Path):
    """80% of a 60 s window of 10 is used: `credits-bot sweep` (the sweep's priority)
    waits, and `/credits show` in another process is answered meanwhile."""
    database_url = f"sqlite:///{tmp_path / 'priority.db'}"
    engine = create_store_engine(database_url)
    migrate(engine)
    window = 60.0 + SlidingWindowLimiter(limit=10, window=60.0).margin
    budget = SqlRateBudget(engine)
    assert all(budget.take(limit=10, window=window) == 0.0 for _ in range(8))
    state = SimulatorState(
        api_user=DEMO_API_USER,
        api_key=DEMO_API_KEY,
        subusers=generated_subusers(5, seed=3),
        rate_limit=None,
    )
    user = sorted(state.subusers)[0]
    with SimulatorServer(state).running() as simulator:
        env = bot_env(simulator, database_url, SENDGRID_RATE_LIMIT="10")
        sweep = subprocess.Popen(
            [sys.executable, "-m", "bot", "sweep"],
            env={**env, "LOG_LEVEL": "DEBUG"},
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert sweep.stderr is not None
        log: list[str] = []
        reader = threading.Thread(target=lambda: log.extend(sweep.stderr), daemon=True)
        reader.start()
        try:
            # The limiter says so (DEBUG) when it has to wait: the sweep is held back now.
            wait_until(
                lambda: any("rate budget full for sweep requests" in line for line in log),
                timeout=30,
            )
            shown = subprocess.run(
                show_command(2, [user]),
                env=env,
                cwd=ROOT,
                capture_output=True,
                timeout=60,
                check=False,
            )
            assert shown.returncode == 0, shown.stderr.decode()[-2000:]
            assert json.loads(shown.stdout.decode().splitlines()[-1]) == {"BalanceReply": 2}
            assert sweep.poll() is None  # still waiting
            # Only the two commands reached SendGrid; the sweep has not even listed subusers.
            assert [(c.task, c.user) for c in state.calls()] == [("retrieve", user)] * 2
        finally:
            sweep.kill()
            sweep.wait(timeout=10)
            reader.join(10)
            sweep.stderr.close()
    engine.dispose()
