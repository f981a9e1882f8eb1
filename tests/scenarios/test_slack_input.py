"""Slack input at the HTTP edge: parsing, size and time limits, replays, the database down.

The WSGI layer reads at most a small, bounded body within a deadline, checks the
signature once, parses the form itself and hands Bolt the parsed body. The
scenarios run the real app on 127.0.0.1; the slow-client and memory ones run a
real `credits-bot serve` (gunicorn) process.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
import requests

from bot.config import load_settings
from bot.services import build_services
from bot.simulator import DEMO_API_KEY, DEMO_API_USER, SimulatorServer
from bot.transports.slack.app import create_app, post_ack_work
from bot.transports.slack.approvals import APPROVE_ACTION
from bot.transports.slack.wsgi import SlackGate, build_wsgi_app, create_wsgi_app
from tests.fakes.processes import clean_env
from tests.fakes.processes import serving as serving_process
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import post_signed, signed_headers, slash_command_body
from tests.fakes.wsgi_server import serving
from tests.helpers import wait_until
from tests.pg import create_database, drop_database, server_url
from tests.scenarios.conftest import (
    APPROVAL_CHANNEL,
    BOT_TOKEN,
    ROLE_ENV,
    SIGNING_SECRET,
    USERS,
    BotFactory,
    BotUnderTest,
)

REFUSED_WITHOUT_DATABASE = "cannot make changes right now; nothing was done"


@pytest.fixture
def api_version() -> str:
    """Input handling does not depend on the SendGrid API version: v2 only here."""
    return "v2"


# --- raw HTTP, for requests no HTTP client library would send --------------------------


def open_request(url: str, headers: dict[str, str], body: bytes = b"") -> socket.socket:
    """Send a request line, `headers` and the first `body` bytes; leave the socket open."""
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    connection = socket.create_connection((parts.hostname, parts.port), timeout=30)
    head = [f"POST {parts.path or '/'} HTTP/1.1", f"Host: {parts.netloc}"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    connection.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
    return connection


def status_of(connection: socket.socket) -> int:
    """The status code of the answer on `connection` (reads just the status line)."""
    received = b""
    while b"\r\n" not in received:
        chunk = connection.recv(1024)
        if not chunk:
            raise AssertionError(f"connection closed before an answer: {received!r}")
        received += chunk
    return int(received.split(b" ", 2)[1])


def forged_headers(length: int | None) -> dict[str, str]:
    """What a forger sends: a fresh timestamp and a signature that cannot be checked
    without reading the whole body."""
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": str(int(time.time())),
        "X-Slack-Signature": "v0=" + "0" * 64,
    }
    if length is None:
        return {**headers, "Transfer-Encoding": "chunked"}
    return {**headers, "Content-Length": str(length)}


# --- (a) the word "payload" -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fields", "seen"),
    [
        ("show payload-team", {}, "no subuser or customer called `payload-team`"),
        ("show acme-eu", {"channel_name": "payload-incidents"}, "credits remaining"),
        ("show acme-eu", {"team_domain": "payload"}, "credits remaining"),
    ],
)
def test_the_word_payload_anywhere_in_a_slash_command_is_just_text(
    bot: BotUnderTest, text: str, fields: dict[str, str], seen: str
):
    before = len(bot.slack.state.responses)
    body = slash_command_body(
        text=text, user_id=USERS["viewer"], response_url=bot.slack.response_url("p"), **fields
    )
    response = post_signed(bot.events_url, SIGNING_SECRET, body)
    assert response.status_code == 200, response.text
    [message] = bot.slack.state.wait_for_responses(before + 1)[before:]
    assert seen in str(message)


# --- (b) signed but malformed payloads --------------------------------------------------

MALFORMED = {
    "not json": "payload={not json",
    "empty": "payload=",
    "a list": urlencode({"payload": "[1, 2]"}),
    "a string": urlencode({"payload": '"block_actions"'}),
    "twice": urlencode([("payload", "{}"), ("payload", "{}")]),
    "not UTF-8": "text=%ff%fe&command=%2Fcredits",
}


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_signed_but_malformed_body_is_400_and_nothing_happens(bot: BotUnderTest, body: str):
    response = post_signed(bot.events_url, SIGNING_SECRET, body)
    assert response.status_code == 400
    reply = bot.command("show globex", user=USERS["viewer"])  # a sentinel after it
    assert "credits remaining" in reply.text
    assert len(bot.slack.state.responses) == 1
    assert [c.task for c in bot.simulator.state.calls()] == ["retrieve"]


# --- (c) size and time limits, in-process -----------------------------------------------


def test_a_body_over_the_cap_is_refused_with_413_before_it_is_sent(bot: BotUnderTest):
    connection = open_request(bot.events_url, forged_headers(10 * 1024 * 1024))
    with connection:
        assert status_of(connection) == 413


def test_an_unsigned_body_is_refused_with_401_before_it_is_sent(bot: BotUnderTest):
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Content-Length": "4000"}
    connection = open_request(bot.events_url, headers, b"text=")
    with connection:
        assert status_of(connection) == 401


@pytest.mark.parametrize(
    "timestamp",
    [str(int(time.time()) - 600), "9" * 5000, "١٧٠٠٠٠٠٠٠٠", "-1", ""],
    ids=["stale", "5000 digits", "not ASCII digits", "negative", "empty"],
)
def test_a_bad_timestamp_is_refused_with_401_before_the_body_is_sent(
    bot: BotUnderTest, timestamp: str
):
    headers = {**forged_headers(4000), "X-Slack-Request-Timestamp": timestamp}
    connection = open_request(bot.events_url, headers, b"text=")
    with connection:
        assert status_of(connection) == 401


# --- (d) timestamps from the future, and the replay window ------------------------------


def test_a_timestamp_from_the_future_beyond_a_small_skew_is_401(bot: BotUnderTest):
    body = slash_command_body(
        text="add acme-us 500", user_id=USERS["admin"], response_url=bot.slack.response_url()
    )
    future = post_signed(bot.events_url, SIGNING_SECRET, body, timestamp=int(time.time()) + 280)
    assert future.status_code == 401
    reply = bot.command("show acme-us", user=USERS["viewer"])  # a sentinel after it
    assert "credits remaining" in reply.text
    assert bot.simulator.state.writes() == []


def test_a_timestamp_a_little_ahead_is_accepted(bot: BotUnderTest):
    body = slash_command_body(
        text="show acme-us", user_id=USERS["viewer"], response_url=bot.slack.response_url()
    )
    ahead = post_signed(bot.events_url, SIGNING_SECRET, body, timestamp=int(time.time()) + 30)
    assert ahead.status_code == 200
    assert "credits remaining" in str(bot.slack.state.wait_for_responses(1))


class ManualClock:
    """Unix time that moves only when told to."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def bot_settings(simulator: SimulatorServer, slack: FakeSlack, database_url: str) -> Any:
    return load_settings(
        {
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": slack.api_url,
            "SENDGRID_API_USER": DEMO_API_USER,
            "SENDGRID_API_KEY": DEMO_API_KEY,
            "SENDGRID_API_URL": simulator.url,
            "DATABASE_URL": database_url,
            "CREDITS_APPROVAL_CHANNEL": APPROVAL_CHANNEL,
            **ROLE_ENV,
        }
    )


