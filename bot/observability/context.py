"""The request being handled: one id from Slack's request to the answer, across threads.

The WSGI app opens a `request_scope` for every request; the Bolt listener pool
and the post-ack work pool are `ContextExecutor`s, which run each task in a
copy of the submitter's context, so the ack's log lines and the reply's carry
the same id (`bot.logs` writes it into every JSON line).
"""

from __future__ import annotations

import contextvars
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RequestContext:
    request_id: str
    started: float = field(default_factory=time.monotonic)  # time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.started


_current: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar(
    "credits_bot_request", default=None
)


def current_request() -> RequestContext | None:
    return _current.get()


def new_request_id() -> str:
    return uuid.uuid4().hex[:16]


@contextmanager
def request_scope(request_id: str | None = None) -> Iterator[RequestContext]:
    """Everything logged inside (and in tasks submitted to a ContextExecutor) carries the id."""
    context = RequestContext(request_id or new_request_id())
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)


class ContextExecutor(ThreadPoolExecutor):
    """A thread pool whose tasks run in a copy of the submitting thread's context."""

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        context = contextvars.copy_context()
        return super().submit(lambda: context.run(fn, *args, **kwargs))
