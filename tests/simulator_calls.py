"""Reading the simulator's call log in tests."""

from __future__ import annotations

from bot.simulator import SimulatorServer
from bot.simulator.state import CallRecord


def listing_calls(simulator: SimulatorServer, api_version: str) -> list[CallRecord]:
    """Calls that list accounts (what the readiness check sends)."""
    module = "v3.subusers" if api_version == "v3" else "customer.profile"
    return [
        c for c in simulator.state.calls() if c.module == module and c.params.get("task") == "get"
    ]