def test_a_replay_is_refused_for_as_long_as_its_timestamp_is_valid(
    simulator: SimulatorServer,
    fake_slack: FakeSlack,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
):
    caplog.set_level(logging.WARNING, logger="bot.slack")
    clock = ManualClock()
    settings = bot_settings(simulator, fake_slack, f"sqlite:///{tmp_path / 'bot.sqlite3'}")
    with serving(build_wsgi_app(settings, clock=clock)) as url:
        bot = BotUnderTest(url, fake_slack, simulator, itertools.count(1))
        body = slash_command_body(
            text="add acme-us 500", user_id=USERS["admin"], response_url=fake_slack.response_url()
        )
        headers = signed_headers(SIGNING_SECRET, body, timestamp=int(clock.now) + 50)
        assert requests.post(bot.events_url, data=body, headers=headers, timeout=10).ok
        fake_slack.state.wait_for_responses(1)
        # 345 s later the stamp is 295 s old, still inside Slack's 5 minutes; another
        # request meanwhile lets the guard prune what it no longer needs.
        clock.now += 345
        for name in ("a", "b"):
            help_body = slash_command_body(
                text="help", user_id=USERS["viewer"], response_url=fake_slack.response_url(name)
            )
            stamp = int(clock.now)
            assert post_signed(bot.events_url, SIGNING_SECRET, help_body, timestamp=stamp).ok
        replay = requests.post(bot.events_url, data=body, headers=headers, timeout=10)
        assert replay.ok  # acknowledged; its work finds the signature recorded
        wait_until(lambda: "refused a replayed request" in caplog.text)
        clock.now += 10  # now Slack's window has passed: refused as stale
        stale = requests.post(bot.events_url, data=body, headers=headers, timeout=10)
        assert stale.status_code == 401
        fake_slack.state.wait_for_responses(3)
        assert len(simulator.state.writes()) == 1


