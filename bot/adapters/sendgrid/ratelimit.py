"""A client-side rate limiter shared by every SendGrid call in the process.

SendGrid v2 allows 600 requests per minute per user (reference §5). The bot
should never be the cause of a 429, so every request takes a token first.

`TokenBucket` refills continuously. With a burst of `B` tokens and a refill
rate `r`, any window of `W` seconds admits at most `B + r·W` requests; the
refill is set to `(limit − B) / (W + slack)` so that even a fixed window on
SendGrid's side, with a little network jitter (a second per minute), never
sees more than `limit` requests. `pause_for()` makes everyone wait after SendGrid said 429.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

Clock = Callable[[], float]
_EPSILON = 1e-9
_MIN_SLEEP = 1e-4
Sleep = Callable[[float], None]


class TokenBucket:
    """Thread-safe token bucket: `acquire()` blocks until a request may be sent.

    At most `limit` requests in any `window` seconds (default: per minute).
    """

    def __init__(
        self,
        *,
        limit: int,
        window: float = 60.0,
        burst: int | None = None,
        slack: float | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
    ) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self.window = window
        # Defaults scale with the window; for 600/minute: a burst of 10, a slack of 1 s.
        self.burst = max(1, min(burst if burst is not None else limit // 60, limit // 2))
        slack = window / 60 if slack is None else slack
        self.rate = (limit - self.burst) / (window + slack)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = float(self.burst)
        self._updated = clock()
        self._paused_until = 0.0

    def acquire(self) -> float:
        """Take one token, sleeping as long as needed. Returns the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                self._refill(now)
                if now < self._paused_until:
                    delay = self._paused_until - now
                elif self._tokens >= 1.0 - _EPSILON:
                    self._tokens = max(0.0, self._tokens - 1.0)
                    return waited
                else:
                    delay = (1.0 - self._tokens) / self.rate
            # A floor on the sleep: a deficit of 1e-17 s would not move the clock.
            delay = max(delay, _MIN_SLEEP)
            self._sleep(delay)
            waited += delay

    def pause_for(self, seconds: float) -> None:
        """Hold every caller for `seconds` (SendGrid said 429) and drop saved tokens."""
        with self._lock:
            now = self._clock()
            self._paused_until = max(self._paused_until, now + seconds)
            self._tokens = 0.0
            self._updated = max(now, self._paused_until)

    def _refill(self, now: float) -> None:
        if now > self._updated:
            self._tokens = min(float(self.burst), self._tokens + (now - self._updated) * self.rate)
            self._updated = now


class NoLimit:
    """A limiter that never waits (for the simulator's own tests and benchmarks)."""

    def acquire(self) -> float:
        return 0.0

    def pause_for(self, seconds: float) -> None:
        return None
