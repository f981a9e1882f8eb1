"""Acks first: work that follows an ack waits for the acks in flight, briefly."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from bot.transports.slack.acks import AcksInFlight
from bot.transports.slack.app import PostAckWork
from tests.helpers import wait_until


def test_work_waits_while_an_ack_is_in_flight_and_starts_once_it_is_done():
    acks = AcksInFlight(hold=30.0, quiet=0.005)
    work = PostAckWork(ThreadPoolExecutor(max_workers=2), acks=acks)
    started = threading.Event()
    order: list[str] = []
    with acks.acking():
        work.submit(lambda _checked: (order.append("work"), started.set()), "a task")
        time.sleep(0.2)
        assert not started.is_set()  # held while this ack is in flight
        order.append("ack")
    assert started.wait(10)
    assert order == ["ack", "work"]
    assert work.wait_idle(10)
    work.close()


def test_work_is_held_no_longer_than_the_hold():
    acks = AcksInFlight(hold=0.05, quiet=0.005)
    work = PostAckWork(ThreadPoolExecutor(max_workers=1), acks=acks)
    ran = threading.Event()
    with acks.acking():  # an ack that never ends while the task waits
        work.submit(lambda _checked: ran.set(), "a task")
        wait_until(ran.is_set, timeout=10)
    assert work.wait_idle(10)
    work.close()


def test_without_acks_in_flight_work_does_not_wait():
    acks = AcksInFlight(hold=30.0, quiet=0.005)
    assert acks.wait_for_quiet() < 5.0  # nothing acking, nothing ended: at once
    with acks.acking():
        pass
    waited = acks.wait_for_quiet()
    assert waited < 5.0  # only the quiet moment after the last ack, never the hold