# --- the database down: reads answer, writes are refused --------------------------------


@pytest.fixture
def doomed_database() -> Iterator[str]:
    """A PostgreSQL database of this test's own, which the test may drop."""
    if server_url() is None:
        pytest.skip("needs TEST_DATABASE_URL (PostgreSQL)")
    url = create_database()
    yield url
    with contextlib.suppress(RuntimeError):  # already dropped by the test
        drop_database(url)


def test_with_the_database_gone_reads_answer_and_writes_are_refused(
    start_bot: BotFactory, doomed_database: str
):
    bot = start_bot(DATABASE_URL=doomed_database)
    requested = bot.command("add globex 5000", user=USERS["operator"])
    assert "Sent for approval as request" in requested.text
    drop_database(doomed_database)

    assert "Credits bot" in bot.command("help", user=USERS["viewer"]).text
    assert "credits remaining" in bot.command("show acme-eu", user=USERS["viewer"]).text
    for text in ("add acme-us 500", "unlimit hooli", "threshold acme-eu 100"):
        assert REFUSED_WITHOUT_DATABASE in bot.command(text, user=USERS["admin"]).text
    click = bot.click(APPROVE_ACTION, USERS["approver"])
    assert REFUSED_WITHOUT_DATABASE in click.text
    # The mark comes from the WSGI layer, never from a header of the same name.
    body = slash_command_body(
        text="add acme-us 500", user_id=USERS["admin"], response_url=bot.slack.response_url("f")
    )
    forged = {**signed_headers(SIGNING_SECRET, body), "X-Credits-Replay-Checked": "true"}
    assert requests.post(bot.events_url, data=body, headers=forged, timeout=10).ok
    assert REFUSED_WITHOUT_DATABASE in str(bot.slack.state.wait_for_responses(8)[7])
    assert bot.simulator.state.writes() == []


# --- (c) under gunicorn: slow bodies and huge bodies ------------------------------------


def serve_env(simulator: SimulatorServer, slack: FakeSlack, tmp_path: Path) -> dict[str, str]:
    return clean_env(
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=slack.api_url,
        SENDGRID_API_USER=DEMO_API_USER,
        SENDGRID_API_KEY=DEMO_API_KEY,
        SENDGRID_API_URL=simulator.url,
        DATABASE_URL=f"sqlite:///{tmp_path / 'bot.sqlite3'}",
        LOG_LEVEL="WARNING",
    )


