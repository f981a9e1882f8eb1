"""The readiness cache: one probe per TTL, rejections kept, passing faults not fatal."""

from __future__ import annotations

import threading

from bot.observability.readiness import CachedCheck, Verdict
from tests.helpers import wait_until


class Probe:
    """Answers from a script; counts calls."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if answer == "rejected":
            raise Verdict("token rejected", rejected=True)
        if answer == "down":
            raise Verdict("ConnectionError", rejected=False)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def run_now(task) -> None:
    task()


def check(probe: Probe, clock: Clock) -> CachedCheck:
    """Refreshes inline, so each call's answer is the refreshed one (deterministic)."""
    return CachedCheck("slack", probe, ok_ttl=300, fail_ttl=30, clock=clock, start=run_now)


def test_a_verdict_is_reused_until_its_ttl_ends():
    probe, clock = Probe("ok", "rejected"), Clock()
    cached = check(probe, clock)
    assert all(cached().ok for _ in range(5))
    assert probe.calls == 1
    clock.now += 301
    assert not cached().ok
    clock.now += 29
    assert not cached().ok
    assert probe.calls == 2


def test_a_passing_fault_keeps_the_last_verdict_and_says_it_is_unconfirmed():
    probe, clock = Probe("ok", "down"), Clock()
    cached = check(probe, clock)
    assert cached().ok
    clock.now += 301
    result = cached()
    assert result.ok
    assert result.detail == "not confirmed (ConnectionError)"

    rejected, clock = Probe("rejected", "down"), Clock()
    cached = check(rejected, clock)
    assert not cached().ok
    clock.now += 31
    result = cached()
    assert not result.ok
    assert result.detail.startswith("token rejected; not confirmed")


def test_concurrent_probes_share_one_call():
    release = threading.Event()
    calls = []

    def slow_probe() -> None:
        calls.append(1)
        release.wait(5)

    cached = CachedCheck("sendgrid", slow_probe)
    threads = [threading.Thread(target=cached) for _ in range(8)]
    for thread in threads:
        thread.start()
    release.set()
    for thread in threads:
        thread.join(5)
    assert len(calls) == 1


def test_an_expired_verdict_is_answered_while_the_next_check_runs_in_the_background():
    release, clock = threading.Event(), Clock()
    answers = ["ok", "rejected"]

    def probe() -> None:
        if answers.pop(0) == "rejected":
            release.wait(5)  # SendGrid or Slack taking its time
            raise Verdict("token rejected", rejected=True)

    cached = CachedCheck("slack", probe, clock=clock)
    assert cached().ok
    clock.now += 301
    assert cached().ok  # at once: the last verdict, while the new one is being checked
    release.set()
    wait_until(lambda: not cached().ok)
    assert cached().detail == "token rejected"


def test_a_first_check_that_hangs_counts_as_not_confirmed_yet():
    release = threading.Event()
    cached = CachedCheck("sendgrid", lambda: release.wait(5), first_wait=0.05)
    result = cached()
    release.set()
    assert (result.ok, result.detail) == (True, "not confirmed yet (checking)")
    wait_until(lambda: cached().detail == "ok")


def test_a_probe_that_breaks_is_logged_and_retried_later(caplog):
    clock = Clock()
    calls = []

    def broken() -> None:
        calls.append(1)
        raise KeyError("bug")

    cached = CachedCheck("slack", broken, clock=clock, start=run_now)
    assert cached().detail == "not confirmed (the check failed)"
    assert "readiness check slack failed" in caplog.text
    clock.now += 0.001
    cached()
    assert len(calls) == 2
