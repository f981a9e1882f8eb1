"""The WSGI application: `POST /slack/events` (Bolt), `GET /healthz`, `/readyz`, `/metrics`.

`credits-bot serve` runs it under gunicorn; the Procfile's `web:` runs the same
factory, `bot.transports.slack.wsgi:application_from_environment()`.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk.signature import SignatureVerifier

from bot.adapters.sendgrid import build_backend
from bot.adapters.slack_web import build_web_client
from bot.adapters.store import SqlStore
from bot.adapters.store.replay import SeenRequests
from bot.config import Settings, load_settings
from bot.logs import configure_logging
from bot.observability.context import request_scope
from bot.observability.prometheus import PrometheusMetrics
from bot.observability.readiness import Readiness, database_check, sendgrid_check, slack_check
from bot.transports.slack.app import AckFirst, create_app

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

EVENTS_PATH = "/slack/events"
logger = logging.getLogger("bot.http")


def create_wsgi_app(
    bolt_app: App,
    *,
    ack_first: AckFirst | None = None,
    replays: ReplayGuard | None = None,
    metrics: PrometheusMetrics | None = None,
    readiness: Readiness | None = None,
) -> WSGIApplication:
    """Wrap a Bolt app: Slack's requests go to Bolt; `/healthz`, `/readyz`, `/metrics` answer here.

    With `ack_first`, every request to Bolt is counted while it is being
    acknowledged, so post-ack work can let it go first. With `replays`, a
    correctly signed request seen before is refused with 401 before Bolt runs.
    Each Slack request gets a request id (logged from its ack to its answer).
    """
    slack = SlackRequestHandler(bolt_app, path=EVENTS_PATH)

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
        with request_scope() as request:
            statuses: list[str] = []

            def recording_start_response(status: str, headers: Any, *exc_info: Any) -> Any:
                statuses.append(status)
                return start_response(status, headers, *exc_info)

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
        if replays is not None and replays.is_replay(environ):
            start_response("401 Unauthorized", [("Content-Type", "text/plain")])
            return [b"replayed request"]
        if ack_first is None:
            return slack(environ, start_response)
        with ack_first.acknowledging():
            return slack(environ, start_response)

    return application


def _respond(start_response: StartResponse, status: str, document: object) -> list[bytes]:
    body = json.dumps(document).encode()
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


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


class ReplayGuard:
    """Checks the signature itself, then asks the database whether it was seen before."""

    def __init__(self, *, signing_secret: str, seen: SeenRequests) -> None:
        self._verifier = SignatureVerifier(signing_secret)
        self._seen = seen

    def is_replay(self, environ: WSGIEnvironment) -> bool:
        if environ.get("REQUEST_METHOD") != "POST" or environ.get("PATH_INFO") != EVENTS_PATH:
            return False
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)  # Bolt reads it again
        timestamp = environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP", "")
        signature = environ.get("HTTP_X_SLACK_SIGNATURE", "")
        if not timestamp.isdigit() or not signature:
            return False  # unsigned: Bolt answers 401; nothing is recorded
        text = body.decode("utf-8", "replace")
        if not self._verifier.is_valid(body=text, timestamp=timestamp, signature=signature):
            return False  # Bolt answers 401 for a bad signature; nothing is recorded
        return not self._seen.first_time(signature)


def build_wsgi_app(settings: Settings, **overrides: Any) -> WSGIApplication:
    """The HTTP-mode app for these settings (collaborators may be overridden)."""
    ack_first = AckFirst()
    store = SqlStore.from_url(settings.database_url)
    secret = settings.slack_signing_secret.reveal() if settings.slack_signing_secret else ""
    settings.require("SLACK_BOT_TOKEN")
    assert settings.slack_bot_token is not None
    metrics = PrometheusMetrics(multiprocess_dir=settings.metrics_dir)
    backend = overrides.pop("backend", None) or build_backend(settings, metrics=metrics)
    client = overrides.pop("web_client", None) or build_web_client(
        token=settings.slack_bot_token.reveal(), base_url=settings.slack_api_url
    )
    readiness = Readiness(
        [database_check(settings.database_url), sendgrid_check(backend), slack_check(client)]
    )
    app = create_app(
        settings,
        ack_first=ack_first,
        store=store,
        backend=backend,
        web_client=client,
        metrics=metrics,
        **overrides,
    )
    return create_wsgi_app(
        app,
        ack_first=ack_first,
        replays=ReplayGuard(signing_secret=secret, seen=SeenRequests(store.engine)),
        metrics=metrics,
        readiness=readiness,
    )


def application_from_environment() -> WSGIApplication:
    """Gunicorn's app factory: settings from the environment, logging configured."""
    settings = load_settings()
    configure_logging(settings.log_level, settings.secrets(), log_format=settings.log_format)
    return build_wsgi_app(settings)
