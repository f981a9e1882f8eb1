"""Sweep metrics: duration, accounts per level, runway of the low accounts only (bounded)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import requests

from bot.adapters.store import SqlStore
from bot.config import load_settings
from bot.observability.prometheus import RUNWAY_ACCOUNTS, PrometheusMetrics
from bot.simulator import (
    DEMO_API_KEY,
    DEMO_API_USER,
    SimulatedAccount,
    SimulatorServer,
    SimulatorState,
)
from bot.transports.clock import serve_metrics
from tests.fakes.processes import free_port
from tests.metrics_text import Scrape
from tests.scenarios.test_alerts import Timeline, backend_for, make_sweeper, slack, store

__all__ = ["backend_for", "slack", "store"]  # fixtures shared with test_alerts


def account(name: str, remain: int) -> SimulatedAccount:
    return SimulatedAccount(username=name, email=f"{name}@x.example", credit_remain=remain)


def simulator_with(accounts: list[SimulatedAccount]) -> SimulatorServer:
    return SimulatorServer(
        SimulatorState(
            api_user=DEMO_API_USER, api_key=DEMO_API_KEY, subusers=accounts, rate_limit=None
        )
    )


@pytest.fixture
def metrics() -> PrometheusMetrics:
    return PrometheusMetrics()


def scraped(metrics: PrometheusMetrics) -> Scrape:
    body, _ = metrics.render()
    return Scrape(body.decode())


def test_levels_and_runway_of_low_accounts_follow_each_sweep(
    backend_for, slack, store: SqlStore, metrics: PrometheusMetrics
):
    accounts = [account("plenty", 90_000), account("burning", 10_000), account("empty", 0)]
    timeline = Timeline()
    with simulator_with(accounts).running() as simulator:
        sweeper = make_sweeper(
            backend_for(simulator),
            slack,
            store,
            timeline,
            horizon=timedelta(hours=5),
            metrics=metrics,
        )
        sweeper.sweep()
        first = scraped(metrics)
        assert first.value("credits_sweep_accounts", level="ok") == 2
        assert first.value("credits_sweep_accounts", level="exhausted") == 1
        assert first.value("credits_sweep_accounts", level="low") == 0
        assert first.labels_of("credits_runway_hours", "subuser") == {"empty"}

        timeline.advance(hours=1)
        simulator.state.subusers["burning"].credit_remain = 7_000  # 3,000 an hour
        sweeper.sweep()
        second = scraped(metrics)
        assert second.value("credits_sweep_accounts", level="low") == 1
        assert second.value("credits_runway_hours", subuser="burning") == pytest.approx(2.33)
        assert second.value("credits_runway_hours", subuser="empty") == 0
        assert "plenty" not in second.labels_of("credits_runway_hours", "subuser")

        timeline.advance(hours=1)
        simulator.state.subusers["burning"].credit_remain = 80_000  # topped up
        sweeper.sweep()
        third = scraped(metrics)
        assert third.labels_of("credits_runway_hours", "subuser") == {"empty"}
        assert third.value("credits_sweep_duration_seconds_count") == 3


def test_runway_is_reported_for_at_most_the_lowest_accounts(
    backend_for, slack, store: SqlStore, metrics: PrometheusMetrics
):
    accounts = [account(f"empty-{i:02d}", 0) for i in range(RUNWAY_ACCOUNTS + 10)]
    with simulator_with(accounts).running() as simulator:
        make_sweeper(backend_for(simulator), slack, store, Timeline(), metrics=metrics).sweep()
    result = scraped(metrics)
    assert result.value("credits_sweep_accounts", level="exhausted") == RUNWAY_ACCOUNTS + 10
    runway = result.labels_of("credits_runway_hours", "subuser")
    assert runway == {f"empty-{i:02d}" for i in range(RUNWAY_ACCOUNTS)}


def test_the_clock_serves_its_metrics_on_metrics_port(
    backend_for, slack, store: SqlStore, tmp_path: Path
):
    port = free_port()
    settings = load_settings({"METRICS_PORT": str(port)})
    metrics = serve_metrics(settings)
    with simulator_with([account("empty", 0)]).running() as simulator:
        make_sweeper(backend_for(simulator), slack, store, Timeline(), metrics=metrics).sweep()
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    result = Scrape(text)
    assert result.value("credits_sweep_duration_seconds_count") == 1
    assert result.value("credits_runway_hours", subuser="empty") == 0
