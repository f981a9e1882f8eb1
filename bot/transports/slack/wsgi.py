"""The WSGI application: `POST /slack/events` (Bolt) and `GET /healthz`.

`credits-bot serve` runs it under gunicorn; the Procfile's `web:` runs the same
factory, `bot.transports.slack.wsgi:application_from_environment()`.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk.signature import SignatureVerifier

from bot.adapters.store import SqlStore
from bot.adapters.store.replay import SeenRequests
from bot.config import Settings, load_settings
from bot.logs import configure_logging
from bot.transports.assembly import Heartbeat, stop_gracefully
from bot.transports.slack.app import AckFirst, SlackParts, build_slack

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

EVENTS_PATH = "/slack/events"
# How long a stopping worker lets work in flight finish before recording it as
# unfinished; gunicorn's graceful_timeout must be longer (see server.py, Procfile).
DRAIN_SECONDS = 15.0


def create_wsgi_app(
    bolt_app: App,
    *,
    ack_first: AckFirst | None = None,
    replays: ReplayGuard | None = None,
) -> WSGIApplication:
    """Wrap a Bolt app: Slack's requests go to Bolt, `/healthz` answers here.

    With `ack_first`, every request to Bolt is counted while it is being
    acknowledged, so post-ack work can let it go first. With `replays`, a
    correctly signed request seen before is refused with 401 before Bolt runs.
    """
    slack = SlackRequestHandler(bolt_app, path=EVENTS_PATH)

    def application(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/healthz":
            body = json.dumps({"ok": True}).encode()
            start_response(
                "200 OK",
                [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
            )
            return [body]
        if replays is not None and replays.is_replay(environ):
            start_response("401 Unauthorized", [("Content-Type", "text/plain")])
            return [b"replayed request"]
        if ack_first is None:
            return slack(environ, start_response)
        with ack_first.acknowledging():
            return slack(environ, start_response)

    return application


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


class ServedApp:
    """The WSGI app of one `serve` process, with what its process needs to stop well."""

    def __init__(self, application: WSGIApplication, parts: SlackParts, store: SqlStore) -> None:
        self._application = application
        self._parts = parts
        self._store = store
        self._heartbeat: Heartbeat | None = None

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return self._application(environ, start_response)

    def start_heartbeat(self) -> ServedApp:
        self._heartbeat = Heartbeat(self._store, self._parts.services.changes).start()
        return self

    def shutdown(self, timeout: float = DRAIN_SECONDS) -> None:
        """SIGTERM (gunicorn's `worker_exit`): finish or record the work in flight."""
        stop_gracefully(
            self._store,
            self._parts.services.changes,
            wait_idle=self._parts.work.wait_idle,
            timeout=timeout,
        )
        if self._heartbeat is not None:
            self._heartbeat.stop()


def build_wsgi_app(settings: Settings, **overrides: Any) -> ServedApp:
    """The HTTP-mode app for these settings (collaborators may be overridden)."""
    ack_first = AckFirst()
    store = SqlStore.from_url(settings.database_url)
    secret = settings.slack_signing_secret.reveal() if settings.slack_signing_secret else ""
    parts = build_slack(settings, ack_first=ack_first, store=store, **overrides)
    application = create_wsgi_app(
        parts.app,
        ack_first=ack_first,
        replays=ReplayGuard(signing_secret=secret, seen=SeenRequests(store.engine)),
    )
    return ServedApp(application, parts, store)


def application_from_environment() -> WSGIApplication:
    """Gunicorn's app factory: settings from the environment, logging configured."""
    settings = load_settings()
    configure_logging(settings.log_level, settings.secrets())
    return build_wsgi_app(settings).start_heartbeat()
