"""The metrics port: what the bot reports, with no metrics library behind it.

Commands, adapters and transports call these methods; `NO_METRICS` does
nothing (console, tests that do not look), `bot.observability.prometheus`
turns them into Prometheus series. Label values passed here must come from
small fixed sets (verbs, outcomes, endpoints, states), never from user input,
except `runway` which the Prometheus side bounds to a few accounts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol


class Metrics(Protocol):
    def command_handled(self, subcommand: str, outcome: str) -> None:
        """One `/credits` command answered: `outcome` is ok, error, approval_requested, unknown."""
        ...

    def acknowledged(self, seconds: float) -> None:
        """Slack's HTTP request answered (the ack) after `seconds`."""
        ...

    def replied(self, seconds: float) -> None:
        """The answer delivered (response_url, chat.update, DM) `seconds` after the request."""
        ...

    def sendgrid_call(self, endpoint: str, outcome: str, status: int) -> None:
        """One HTTP attempt to SendGrid; `status` 0 when no answer came."""
        ...

    def limiter_waited(self, seconds: float) -> None:
        """The client-side rate limiter held one request back this long (0 if not at all)."""
        ...

    def approval(self, state: str, decision_seconds: float | None = None) -> None:
        """A request entered `state`; for decisions, how long after it was requested."""
        ...

    def sweep_finished(
        self,
        *,
        seconds: float,
        accounts_by_level: Mapping[str, int],
        runway_hours: Mapping[str, float],
    ) -> None:
        """A sweep's duration, its accounts per level, and hours left of the low ones."""
        ...


class NoMetrics:
    """Reports nothing."""

    def command_handled(self, subcommand: str, outcome: str) -> None:
        return None

    def acknowledged(self, seconds: float) -> None:
        return None

    def replied(self, seconds: float) -> None:
        return None

    def sendgrid_call(self, endpoint: str, outcome: str, status: int) -> None:
        return None

    def limiter_waited(self, seconds: float) -> None:
        return None

    def approval(self, state: str, decision_seconds: float | None = None) -> None:
        return None

    def sweep_finished(
        self,
        *,
        seconds: float,
        accounts_by_level: Mapping[str, int],
        runway_hours: Mapping[str, float],
    ) -> None:
        return None


NO_METRICS: Metrics = NoMetrics()
