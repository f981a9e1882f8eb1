"""Requests built and signed the way Slack builds them."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlencode

import requests
from slack_sdk.signature import SignatureVerifier


def slash_command_body(*, text: str, user_id: str, response_url: str, **fields: str) -> str:
    """A slash command's form body; `fields` replace or add fields (e.g. `channel_name`)."""
    return urlencode(
        {
            "token": "deprecated-verification-token",
            "team_id": "T0EXAMPLE",
            "team_domain": "example",
            "channel_id": "C0SUPPORT",
            "channel_name": "support",
            "user_id": user_id,
            "user_name": "someone",
            "command": "/credits",
            "text": text,
            "api_app_id": "A0CREDITS",
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": "1337.42.abcdef",
            **fields,
        }
    )


def signed_headers(secret: str, body: str, *, timestamp: int | None = None) -> dict[str, str]:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=stamp, body=body)
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": signature,
    }


def post_signed(
    url: str, secret: str, body: str, *, timestamp: int | None = None, timeout: float = 10
) -> requests.Response:
    return requests.post(
        url,
        data=body.encode(),
        headers=signed_headers(secret, body, timestamp=timestamp),
        timeout=timeout,
    )


def block_actions_body(
    *,
    user_id: str,
    posted: dict[str, Any],
    channel: str,
    ts: str,
    action_id: str,
    response_url: str,
    value: str | None = None,
    block_id: str | None = None,
) -> str:
    """A `block_actions` payload as Slack builds it when a button of `posted` is clicked
    (the first actions block, or the one with `block_id`)."""
    blocks = posted["blocks"]
    actions = next(
        block
        for block in blocks
        if block["type"] == "actions" and block_id in (None, block.get("block_id"))
    )
    button = next(e for e in actions["elements"] if e["action_id"] == action_id)
    payload = {
        "type": "block_actions",
        "user": {"id": user_id, "username": "someone", "name": "someone", "team_id": "T0EXAMPLE"},
        "api_app_id": "A0CREDITS",
        "token": "deprecated-verification-token",
        "container": {
            "type": "message",
            "message_ts": ts,
            "channel_id": channel,
            "is_ephemeral": False,
        },
        "trigger_id": "1337.42.trigger",
        "team": {"id": "T0EXAMPLE", "domain": "example"},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel, "name": "approvals"},
        "message": {
            "type": "message",
            "ts": ts,
            "text": posted.get("text", ""),
            "blocks": blocks,
            "bot_id": "BBOT",
            "user": "UBOT",
        },
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [
            {
                "action_id": action_id,
                "block_id": actions["block_id"],
                "text": button["text"],
                "value": button["value"] if value is None else value,
                "style": button.get("style"),
                "type": "button",
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
    return urlencode({"payload": json.dumps(payload)})


def view_submission_body(
    *, user_id: str, callback_id: str, private_metadata: str, values: dict[str, Any]
) -> str:
    """A `view_submission` payload (a modal's submit button)."""
    payload = {
        "type": "view_submission",
        "team": {"id": "T0EXAMPLE", "domain": "example"},
        "user": {"id": user_id, "username": "someone", "name": "someone", "team_id": "T0EXAMPLE"},
        "api_app_id": "A0CREDITS",
        "token": "deprecated-verification-token",
        "trigger_id": "1337.43.trigger",
        "view": {
            "id": "V0DENY",
            "team_id": "T0EXAMPLE",
            "type": "modal",
            "callback_id": callback_id,
            "private_metadata": private_metadata,
            "state": {"values": values},
            "hash": "1700000000.abcdef",
            "blocks": [],
        },
        "response_urls": [],
        "is_enterprise_install": False,
    }
    return urlencode({"payload": json.dumps(payload)})
