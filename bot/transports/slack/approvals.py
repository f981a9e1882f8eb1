"""Approvals in Slack: the request message with its buttons, the Deny dialog, the notifier.

The button's value is only the request id. Everything else — who clicked (from
Slack's signed payload), their role, whether they asked for it themselves,
whether the request is still pending — is decided on the server.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.models.blocks import (
    InputBlock,
    PlainTextInputElement,
    PlainTextObject,
)
from slack_sdk.models.views import View

from bot.adapters.slack.web import failure_reason
from bot.commands import messages
from bot.commands.formatting import (
    approval_outcome_content,
    approval_request_content,
    requester_notice,
)
from bot.commands.replies import NO_TICKET_LINKS, ReasonLinks
from bot.domain.approvals import ApprovalRequest
from bot.domain.credits import Balance
from bot.errors import NotifyError, UserError
from bot.transports.slack.blocks import APPROVE_ACTION, DENY_ACTION, blocks_for, decision_buttons

__all__ = [
    "APPROVE_ACTION",
    "DENY_ACTION",
    "DENY_VIEW",
    "SlackApprovalNotifier",
    "approval_message",
    "deny_dialog",
    "outcome_message",
    "reason_from",
    "request_id_from",
]

DENY_VIEW = "approval_deny_reason"
REASON_BLOCK = "reason"
REASON_INPUT = "reason_input"
MAX_REQUEST_ID = 2**31 - 1


def request_id_from(value: object) -> int:
    """The request id carried by a button or a dialog; anything else is refused."""
    text = str(value or "")
    if not text.isascii() or not text.isdigit() or not 0 < int(text) <= MAX_REQUEST_ID:
        raise UserError(messages.NOT_A_BUTTON_REQUEST)
    return int(text)


def approval_message(
    request: ApprovalRequest,
    *,
    current: Balance | None,
    expected: Balance | None,
    links: ReasonLinks = NO_TICKET_LINKS,
    warning: str | None = None,
) -> dict[str, Any]:
    content = approval_request_content(
        request, current=current, expected=expected, links=links, warning=warning
    )
    buttons = decision_buttons(request)
    return {"text": content.fallback, "blocks": [*blocks_for(content), buttons.to_dict()]}


def outcome_message(
    request: ApprovalRequest, links: ReasonLinks = NO_TICKET_LINKS
) -> dict[str, Any]:
    content = approval_outcome_content(request, links)
    return {"text": content.fallback, "blocks": blocks_for(content)}


def deny_dialog(request_id: int) -> dict[str, Any]:
    view = View(
        type="modal",
        callback_id=DENY_VIEW,
        private_metadata=str(request_id),
        title=PlainTextObject(text=messages.DENY_MODAL_TITLE.format(id=request_id)[:24]),
        submit=PlainTextObject(text=messages.DENY_SUBMIT),
        close=PlainTextObject(text=messages.CANCEL),
        blocks=[
            InputBlock(
                block_id=REASON_BLOCK,
                optional=True,
                label=PlainTextObject(text=messages.DENY_REASON_LABEL),
                element=PlainTextInputElement(
                    action_id=REASON_INPUT, multiline=True, max_length=500
                ),
            )
        ],
    )
    return view.to_dict()


def reason_from(view: dict[str, Any]) -> str | None:
    values = view.get("state", {}).get("values", {})
    value = values.get(REASON_BLOCK, {}).get(REASON_INPUT, {}).get("value")
    return str(value) if value else None


class SlackApprovalNotifier:
    """`ApprovalNotifier` over the Web API: post, edit with chat.update, DM the requester."""

    def __init__(
        self,
        *,
        client: WebClient,
        channel_id: str,
        log_channel_id: str | None = None,
        logger: logging.Logger | None = None,
        links: ReasonLinks = NO_TICKET_LINKS,
    ) -> None:
        self._client = client
        self._channel_id = channel_id
        self._log_channel_id = log_channel_id
        self._links = links
        self._logger = logger or logging.getLogger("bot.slack.approvals")

    def post_request(
        self,
        request: ApprovalRequest,
        *,
        current: Balance,
        expected: Balance | None,
        warning: str | None = None,
    ) -> tuple[str, str]:
        message = approval_message(
            request, current=current, expected=expected, links=self._links, warning=warning
        )
        response = self._call("chat.postMessage", channel=self._channel_id, **message)
        return str(response["channel"]), str(response["ts"])

    def show_progress(self, request: ApprovalRequest) -> None:
        """1 of 2 approvals: the card shows who approved, and keeps its buttons."""
        if not request.channel_id or not request.message_ts:
            return
        message = approval_message(request, current=None, expected=None, links=self._links)
        self._call("chat.update", channel=request.channel_id, ts=request.message_ts, **message)

    def show_outcome(self, request: ApprovalRequest) -> None:
        if not request.channel_id or not request.message_ts:
            return
        self._call(
            "chat.update",
            channel=request.channel_id,
            ts=request.message_ts,
            **outcome_message(request, self._links),
        )

    def tell_requester(self, request: ApprovalRequest) -> None:
        self._call(
            "chat.postMessage",
            channel=request.requester_id,
            text=requester_notice(request, self._links),
        )

    def tell_user(self, user_id: str, text: str) -> None:
        self._call("chat.postMessage", channel=user_id, text=text)

    def log(self, text: str) -> None:
        if self._log_channel_id:
            self._call("chat.postMessage", channel=self._log_channel_id, text=text)

    def remind(self, request: ApprovalRequest, text: str) -> None:
        if request.channel_id and request.message_ts:
            self._call(
                "chat.postMessage",
                channel=request.channel_id,
                thread_ts=request.message_ts,
                text=text,
            )
        else:  # never posted (the channel failed then): post it now, on its own
            self._call("chat.postMessage", channel=self._channel_id, text=text)

    def _call(self, method: str, **arguments: Any) -> Any:
        try:
            return self._client.api_call(method, json=arguments)
        except SlackApiError as error:
            raise NotifyError(f"Slack refused {method}", reason=failure_reason(error)) from None
        except (SlackRequestError, OSError) as error:
            self._logger.warning("%s failed: %r", method, error)
            raise NotifyError(
                f"Slack could not be reached for {method}", reason="slack_unreachable"
            ) from None