def test_healthz_answers_while_40_clients_hold_half_sent_bodies(
    simulator: SimulatorServer, fake_slack: FakeSlack, tmp_path: Path
):
    """Half of them unsigned (refused unread), half with a signature to check (so the
    gate must read their bodies); none of them ever sends the rest."""
    unsigned = {"Content-Type": "application/x-www-form-urlencoded", "Content-Length": "2000"}
    half = b"text=" + b"x" * 995
    with serving_process(serve_env(simulator, fake_slack, tmp_path)) as server:
        events = server.url + "/slack/events"
        stalled = [
            open_request(events, forged_headers(2000) if n % 2 else unsigned, half)
            for n in range(40)
        ]
        try:
            health = requests.get(server.url + "/healthz", timeout=30)
            assert (health.status_code, health.json()) == (200, {"ok": True})
            statuses = [status_of(connection) for connection in stalled]
            assert statuses == [408 if n % 2 else 401 for n in range(40)]
        finally:
            for connection in stalled:
                connection.close()


def worker_of(master: int) -> int:
    """The gunicorn worker: the one child process of `master`."""

    def children() -> list[int]:
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == master:
                found.append(int(stat.parent.name))
        return found

    [worker] = wait_until(children)
    return worker


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


HUNDRED_MIB = 100 * 1024 * 1024


@pytest.mark.parametrize(
    "headers",
    [
        {"Content-Type": "application/x-www-form-urlencoded", "Content-Length": str(HUNDRED_MIB)},
        forged_headers(HUNDRED_MIB),
        forged_headers(None),
    ],
    ids=["unsigned", "forged signature", "chunked, forged signature"],
)
def test_a_100_mib_body_is_refused_without_the_worker_growing(
    simulator: SimulatorServer, fake_slack: FakeSlack, tmp_path: Path, headers: dict[str, str]
):
    chunked = "Transfer-Encoding" in headers
    env = serve_env(simulator, fake_slack, tmp_path)
    env["WEB_CONCURRENCY"] = "1"  # the one worker that takes the body is the one measured
    with serving_process(env) as server:
        worker = worker_of(server.process.pid)
        before = peak_rss_kib(worker)
        connection = open_request(server.url + "/slack/events", headers)
        piece = b"text=" + b"x" * (1024 * 1024 - 5)
        if chunked:
            piece = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"

        def send_everything() -> None:
            try:
                for _ in range(100):
                    connection.sendall(piece)
                if chunked:
                    connection.sendall(b"0\r\n\r\n")
            except OSError:
                pass  # the server stopped listening: that is the point

        sender = threading.Thread(target=send_everything)
        sender.start()
        try:
            status = status_of(connection)
        finally:
            sender.join(timeout=60)
            connection.close()
        grown_mib = (peak_rss_kib(worker) - before) / 1024
        assert grown_mib < 50, f"the worker grew by {grown_mib:.0f} MiB"
        # Too large (413), or, on a machine too busy to take 64 KiB within the body
        # deadline, too slow (408): refused either way, before the body was read. A
        # chunked body may also end early in gunicorn's reader on a busy machine; the
        # part read is then refused for its forged signature (401). What matters is
        # that nothing past the cap was read: the worker did not grow.
        allowed = (413, 408, 401) if chunked else (413, 408)
        assert status in allowed, status
        assert requests.get(server.url + "/healthz", timeout=10).ok


# --- the replay record is off the ack's path --------------------------------------------


class HeldSeenRequests:
    """A replay record whose database answers only when the test says so: `first`
    (True: the request is new, False: a replay)."""

    def __init__(self, first: bool = True) -> None:
        self.first = first
        self.asked = threading.Event()
        self.answer = threading.Event()

    def queue(self, signature: str, *, signed_at: object, now: object) -> str:
        return signature  # put in line at admission: nothing waits, nothing is written

    def outcome(self, queued: str) -> bool:
        self.asked.set()
        assert self.answer.wait(10)
        return self.first


