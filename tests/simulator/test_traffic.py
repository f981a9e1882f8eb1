"""The simulator's traffic model (issue 15): resets follow the plan, as SendGrid's do."""

from __future__ import annotations

from datetime import datetime

from bot.simulator import SimulatedAccount
from bot.simulator.traffic import TrafficModel, TrafficShape

EPOCH = datetime(2026, 11, 23, 9, 0)
QUIET = TrafficShape(idle_share=1.0, campaigns_per_hour=0, topups_per_hour=0, resets_per_hour=5)


def test_resets_follow_the_plans_period_and_last_reset_not_random_moments():
    now = [0.0]
    accounts = [
        SimulatedAccount(
            "d",
            "d@example.com",
            credit=500,
            credit_remain=5_000,
            period="daily",
            last_reset="2026-11-23",
        ),
        SimulatedAccount(
            "m",
            "m@example.com",
            credit=500,
            credit_remain=5_000,
            period="monthly",
            last_reset="2026-11-01",
        ),
    ]
    model = TrafficModel(
        accounts, clock=lambda: now[0], hours=48, line=lambda _a: 1000, epoch=EPOCH, shape=QUIET
    )
    now[0] = 15 * 3600 + 1  # 00:00:01 the next day
    model.settle_all()
    assert [(c.user, c.at) for c in model.crossings] == [("d", 15 * 3600)]
    assert accounts[0].credit_remain == 500
    assert accounts[0].last_reset == "2026-11-24"  # what v2's retrieve reports now
    assert accounts[1].credit_remain == 5_000  # monthly: not before 2026-12-01
