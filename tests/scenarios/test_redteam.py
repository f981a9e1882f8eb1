"""Red team: ways the change lifecycle still says something untrue about money.

Each test is a real sequence with real processes (gunicorn under `unshare`, so
that processes get the PID namespaces containers give them), signed requests, the
SendGrid simulator and the fake Slack. Each failed before the fix its docstring
names (the red team's finding is kept in words there).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from bot.adapters.store.tables import instances
from bot.simulator import FaultRule, SimulatorServer
from tests.fakes.processes import ServeProcess, serving
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import post_signed
from tests.helpers import wait_until
from tests.scenarios.test_instances import (
    OPERATOR,
    SECRET,
    approval_post,
    approve_body,
    command,
)
from tests.scenarios.test_lifecycle import (
    ADMIN,
    audit_rows,
    changes,
    dms_to,
    env_for,
    send,
)


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack().running() as fake:
        yield fake


SERVE = [sys.executable, "-m", "bot", "serve", "--host", "127.0.0.1", "--port", "{port}"]


def _can_unshare() -> bool:
    if shutil.which("unshare") is None:
        return False

    probe = subprocess.run(
        ["unshare", "--pid", "--fork", "--mount-proc", "true"],
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


needs_pid_namespaces = pytest.mark.skipif(
    not _can_unshare(), reason="needs `unshare --pid` (root or user namespaces)"
)


def in_container(*, burn_pids: int = 0) -> list[str]:
    """`serve` as a container runs it: a fresh PID namespace, the same hostname.

    `burn_pids` short-lived processes run first, so the worker's PID is higher than
    any PID a fresh namespace has (as in a container that has been up for a while).
    """
    burn = f"i=0; while [ $i -lt {burn_pids} ]; do /bin/true; i=$((i+1)); done; "
    serve = " ".join(SERVE)
    return ["unshare", "--pid", "--fork", "--mount-proc", "sh", "-c", f"{burn}exec {serve}"]


def said_to_people(slack: FakeSlack) -> list[str]:
    said = [str(c.payload) for c in slack.state.calls_to("chat.update")]
    said += [str(c.payload) for c in slack.state.calls_to("chat.postMessage")]
    said += [str(r) for r in slack.state.responses]
    return said


# --- 1. Two live instances that share a hostname --------------------------------------------


@needs_pid_namespaces
def test_a_live_peer_in_another_pid_namespace_with_the_same_hostname_is_never_recovered(
    simulator: SimulatorServer, slack: FakeSlack, tmp_path: Path
):
    """Found: liveness on "this host" was decided by os.kill(pid) in the checker's own PID
    namespace, so a live peer in another container with the same hostname was taken for dead
    (a false "verify", then "done"). Fixed: instance ids name the PID namespace too, and a
    heartbeat is always required.
    """
    url = f"sqlite:///{tmp_path / 'shared-host.sqlite3'}"
    simulator.state.add_fault(FaultRule(kind="slow-write", arg="8000", task="increment"))
    env = env_for(simulator, slack, url, "v2", SENDGRID_TIMEOUT="30")
    busy = ServeProcess(env, in_container(burn_pids=300))
    try:
        busy.wait_healthy()
        send(busy, slack, "add initech 500", ADMIN, "direct")
        wait_until(lambda: simulator.state.writes(task="increment"))  # sent, SendGrid slow
        # The deploy's next container: same hostname, its own PID namespace.
        fresh = ServeProcess(env, in_container())
        try:
            fresh.wait_healthy()
            [change] = wait_until(
                lambda: (
                    [c for c in changes(url) if c["state"] in ("applied", "unknown")]
                    and [c for c in changes(url) if c["state"] == "applied"]
                ),
                timeout=30,
            )
            wait_until(lambda: slack.state.responses)  # the busy peer's own reply
        finally:
            fresh.stop()
    finally:
        busy.stop()
    assert change["state"] == "applied"
    assert len(simulator.state.writes(task="increment")) == 1
    # What was true: the live peer applied it, and answered so. What was said must match.
    assert any("Add done" in str(r) for r in slack.state.responses)
    assert not any("verify" in s for s in said_to_people(slack)), dms_to(slack, ADMIN)
    assert not [r for r in audit_rows(url) if r["action"] == "orphaned"]


# --- 2. A crashed container restarted with the same hostname -------------------------------


@needs_pid_namespaces
def test_a_change_killed_in_a_container_is_recovered_when_the_container_restarts(
    simulator: SimulatorServer, slack: FakeSlack, tmp_path: Path
):
    """Found: a container restarted after a crash has the same hostname and, in a fresh PID
    namespace, the same worker PID, so the dead instance looked alive forever and its change
    stayed "sending". Fixed: a stale heartbeat is gone whatever the process table says;
    recovery runs on every heartbeat.
    """
    url = f"sqlite:///{tmp_path / 'restart.sqlite3'}"
    simulator.state.add_fault(FaultRule(kind="slow-write", arg="60000", task="increment"))
    env = env_for(simulator, slack, url, "v2", SENDGRID_TIMEOUT="45")
    crashed = ServeProcess(env, in_container())
    try:
        crashed.wait_healthy()
        send(crashed, slack, "add initech 500", ADMIN, "direct")
        wait_until(lambda: simulator.state.writes(task="increment"))
    finally:
        crashed.kill()  # OOM kill: nothing runs
    simulator.state.clear_faults()
    restarted = ServeProcess(env, in_container())  # `docker restart`: same host, fresh PIDs
    try:
        restarted.wait_healthy()
        # Recovery tells the actor once the crashed instance's heartbeat is past the lease.
        wait_until(lambda: dms_to(slack, ADMIN), timeout=60)
    finally:
        restarted.stop()
    [change] = changes(url)
    assert change["state"] == "unknown"
    assert any("verify" in t for t in dms_to(slack, ADMIN))
    assert not [r for r in audit_rows(url) if r["outcome"] == "sending"]


# --- 3. SIGTERM while a sent write waits (429 Retry-After, or the fleet's rate budget) -------


@pytest.mark.parametrize("origin", ["direct", "approved"])
def test_sigterm_never_tells_verify_about_a_write_that_leaves_afterwards(
    simulator: SimulatorServer, slack: FakeSlack, tmp_path: Path, origin: str
):
    """Found: a graceful stop marked a sent change unknown and told "verify" while its write
    still waited out a Retry-After, and the write left afterwards. Fixed: every attempt of a
    write first checks the change is still this owner's to send (`write_guard`).
    """
    url = f"sqlite:///{tmp_path / 'drain.sqlite3'}"
    # SendGrid says 429 to the first increment: the write is retried after 17 s
    # (within the client's 20 s cap), longer than the 15 s the stop waits.
    simulator.state.add_fault(FaultRule(kind="ratelimit", arg="17", task="increment", times=1))
    env = env_for(simulator, slack, url, "v2", SENDGRID_TIMEOUT="30")
    server = ServeProcess(env)
    try:
        server.wait_healthy()
        if origin == "direct":
            send(server, slack, "add initech 500", ADMIN, "direct")
        else:
            command(server.url, slack, "add initech 500", OPERATOR, "request")
            click = approve_body(slack, approval_post(slack), ADMIN, "click")
            assert post_signed(server.url + "/slack/events", SECRET, click).status_code == 200
        wait_until(lambda: [c for c in simulator.state.calls() if c.outcome == "fault:ratelimit"])
        wait_until(lambda: [c for c in changes(url) if c["state"] == "sent"])
    except BaseException:
        server.kill()
        raise
    stopper = threading.Thread(target=server.stop)  # SIGTERM, as a deploy does
    stopper.start()

    def verify_told() -> list[str]:  # a DM, the request's card, the requester's DM
        return [t for t in said_to_people(slack) if "verify" in t]

    wait_until(lambda: verify_told() or not stopper.is_alive(), timeout=40)
    applied_when_told = len(applied_increments(simulator))
    stopper.join()
    told = verify_told()
    applied_in_the_end = len(applied_increments(simulator))
    [change] = changes(url)
    # Truth: once the actor is told "it may or may not have been applied — verify the
    # balance before trying again", no write of that change may leave afterwards.
    assert not told or applied_when_told == applied_in_the_end, (
        told,
        applied_when_told,
        applied_in_the_end,
        change["state"],
    )


def applied_increments(simulator: SimulatorServer) -> list:
    return [c for c in simulator.state.writes(task="increment") if c.applied]


# --- 4. A peer on another host that is merely paused ---------------------------------------


def on_another_host(name: str) -> list[str]:
    """`serve` on a host called `name` (its own UTS namespace), as on another machine."""
    serve = " ".join(SERVE)
    return ["unshare", "--uts", "sh", "-c", f"hostname {name} && exec {serve}"]


def heartbeat_age(url: str) -> float:
    engine = create_engine(url)
    with engine.connect() as connection:
        beats = connection.execute(
            select(instances.c.heartbeat_at).where(instances.c.id.like("node-a%"))
        ).all()
    engine.dispose()
    newest = max(b.heartbeat_at for b in beats).replace(tzinfo=UTC)
    return (datetime.now(UTC) - newest).total_seconds()


@needs_pid_namespaces
def test_a_paused_peer_never_sends_a_write_after_its_actor_was_told_to_verify(
    simulator: SimulatorServer, slack: FakeSlack, tmp_path: Path
):
    """Found: a paused peer on another host had its sent change recovered ("verify"), then sent
    the write when it resumed. Fixed by the same check before every attempt of a write.
    """
    url = f"sqlite:///{tmp_path / 'paused.sqlite3'}"
    simulator.state.add_fault(FaultRule(kind="ratelimit", arg="20", task="increment", times=1))
    # One worker: SIGSTOP pauses the whole host, and on SQLite a second worker paused
    # mid-heartbeat would hold the file's write lock against the peer (and this test).
    env = env_for(simulator, slack, url, "v2", SENDGRID_TIMEOUT="30", WEB_CONCURRENCY="1")
    paused = ServeProcess(env, on_another_host("node-a"))
    try:
        paused.wait_healthy()
        send(paused, slack, "add initech 500", ADMIN, "direct")
        wait_until(lambda: [c for c in simulator.state.calls() if c.outcome == "fault:ratelimit"])
        wait_until(lambda: [c for c in changes(url) if c["state"] == "sent"])
        os.killpg(paused.process.pid, signal.SIGSTOP)  # the write waits out Retry-After
        wait_until(lambda: heartbeat_age(url) > 31, timeout=60, interval=0.5)
        with serving(env):  # a peer starts and recovers what looks abandoned
            wait_until(lambda: [c for c in changes(url) if c["state"] != "sent"], timeout=20)
        told = [t for t in dms_to(slack, ADMIN) if "verify" in t]
        applied_when_told = len(applied_increments(simulator))
        os.killpg(paused.process.pid, signal.SIGCONT)
        wait_until(lambda: slack.state.responses, timeout=40)  # the paused one's reply
    finally:
        os.killpg(paused.process.pid, signal.SIGCONT)
        paused.stop()
    applied_in_the_end = len(applied_increments(simulator))
    [change] = changes(url)
    assert not told or applied_when_told == applied_in_the_end, (
        told,
        applied_when_told,
        applied_in_the_end,
        change["state"],
        [str(r) for r in slack.state.responses],
    )
