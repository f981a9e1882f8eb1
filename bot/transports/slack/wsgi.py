"""The WSGI application: `POST /slack/events` (Bolt) and `GET /healthz`.

`credits-bot serve` runs it under gunicorn; the Procfile's `web:` runs the same
factory, `bot.transports.slack.wsgi:application_from_environment()`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler

from bot.config import Settings, load_settings
from bot.logs import configure_logging
from bot.transports.slack.app import AckFirst, create_app

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

EVENTS_PATH = "/slack/events"


def create_wsgi_app(bolt_app: App, *, ack_first: AckFirst | None = None) -> WSGIApplication:
    """Wrap a Bolt app: Slack's requests go to Bolt, `/healthz` answers here.

    With `ack_first`, every request to Bolt is counted while it is being
    acknowledged, so post-ack work can let it go first.
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
        if ack_first is None:
            return slack(environ, start_response)
        with ack_first.acknowledging():
            return slack(environ, start_response)

    return application


def build_wsgi_app(settings: Settings, **overrides: Any) -> WSGIApplication:
    """The HTTP-mode app for these settings (collaborators may be overridden)."""
    ack_first = AckFirst()
    return create_wsgi_app(
        create_app(settings, ack_first=ack_first, **overrides), ack_first=ack_first
    )


def application_from_environment() -> WSGIApplication:
    """Gunicorn's app factory: settings from the environment, logging configured."""
    settings = load_settings()
    configure_logging(settings.log_level, settings.secrets())
    return build_wsgi_app(settings)


AppFactory = Callable[[], "WSGIApplication"]
