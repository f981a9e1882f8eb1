"""Shared fixtures: a real SendGrid simulator on 127.0.0.1 (port 0) and clients for it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bot.adapters.sendgrid import RetryPolicy, SendGridV2Client
from bot.adapters.sendgrid.ratelimit import NoLimit
from bot.simulator import DEMO_API_KEY, DEMO_API_USER, SimulatorServer, SimulatorState, sample_state

# Fast but real retry settings: tests wait milliseconds, not seconds.
FAST_RETRY = RetryPolicy(
    attempts=3, max_delay=10.0, backoff_initial=0.01, backoff_max=0.05, max_retry_after=5.0
)


@pytest.fixture
def sim_state() -> SimulatorState:
    return sample_state(rate_limit=None)


@pytest.fixture
def simulator(sim_state: SimulatorState) -> Iterator[SimulatorServer]:
    with SimulatorServer(sim_state).running() as server:
        yield server


ClientFactory = Callable[..., SendGridV2Client]


@pytest.fixture
def make_client(simulator: SimulatorServer) -> Iterator[ClientFactory]:
    """Build clients for the running simulator; `key_faults` appends `~fault` specs."""
    clients: list[SendGridV2Client] = []

    def build(*, key_faults: str = "", **overrides: Any) -> SendGridV2Client:
        options: dict[str, Any] = {
            "api_user": DEMO_API_USER,
            "api_key": DEMO_API_KEY + (f"~{key_faults}" if key_faults else ""),
            "base_url": simulator.url,
            "timeout": 2.0,
            "limiter": NoLimit(),
            "retry": FAST_RETRY,
            "logger": logging.getLogger("test.sendgrid"),
        }
        options.update(overrides)
        client = SendGridV2Client(**options)
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.close()
