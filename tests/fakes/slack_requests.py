"""Requests built and signed the way Slack builds them."""

from __future__ import annotations

import time
from urllib.parse import urlencode

import requests
from slack_sdk.signature import SignatureVerifier


def slash_command_body(*, text: str, user_id: str, response_url: str) -> str:
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
