"""The WSGI application: `POST /slack/events` (Bolt), `GET /healthz`, `/readyz`, `/metrics`.

`credits-bot serve` runs it under gunicorn; the Procfile's `web:` runs the same
factory, `bot.transports.slack.wsgi:application_from_environment()`.

Every request to Bolt passes one gate here first, in this order, and each step
refuses as early as it can, so nobody unsigned costs more than a header read:

1. `Content-Length` above `MAX_BODY` → 413, nothing read.
2. no signature, or a timestamp outside Slack's 5 minutes (or more than
   `FUTURE_SKEW` ahead) → 401, nothing read.
3. the body, at most `MAX_BODY` bytes, within `BODY_DEADLINE` → else 413 / 408.
4. the signature, checked once, here → 401. Bolt's own check is off.
5. the form, parsed here (never by searching the text for a word) → 400 if malformed.
6. Bolt dispatches the parsed body to the listeners, with a `ReplayClaim` in its
   context (`REPLAY_CLAIM`): the signature is recorded as seen when the request's
   work starts, after the ack (see `bot.adapters.store.replay`). A replay's work
   does nothing; if the database cannot say, the work goes on "replay not
   checked", and the command layer refuses to change anything for it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from slack_bolt import App, BoltRequest
from slack_bolt.adapter.wsgi.http_response import WsgiHttpResponse
from slack_sdk import WebClient

from bot.adapters.store import SqlStore
from bot.adapters.store.replay import ReplayClaim, SeenRequests
from bot.config import Settings, load_settings
from bot.domain.ports import CreditsBackend
from bot.errors import ConfigError
from bot.logs import configure_logging
from bot.observability.context import request_scope
from bot.observability.prometheus import PrometheusMetrics
from bot.observability.readiness import Readiness, database_check, sendgrid_check, slack_check
from bot.services import Services, build_services
from bot.transports.assembly import Upkeep, stop_gracefully
from bot.transports.slack.acks import AcksInFlight
from bot.transports.slack.app import (
    DATABASE_THREADS,
    REPLAY_CHECKED,
    REPLAY_CLAIM,
    PostAckWork,
    create_app,
    post_ack_work,
)

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

EVENTS_PATH = "/slack/events"
# How long a stopping worker lets work in flight finish before recording it as
# unfinished; gunicorn's graceful_timeout must be longer (see server.py, Procfile).
DRAIN_SECONDS = 15.0

# Slack's slash commands and interactions are a few KB (a block_actions payload
# carries the message's blocks: 50 blocks at most, well under 64 KiB). Anything
# larger is not from Slack, and is refused before it is read.
MAX_BODY = 64 * 1024
# Slack gives up on an answer after 3 seconds: a body still arriving after that
# cannot be answered in time, and a thread waiting for it is one fewer for others.
BODY_DEADLINE = 3.0
# Slack refuses timestamps more than 5 minutes old; one from the future is refused
# beyond a small clock skew (Slack's clock and ours).
SLACK_WINDOW = 300
FUTURE_SKEW = 60
# A form with more fields than this is not Slack's (a slash command has 13).
MAX_FIELDS = 50
READ_STEP = 16 * 1024
# Nobody may send the mark the gate sets: a header of the same name is dropped.
_FORGEABLE = "x-" + REPLAY_CHECKED.replace("_", "-")

logger = logging.getLogger("bot.slack")


@dataclass(frozen=True, slots=True)
class Refusal:
    """An HTTP answer that ends the request before Bolt sees it."""

    status: str
    reason: str


@dataclass(frozen=True, slots=True)
class Admitted:
    """A signed request, read and parsed, ready for Bolt."""

    body: dict[str, Any]
    claim: ReplayClaim | None


class SlackGate:
    """Steps 1–5 above: decides whether a request reaches Bolt, and with what body
    and replay claim."""

    def __init__(
        self,
        *,
        signing_secret: str,
        seen: SeenRequests | None,
        clock: Callable[[], float] = time.time,
        max_body: int = MAX_BODY,
        body_deadline: float = BODY_DEADLINE,
    ) -> None:
        if not signing_secret:
            raise ConfigError("SLACK_SIGNING_SECRET is required to serve Slack over HTTP")
        self._secret = signing_secret.encode()
        self._seen = seen
        self._clock = clock
        self._max_body = max_body
        self._body_deadline = body_deadline

    def admit(self, environ: WSGIEnvironment) -> Admitted | Refusal:
        length = _content_length(environ)
        if length is not None and length > self._max_body:
            return Refusal("413 Content Too Large", "body too large")
        timestamp = environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP", "")
        signature = environ.get("HTTP_X_SLACK_SIGNATURE", "")
        well_formed = timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12
        if not well_formed or not signature.startswith("v0="):
            return Refusal("401 Unauthorized", "unsigned request")
        now = self._clock()
        if not -FUTURE_SKEW <= now - int(timestamp) <= SLACK_WINDOW:
            return Refusal("401 Unauthorized", "stale or future timestamp")
        try:
            raw = read_body(
                environ, length=length, limit=self._max_body, timeout=self._body_deadline
            )
        except BodyTooLarge:
            return Refusal("413 Content Too Large", "body too large")
        except BodyTooSlow:
            return Refusal("408 Request Timeout", "body too slow")
        except BodyIncomplete:
            return Refusal("400 Bad Request", "body shorter than announced")
        if not self._signed(raw, timestamp, signature):
            return Refusal("401 Unauthorized", "bad signature")
        try:
            body = parse_slack_body(raw, environ.get("CONTENT_TYPE", ""))
        except ValueError:
            return Refusal("400 Bad Request", "malformed body")
        claim = None
        if self._seen is not None:
            claim = ReplayClaim(
                self._seen,
                signature,
                signed_at=datetime.fromtimestamp(int(timestamp), UTC),
                now=datetime.fromtimestamp(now, UTC),
            )
        return Admitted(body=body, claim=claim)

    def _signed(self, raw: bytes, timestamp: str, signature: str) -> bool:
        base = b"v0:" + timestamp.encode() + b":" + raw
        expected = "v0=" + hmac.new(self._secret, base, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, signature)


class BodyTooLarge(Exception):
    pass


class BodyTooSlow(Exception):
    pass


class BodyIncomplete(Exception):
    pass


def _content_length(environ: WSGIEnvironment) -> int | None:
    value = environ.get("CONTENT_LENGTH") or ""
    if not value:
        return None
    if not value.isdigit():
        return 1 << 62  # malformed: treated as too large
    return int(value)


def read_body(environ: WSGIEnvironment, *, length: int | None, limit: int, timeout: float) -> bytes:
    """Read the request body: at most `limit` bytes, within `timeout` seconds.

    Without a Content-Length (a chunked body) the server must say the input ends
    (`wsgi.input_terminated`, as gunicorn does); else there is no body. Under
    gunicorn the deadline is enforced on the client's socket (`gunicorn.socket`),
    checked again before every read of at most `READ_STEP` bytes; other servers
    read without a deadline.
    """
    if length is None and not environ.get("wsgi.input_terminated"):
        return b""
    wanted = limit + 1 if length is None else length
    stream = environ["wsgi.input"]
    client = environ.get("gunicorn.socket")
    previous = client.gettimeout() if client is not None else None
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    received = 0
    try:
        while received < wanted:
            if client is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise BodyTooSlow
                client.settimeout(remaining)
            chunk = stream.read(min(READ_STEP, wanted - received))
            if not chunk:
                if client is not None and time.monotonic() >= deadline:
                    raise BodyTooSlow  # gunicorn's chunked reader ends quietly on a timeout
                break
            chunks.append(chunk)
            received += len(chunk)
    except TimeoutError as error:
        raise BodyTooSlow from error
    finally:
        if client is not None:
            client.settimeout(previous)
    if received > limit:
        raise BodyTooLarge
    if length is not None and received < length:
        raise BodyIncomplete
    return b"".join(chunks)


def parse_slack_body(raw: bytes, content_type: str) -> dict[str, Any]:
    """The body as Bolt's listeners expect it; ValueError if it is not what Slack sends.

    A slash command is a form; an interaction is a form whose one `payload` field
    holds a JSON object; the Events API sends a JSON object.
    """
    text = raw.decode("utf-8")  # UnicodeDecodeError is a ValueError
    if content_type.split(";", maxsplit=1)[0].strip().lower() == "application/json":
        return _json_object(text)
    pairs = parse_qsl(text, keep_blank_values=True, errors="strict", max_num_fields=MAX_FIELDS)
    fields = dict(pairs)
    if len(fields) != len(pairs):
        raise ValueError("a field is given twice")
    if "payload" in fields:
        return _json_object(fields["payload"])
    return fields


def _json_object(text: str) -> dict[str, Any]:
    value = json.loads(text)  # JSONDecodeError is a ValueError
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def create_wsgi_app(
    bolt_app: App,
    *,
    gate: SlackGate,
    metrics: PrometheusMetrics | None = None,
    readiness: Readiness | None = None,
    acks: AcksInFlight | None = None,
) -> WSGIApplication:
    """Wrap a Bolt app: requests `gate` admits go to Bolt; `/healthz`, `/readyz` and
    `/metrics` answer here.

    `bolt_app` must not verify signatures itself (the gate did, on the raw body).
    Each Slack request gets a request id (logged from its ack to its answer), and is
    counted in `acks` while it is being acknowledged (the work pool waits for them).
    """

    def application(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO")
        if path == "/healthz":
            return _respond(start_response, "200 OK", {"ok": True})
        if path == "/readyz" and readiness is not None:
            return _readyz(readiness, start_response)
        if path == "/metrics" and metrics is not None:
            body, content_type = metrics.render()
            start_response("200 OK", [("Content-Type", content_type)])
            return [body]
        if path != EVENTS_PATH:
            return _answer(start_response, "404 Not Found", "not found")
        if environ.get("REQUEST_METHOD") != "POST":
            return _answer(start_response, "405 Method Not Allowed", "POST only")
        with request_scope() as request:
            statuses: list[str] = []

            def recording_start_response(status: str, headers: Any, *exc_info: Any) -> Any:
                statuses.append(status)
                return start_response(status, headers, *exc_info)

            if acks is None:
                answer = slack_events(environ, recording_start_response)
            else:
                with acks.acking():
                    answer = slack_events(environ, recording_start_response)
            if metrics is not None:
                metrics.acknowledged(request.elapsed())
            logger.info(
                "answered %s %s: %s in %.0f ms",
                environ.get("REQUEST_METHOD"),
                path,
                statuses[0] if statuses else "-",
                request.elapsed() * 1000,
            )
            return answer

    def slack_events(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        verdict = gate.admit(environ)
        if isinstance(verdict, Refusal):
            logger.info("refused a request to %s: %s", EVENTS_PATH, verdict.reason)
            return _answer(start_response, verdict.status, verdict.reason)
        return _dispatch(bolt_app, environ, verdict, start_response)

    return application


def _respond(start_response: StartResponse, status: str, document: object) -> list[bytes]:
    return _answer(start_response, status, json.dumps(document), "application/json")


def _readyz(readiness: Readiness, start_response: StartResponse) -> list[bytes]:
    """200 when every check passes, else 503 naming the failing ones."""
    results = readiness.check()
    failing = [r.name for r in results if not r.ok]
    document = {
        "ok": not failing,
        "failing": failing,
        "checks": {r.name: {"ok": r.ok, "detail": r.detail} for r in results},
    }
    status = "503 Service Unavailable" if failing else "200 OK"
    return _respond(start_response, status, document)


def _dispatch(
    bolt_app: App, environ: WSGIEnvironment, admitted: Admitted, start_response: StartResponse
) -> Iterable[bytes]:
    headers = {
        key[5:].replace("_", "-").lower(): value
        for key, value in environ.items()
        if key.startswith("HTTP_") and key[5:].replace("_", "-").lower() != _FORGEABLE
    }
    # Bolt takes a raw body in HTTP mode: hand it the parsed one, as JSON, which
    # Bolt reads back as it is (a JSON object is never searched for a word).
    headers["content-type"] = "application/json"
    request = BoltRequest(
        body=json.dumps(admitted.body),
        query=environ.get("QUERY_STRING", ""),
        headers=headers,
        context={REPLAY_CLAIM: admitted.claim},
    )
    response = bolt_app.dispatch(request)
    answer = WsgiHttpResponse(status=response.status, headers=response.headers, body=response.body)
    start_response(answer.status, answer.get_headers())
    return answer.get_body()


def _answer(
    start_response: StartResponse, status: str, text: str, content_type: str = "text/plain"
) -> list[bytes]:
    body = text.encode()
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]


class ServedApp:
    """The WSGI app of one `serve` process, with what its process needs to stop well."""

    def __init__(
        self,
        application: WSGIApplication,
        *,
        services: Services,
        work: PostAckWork,
        upkeep: Upkeep,
    ) -> None:
        self._application = application
        self._services = services
        self._work = work
        self._upkeep = upkeep

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return self._application(environ, start_response)

    @property
    def store(self) -> SqlStore:
        return self._services.database

    @property
    def work(self) -> PostAckWork:
        return self._work

    def close(self) -> None:
        """Stop this app's upkeep (its heartbeat and recovery) and close its database
        connections, e.g. when a test is done with it; `shutdown` is the process's
        graceful stop."""
        self._upkeep.stop()
        self._work.close()
        self._services.close()

    def shutdown(self, timeout: float = DRAIN_SECONDS) -> None:
        """SIGTERM (gunicorn's `worker_exit`): finish or record the work in flight."""
        stop_gracefully(
            self._services.database,
            self._services.changes,
            wait_idle=self._work.wait_idle,
            timeout=timeout,
        )
        self._upkeep.stop()


def build_wsgi_app(
    settings: Settings,
    *,
    clock: Callable[[], float] = time.time,
    backend: CreditsBackend | None = None,
    web_client: WebClient | None = None,
) -> ServedApp:
    """The HTTP-mode app of one `serve` worker process: its services, the Bolt app over
    them, the WSGI edge, and this instance's upkeep, started here (the process's entry
    point; the app factory starts nothing)."""
    settings.require("SLACK_BOT_TOKEN")
    secret = settings.slack_signing_secret.reveal() if settings.slack_signing_secret else ""
    metrics = PrometheusMetrics(multiprocess_dir=settings.metrics_dir)
    services = build_services(
        settings,
        backend=backend,
        web_client=web_client,
        metrics=metrics,
        database_threads=DATABASE_THREADS,
    )
    assert services.web_client is not None
    readiness = Readiness(
        [
            database_check(settings.database_url),
            sendgrid_check(services.backend),
            slack_check(services.web_client),
        ]
    )
    work = post_ack_work(metrics)
    app = create_app(services, work=work, verified_upstream=True)
    gate = SlackGate(
        signing_secret=secret, seen=SeenRequests(services.database.engine), clock=clock
    )
    application = create_wsgi_app(
        app, gate=gate, metrics=metrics, readiness=readiness, acks=work.acks
    )
    upkeep = Upkeep(services.database, services.changes).start()
    return ServedApp(application, services=services, work=work, upkeep=upkeep)


def application_from_environment() -> WSGIApplication:
    """Gunicorn's app factory: settings from the environment, logging configured."""
    settings = load_settings()
    configure_logging(settings.log_level, settings.secrets(), log_format=settings.log_format)
    return build_wsgi_app(settings)
