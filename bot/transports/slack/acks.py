"""Acks first: the work that follows an ack waits, briefly, for the acks in flight.

Every request a `serve` worker takes costs CPU under one interpreter lock: its ack
(signature, Bolt, the listener) and then its work (the command, SendGrid, the
reply). When a burst of 50 commands lands at once, the work of the first ones
used to share the lock with the acks of the last ones, and those acks took twice
as long as a bare Bolt app's. Slack waits for an ack for 3 seconds and then shows
the person an error; the reply has no such deadline, and the work it waits on is
SendGrid's half second anyway.

So a task of the work pool starts once no ack is in flight in this process and
none ended in the last `quiet` seconds (the next request of a burst is usually
being read by then), and never later than `hold` seconds after it was ready.
Measured with `bench/ack_latency.py --shape burst` (3 runs each, docs/reliability.md,
issue 16): a burst's ack p99 went from 2.31-2.50 × a bare Bolt app's to 1.05-1.68 ×,
and the reply p50 from SendGrid + 57-59 ms to + 80-85 ms. Unlike the hold-back removed
in the first pass (up to 250 ms whenever any request was mid-ack), the wait is short
and what it costs replies is measured.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

ACK_HOLD = 0.050
ACK_QUIET = 0.005


class AcksInFlight:
    """Counts the requests this process is acknowledging; `wait_for_quiet` holds work."""

    def __init__(
        self,
        *,
        hold: float = ACK_HOLD,
        quiet: float = ACK_QUIET,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.hold = hold
        self.quiet = quiet
        self._clock = clock
        self._changed = threading.Condition()
        self._acking = 0
        self._last_ended = float("-inf")

    @contextmanager
    def acking(self) -> Iterator[None]:
        """Around one request's ack (the WSGI app's handling of a Slack request)."""
        with self._changed:
            self._acking += 1
        try:
            yield
        finally:
            with self._changed:
                self._acking -= 1
                self._last_ended = self._clock()
                self._changed.notify_all()

    def wait_for_quiet(self) -> float:
        """Wait until no ack is in flight and none ended in the last `quiet` seconds,
        at most `hold` seconds; returns the seconds waited."""
        started = self._clock()
        deadline = started + self.hold
        with self._changed:
            while True:
                now = self._clock()
                if now >= deadline:
                    break
                if self._acking:
                    self._changed.wait(deadline - now)
                    continue
                since = now - self._last_ended
                if since >= self.quiet:
                    break
                self._changed.wait(min(self.quiet - since, deadline - now))
        return self._clock() - started
