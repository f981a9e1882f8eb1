"""The embedded SendGrid v2 simulator (`credits-bot simulator`, `console --demo`, tests)."""

from __future__ import annotations

from bot.simulator.server import SimulatorServer
from bot.simulator.state import (
    CallRecord,
    FaultRule,
    SimulatedAccount,
    SimulatorState,
    generated_subusers,
    load_accounts,
)

DEMO_API_USER = "demo"
DEMO_API_KEY = "demo-key"

__all__ = [
    "DEMO_API_KEY",
    "DEMO_API_USER",
    "CallRecord",
    "FaultRule",
    "SimulatedAccount",
    "SimulatorServer",
    "SimulatorState",
    "generated_subusers",
    "load_accounts",
    "sample_state",
]


def sample_state(
    *,
    api_user: str = DEMO_API_USER,
    api_key: str = DEMO_API_KEY,
    data: str | None = None,
    rate_limit: int | None = 600,
    rate_window: float = 60.0,
) -> SimulatorState:
    """A simulator state loaded with the bundled sample accounts (or `data`)."""
    subusers, customers = load_accounts(data)
    return SimulatorState(
        api_user=api_user,
        api_key=api_key,
        subusers=subusers,
        customers=customers,
        rate_limit=rate_limit,
        rate_window=rate_window,
    )