@contextlib.contextmanager
def held_record_app(
    simulator: SimulatorServer, fake_slack: FakeSlack, tmp_path: Path, seen: HeldSeenRequests
) -> Iterator[str]:
    """The bot's WSGI app with `seen` as its replay record; yields /slack/events' URL."""
    settings = bot_settings(simulator, fake_slack, f"sqlite:///{tmp_path / 'bot.sqlite3'}")
    services = build_services(settings)
    work = post_ack_work()
    app = create_app(services, work=work, verified_upstream=True)
    gate = SlackGate(signing_secret=SIGNING_SECRET, seen=seen)  # type: ignore[arg-type]
    try:
        with serving(create_wsgi_app(app, gate=gate)) as url:
            yield url + "/slack/events"
            seen.answer.set()
            work.wait_idle(10)
    finally:
        work.close()
        services.close()


def send(url: str, fake_slack: FakeSlack, text: str, user: str) -> None:
    body = slash_command_body(
        text=text, user_id=USERS[user], response_url=fake_slack.response_url()
    )
    assert post_signed(url, SIGNING_SECRET, body, timeout=5).status_code == 200


def test_the_ack_does_not_wait_for_the_replay_record(
    simulator: SimulatorServer, fake_slack: FakeSlack, tmp_path: Path
):
    seen = HeldSeenRequests()
    with held_record_app(simulator, fake_slack, tmp_path, seen) as url:
        send(url, fake_slack, "show acme-eu", "viewer")
        assert not seen.answer.is_set()  # acknowledged while the record was still pending
        assert fake_slack.state.responses == []  # and the work waits for the record
        seen.answer.set()
        [reply] = fake_slack.state.wait_for_responses(1)
    assert "acme-eu" in str(reply)


def test_a_read_asks_sendgrid_while_its_replay_record_is_made_and_answers_after(
    simulator: SimulatorServer, fake_slack: FakeSlack, tmp_path: Path
):
    """A read's only effect is its reply: its SendGrid call goes out at once, beside
    the replay record, and the reply waits for the record (issue 16)."""
    seen = HeldSeenRequests(first=True)
    with held_record_app(simulator, fake_slack, tmp_path, seen) as url:
        send(url, fake_slack, "show acme-eu", "viewer")
        wait_until(lambda: any(c.user == "acme-eu" for c in simulator.state.calls()))
        assert not seen.answer.is_set()
        time.sleep(0.2)
        assert fake_slack.state.responses == []  # not answered before the record says "new"
        seen.answer.set()
        [reply] = fake_slack.state.wait_for_responses(1)
    assert "acme-eu" in str(reply)


def test_a_replayed_read_is_not_answered(
    simulator: SimulatorServer,
    fake_slack: FakeSlack,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
):
    caplog.set_level(logging.WARNING, logger="bot.slack")
    seen = HeldSeenRequests(first=False)
    with held_record_app(simulator, fake_slack, tmp_path, seen) as url:
        send(url, fake_slack, "show acme-eu", "viewer")
        wait_until(lambda: any(c.user == "acme-eu" for c in simulator.state.calls()))
        seen.answer.set()
        wait_until(lambda: "refused a replayed request" in caplog.text)
    assert fake_slack.state.responses == []


def test_a_change_waits_for_its_replay_record_before_anything_is_sent(
    simulator: SimulatorServer, fake_slack: FakeSlack, tmp_path: Path
):
    seen = HeldSeenRequests(first=True)
    with held_record_app(simulator, fake_slack, tmp_path, seen) as url:
        send(url, fake_slack, "add acme-us 500", "admin")
        assert seen.asked.wait(10)
        time.sleep(0.3)
        assert simulator.state.calls() == []  # neither the read before nor the write
        seen.answer.set()
        [reply] = fake_slack.state.wait_for_responses(1)
    assert "Add done for *acme-us*" in str(reply)
    assert len(simulator.state.writes()) == 1
