"""The baseline for bench/ack_latency.py: a Bolt app whose /credits only acks.

Same Bolt version, same WSGI adapter, same gunicorn settings and the same fake
Slack Web API as credits-bot; nothing else.
"""

from __future__ import annotations

import os
from typing import Any

from slack_bolt import Ack, App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient


def application() -> Any:
    client = WebClient(token=os.environ["SLACK_BOT_TOKEN"], base_url=os.environ["SLACK_API_URL"])
    app = App(client=client, signing_secret=os.environ["SLACK_SIGNING_SECRET"])

    @app.command("/credits")
    def only_ack(ack: Ack) -> None:
        ack()

    return SlackRequestHandler(app, path="/slack/events")
