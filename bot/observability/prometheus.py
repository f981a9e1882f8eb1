"""The metrics port in Prometheus: series, the `/metrics` text, multi-process set-up.

Under gunicorn every worker is its own process with its own counters. With
`PROMETHEUS_MULTIPROC_DIR` set *before prometheus_client is first imported*,
prometheus_client keeps every value in a memory-mapped file in that directory
and `render()` adds up all workers' files. `credits-bot serve` sets it up
(`bot.observability.multiprocess`) before gunicorn starts; worker exits are
recorded with `worker_exited` so live gauges of dead workers disappear.

Label values are bounded: verbs, outcomes, endpoint templates, HTTP statuses,
states and levels; runway is reported for at most `RUNWAY_ACCOUNTS` low accounts.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

# The lowest-runway accounts reported one by one; the rest are in the level counts.
RUNWAY_ACCOUNTS = 20

ACK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0)
REPLY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
WAIT_BUCKETS = (0.001, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0)
DECISION_BUCKETS = (60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 12 * 3600.0, 24 * 3600.0, 72 * 3600.0)
SWEEP_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)


class PrometheusMetrics:
    """`bot.observability.metrics.Metrics` as Prometheus series in `registry`.

    Build one per process (the app factory does): in multi-process mode two
    instances in one process would overwrite each other's files.
    """

    def __init__(self, *, multiprocess_dir: str | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._multiprocess_dir = multiprocess_dir
        r = self.registry
        self._commands = Counter(
            "credits_commands",
            "/credits commands answered, by subcommand and outcome",
            ["subcommand", "outcome"],
            registry=r,
        )
        self._ack = Histogram(
            "credits_ack_seconds",
            "Time to answer Slack's HTTP request (the ack)",
            buckets=ACK_BUCKETS,
            registry=r,
        )
        self._reply = Histogram(
            "credits_reply_seconds",
            "Time from Slack's request to the delivered answer",
            buckets=REPLY_BUCKETS,
            registry=r,
        )
        self._sendgrid = Counter(
            "credits_sendgrid_calls",
            "HTTP attempts to SendGrid, by endpoint, outcome and status (0: no answer)",
            ["endpoint", "outcome", "status"],
            registry=r,
        )
        self._limiter_wait = Histogram(
            "credits_sendgrid_limiter_wait_seconds",
            "How long the client-side rate limiter held each SendGrid request",
            buckets=WAIT_BUCKETS,
            registry=r,
        )
        self._rate_limited = Counter(
            "credits_sendgrid_rate_limited",
            "HTTP 429 answers from SendGrid",
            registry=r,
        )
        self._approvals = Counter(
            "credits_approvals",
            "Approval requests entering each state",
            ["state"],
            registry=r,
        )
        self._decision = Histogram(
            "credits_approval_decision_seconds",
            "Time from request to decision (approved, denied or expired)",
            ["state"],
            buckets=DECISION_BUCKETS,
            registry=r,
        )
        self._sweep = Histogram(
            "credits_sweep_duration_seconds",
            "Duration of low-credit sweeps",
            buckets=SWEEP_BUCKETS,
            registry=r,
        )
        self._levels = Gauge(
            "credits_sweep_accounts",
            "Accounts per level at the last sweep",
            ["level"],
            multiprocess_mode="mostrecent",
            registry=r,
        )
        self._runway = Gauge(
            "credits_runway_hours",
            f"Hours until zero at the recent pace, for at most {RUNWAY_ACCOUNTS} low accounts",
            ["subuser"],
            multiprocess_mode="mostrecent",
            registry=r,
        )

    def command_handled(self, subcommand: str, outcome: str) -> None:
        self._commands.labels(subcommand=subcommand, outcome=outcome).inc()

    def acknowledged(self, seconds: float) -> None:
        self._ack.observe(seconds)

    def replied(self, seconds: float) -> None:
        self._reply.observe(seconds)

    def sendgrid_call(self, endpoint: str, outcome: str, status: int) -> None:
        self._sendgrid.labels(endpoint=endpoint, outcome=outcome, status=str(status)).inc()
        if status == 429:
            self._rate_limited.inc()

    def limiter_waited(self, seconds: float) -> None:
        self._limiter_wait.observe(seconds)

    def approval(self, state: str, decision_seconds: float | None = None) -> None:
        self._approvals.labels(state=state).inc()
        if decision_seconds is not None:
            self._decision.labels(state=state).observe(max(0.0, decision_seconds))

    def sweep_finished(
        self,
        *,
        seconds: float,
        accounts_by_level: Mapping[str, int],
        runway_hours: Mapping[str, float],
    ) -> None:
        self._sweep.observe(seconds)
        for level, count in accounts_by_level.items():
            self._levels.labels(level=level).set(count)
        # Accounts that recovered (or fell out of the lowest N) must not linger.
        self._runway.clear()
        lowest = sorted(runway_hours.items(), key=lambda item: (item[1], item[0]))
        for user, hours in lowest[:RUNWAY_ACCOUNTS]:
            self._runway.labels(subuser=user).set(round(hours, 2))

    def render(self) -> tuple[bytes, str]:
        """The `/metrics` body (every worker's values in multi-process mode) and its type."""
        if self._multiprocess_dir is None:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=self._multiprocess_dir)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST


def worker_exited(pid: int, path: str) -> None:
    """Forget the live gauges of a worker that exited (gunicorn's `child_exit`)."""
    multiprocess.mark_process_dead(pid, path)  # type: ignore[no-untyped-call]
