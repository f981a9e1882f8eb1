"""Every "done", "nothing was done" and "verify" stays true when processes and databases fail.

Real `credits-bot serve` processes (gunicorn) are killed (SIGKILL), stopped (SIGTERM)
and cut off from PostgreSQL at chosen points of a change; the simulator's call log
is the ground truth the audit trail and the replies are checked against.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from bot.adapters.store.tables import approval_requests, audit_events, credit_changes
from bot.simulator import FaultRule, SimulatorServer
from tests.fakes.processes import ServeProcess, serving
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import post_signed, slash_command_body
from tests.helpers import wait_until
from tests.pg import create_database, server_url
from tests.scenarios.conftest import is_notice, wait_for_answers
from tests.scenarios.test_instances import (
    APPROVERS,
    OPERATOR,
    SECRET,
    approval_post,
    approve_body,
    bot_env,
    command,
)

ADMIN = APPROVERS[0]


@pytest.fixture(params=["v2", "v3"])
def version(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'lifecycle.sqlite3'}"
    if server_url() is None:
        pytest.skip("TEST_DATABASE_URL is not set")
    return create_database()


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack().running() as fake:
        yield fake


def env_for(simulator: SimulatorServer, slack: FakeSlack, url: str, version: str, **extra: str):
    env = bot_env(simulator, slack, url, SENDGRID_API_VERSION=version, **extra)
    return {**env, "SENDGRID_API_URL": simulator.url_for(version)}


def send(server: ServeProcess, slack: FakeSlack, text: str, user: str, name: str) -> None:
    body = slash_command_body(text=text, user_id=user, response_url=slack.response_url(name))
    assert post_signed(server.url + "/slack/events", SECRET, body).status_code == 200


def changes(url: str) -> list[dict]:
    engine = create_engine(url)
    with engine.connect() as connection:
        rows = [dict(r._mapping) for r in connection.execute(select(credit_changes)).all()]
    engine.dispose()
    return rows


def audit_rows(url: str) -> list[dict]:
    engine = create_engine(url)
    with engine.connect() as connection:
        rows = [dict(r._mapping) for r in connection.execute(select(audit_events)).all()]
    engine.dispose()
    return rows


def dms_to(slack: FakeSlack, user: str) -> list[str]:
    return [
        str(c.payload.get("text"))
        for c in slack.state.calls_to("chat.postMessage")
        if c.payload.get("channel") == user
    ]


# --- SIGKILL at each point of a change ----------------------------------------------------


@pytest.mark.parametrize("point", ["before-the-write", "after-sendgrid-applied-it"])
@pytest.mark.parametrize("origin", ["direct", "approved"])
def test_a_killed_change_ends_failed_or_unknown_never_sending_and_is_never_sent_again(  # noqa: PLR0917
    simulator: SimulatorServer,
    slack: FakeSlack,
    database_url: str,
    version: str,
    point: str,
    origin: str,
):
    env = env_for(simulator, slack, database_url, version, SENDGRID_TIMEOUT="45")
    victim = ServeProcess(env).wait_healthy()
    try:
        if origin == "direct":
            arm(simulator, point)
            send(victim, slack, "add initech 500", ADMIN, "direct")  # one-off: no confirm
        else:
            command(victim.url, slack, "add globex 500", OPERATOR, "request")
            arm(simulator, point)
            click = approve_body(slack, approval_post(slack), ADMIN, "click")
            assert post_signed(victim.url + "/slack/events", SECRET, click).status_code == 200
        reached(simulator, point, database_url)
    finally:
        victim.kill()
    simulator.state.clear_faults()
    with serving(env):  # a new instance: the killed one is provably gone
        [change] = wait_until(
            lambda: [c for c in changes(database_url) if c["state"] in ("failed", "unknown")]
        )
    increments = len(simulator.state.writes(task="increment"))
    if point == "before-the-write":
        assert (change["state"], increments) == ("failed", 0)
        assert "nothing was changed" in change["detail"]
    else:
        assert (change["state"], increments) == ("unknown", 1)
        assert "verify the balance" in change["detail"]
    assert [c["state"] for c in changes(database_url)] == [change["state"]]
    outcomes = [r["outcome"] or "" for r in audit_rows(database_url)]
    assert not any(o == "sending" for o in outcomes)
    assert any(change["detail"] in o for o in outcomes)
    # The person whose reply was lost is told, in a DM or on the request's card.
    told = dms_to(slack, ADMIN) if origin == "direct" else dms_to(slack, OPERATOR)
    assert any(
        ("verify" if point != "before-the-write" else "nothing was changed") in t for t in told
    )
    if origin == "approved":
        status = request_status(database_url)
        assert status == ("unknown" if point != "before-the-write" else "failed")


def arm(simulator: SimulatorServer, point: str) -> None:
    if point == "before-the-write":
        simulator.state.add_fault(FaultRule(kind="latency", arg="60000", task="retrieve"))
    else:
        simulator.state.add_fault(FaultRule(kind="slow-write", arg="60000", task="increment"))


def reached(simulator: SimulatorServer, point: str, url: str) -> None:
    if point == "before-the-write":  # recorded as intent; the first read is held back
        wait_until(lambda: [c for c in changes(url) if c["state"] == "intent"])
    else:
        wait_until(lambda: simulator.state.writes(task="increment"))


def request_status(url: str) -> str:
    engine = create_engine(url)
    with engine.connect() as connection:
        status = connection.execute(select(approval_requests.c.status)).scalar_one()
    engine.dispose()
    return str(status)


# --- SIGTERM during a burst ---------------------------------------------------------------


def test_sigterm_during_a_burst_finishes_or_records_every_change_and_answers_everyone(
    simulator: SimulatorServer, slack: FakeSlack, tmp_path: Path
):
    url = f"sqlite:///{tmp_path / 'burst.sqlite3'}"
    simulator.state.add_fault(FaultRule(kind="latency", arg="500"))
    # 80 adds need 160 SendGrid calls, past the 120 a window allows: the last ones wait
    # longer than the drain, so the stop must cut the burst short.
    users = [f"U0BURST{n:02d}" for n in range(80)]
    env = env_for(simulator, slack, url, "v2", SENDGRID_RATE_LIMIT="120")
    server = ServeProcess({**env, "CREDITS_ADMINS": ",".join(users)})
    try:
        server.wait_healthy()
        threads = [
            threading.Thread(target=send, args=(server, slack, "add initech 1", user, user))
            for user in users
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wait_until(lambda: len(simulator.state.writes(task="increment")) >= 3, timeout=60)
    finally:
        server.stop()  # SIGTERM; gunicorn's graceful timeout bounds the stop
    assert server.process.returncode is not None
    rows = changes(url)
    assert len(rows) <= len(users)
    assert not [r for r in rows if r["state"] in ("intent", "sent")]
    applied = [r for r in rows if r["state"] == "applied"]
    unknown = [r for r in rows if r["state"] == "unknown"]
    increments = len(simulator.state.writes(task="increment"))
    assert len(applied) <= increments <= len(applied) + len(unknown)
    assert len({c.params.get("user") for c in simulator.state.writes()}) == 1
    # Everyone heard something, and what they heard is true of their own change.
    state_of = {r["actor_id"]: r["state"] for r in rows}
    replies = {
        r["_path"].rsplit("/", 1)[-1]: str(r) for r in slack.state.responses if not is_notice(r)
    }
    heard = {"done": 0, "restarting": 0, "dm": 0}
    for user in users:
        reply = replies.get(user)
        if reply is None:
            assert state_of.get(user) in ("failed", "unknown"), user
            assert dms_to(slack, user), user
            heard["dm"] += 1
        elif "Add done" in reply:
            assert state_of.get(user) == "applied", user
            heard["done"] += 1
        else:
            assert "restarting, so nothing was done" in reply, reply
            assert state_of.get(user) in (None, "failed"), user
            heard["restarting"] += 1
    assert heard["restarting"] + heard["dm"] > 0, heard  # the stop did cut the burst short


# --- a rolling deploy ---------------------------------------------------------------------


def test_a_new_instance_never_marks_live_peers_work_as_abandoned(
    simulator: SimulatorServer, slack: FakeSlack, database_url: str
):
    simulator.state.add_fault(FaultRule(kind="slow-write", arg="4000", task="increment"))
    env = env_for(simulator, slack, database_url, "v2", SENDGRID_TIMEOUT="20")
    first, second = ServeProcess(env), ServeProcess(env)
    try:
        first.wait_healthy()
        second.wait_healthy()
        command(first.url, slack, "add globex 500", OPERATOR, "r1")
        command(first.url, slack, "add initech 700", OPERATOR, "r2")
        posts = wait_until(lambda: len(approval_posts(slack)) >= 2 and approval_posts(slack))
        for server, post, name in ((first, posts[0], "c1"), (second, posts[1], "c2")):
            body = approve_body(slack, post, ADMIN, name)
            assert post_signed(server.url + "/slack/events", SECRET, body).status_code == 200
        wait_until(lambda: len(simulator.state.writes(task="increment")) == 2)
        with serving(env):  # the deploy's new instance starts while both are executing
            wait_until(
                lambda: len([c for c in changes(database_url) if c["state"] == "applied"]) == 2,
                timeout=30,
            )
    finally:
        first.stop()
        second.stop()
    said = [str(c.payload) for c in slack.state.calls_to("chat.update")]
    said += [str(c.payload) for c in slack.state.calls_to("chat.postMessage")]
    assert not any("verify" in s for s in said)
    assert not [r for r in audit_rows(database_url) if r["action"] == "orphaned"]


def approval_posts(slack: FakeSlack):
    return [
        c
        for c in slack.state.calls_to("chat.postMessage")
        if c.payload.get("channel") == "C0APPROVE"
    ]


# --- the database goes away while SendGrid is answering -------------------------------------


@pytest.mark.postgres
@pytest.mark.parametrize("origin", ["direct", "approved"])
def test_a_database_outage_during_the_call_tells_what_sendgrid_did_and_records_it_later(
    simulator: SimulatorServer, slack: FakeSlack, origin: str
):
    if server_url() is None:
        pytest.skip("TEST_DATABASE_URL is not set")
    url = create_database()
    simulator.state.add_fault(FaultRule(kind="slow-write", arg="2500", task="increment"))
    env = env_for(simulator, slack, url, "v2", SENDGRID_TIMEOUT="20")
    with serving(env) as server:
        if origin == "direct":
            send(server, slack, "add initech 300", ADMIN, "direct")
        else:
            command(server.url, slack, "add globex 800", OPERATOR, "request")
            click = approve_body(slack, approval_post(slack), ADMIN, "click")
            assert post_signed(server.url + "/slack/events", SECRET, click).status_code == 200
        wait_until(lambda: simulator.state.writes(task="increment"))
        with database_unreachable(url):
            [reply] = wait_for_answers(slack, 1 if origin == "direct" else 2)[-1:]
            said = str(reply)
            assert "not in the audit trail yet" in said
            assert "nothing was done" not in said
            assert ("Add done" in said) if origin == "direct" else ("approved and applied" in said)
        # Back: the kept outcome is recorded by the next heartbeat, once.
        [change] = wait_until(
            lambda: [c for c in changes(url) if c["state"] == "applied"], timeout=30
        )
        assert json.loads(change["after_balance"])["remaining"] is not None
        if origin == "approved":
            assert request_status(url) == "approved"
            wait_until(
                lambda: [
                    c
                    for c in slack.state.calls_to("chat.update")
                    if "approved and applied" in str(c.payload)
                ]
            )
    assert len(simulator.state.writes(task="increment")) == 1
    assert not [r for r in audit_rows(url) if r["outcome"] == "sending"]


class database_unreachable:  # a context manager, named like `contextlib`'s
    """Refuse new connections to the database and end the existing ones."""

    def __init__(self, url: str) -> None:
        self._name = make_url(url).database
        self._admin = server_url()

    def _run(self, sql: str) -> None:
        assert self._admin is not None
        engine = create_engine(self._admin, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text(sql))
        engine.dispose()

    def __enter__(self) -> None:
        self._run(f'ALTER DATABASE "{self._name}" ALLOW_CONNECTIONS false')
        self._run(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "  # noqa: S608 (our name)
            f"WHERE datname = '{self._name}' AND pid <> pg_backend_pid()"
        )

    def __exit__(self, *exc: object) -> None:
        self._run(f'ALTER DATABASE "{self._name}" ALLOW_CONNECTIONS true')
