"""Approvals in Slack: the request message with its buttons, the Deny dialog, the notifier.

The button's value is only the request id. Everything else — who clicked (from
Slack's signed payload), their role, whether they asked for it themselves,
whether the request is still pending — is decided on the server.
"""

from __future__ import annotations

from typing import Any

from slack_sdk import WebClient
from slack_sdk.models.blocks import (
    InputBlock,
    PlainTextInputElement,
    PlainTextObject,
)
from slack_sdk.models.views import View

from bot.adapters.slack.notifier import SlackApprovalNotifier
from bot.commands import messages
from bot.commands.formatting import (
    approval_outcome_content,
    approval_request_content,
    requester_notice,
)
from bot.commands.replies import NO_TICKET_LINKS, ReasonLinks
from bot.domain.approvals import ApprovalRequest
from bot.domain.credits import Balance
from bot.errors import UserError
from bot.transports.slack.blocks import APPROVE_ACTION, DENY_ACTION, blocks_for, decision_buttons

__all__ = [
    "APPROVE_ACTION",
    "DENY_ACTION",
    "DENY_VIEW",
    "SlackApprovalMessages",
    "approval_message",
    "deny_dialog",
    "outcome_message",
    "reason_from",
    "request_id_from",
    "slack_approval_notifier",
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


class SlackApprovalMessages:
    """`ApprovalMessages`: the approval card, its outcome and the requester's notice in
    Block Kit, with ticket ids linked as `links` says."""

    def __init__(self, links: ReasonLinks = NO_TICKET_LINKS) -> None:
        self._links = links

    def request(
        self,
        request: ApprovalRequest,
        *,
        current: Balance | None,
        expected: Balance | None,
        warning: str | None = None,
    ) -> dict[str, Any]:
        return approval_message(
            request, current=current, expected=expected, links=self._links, warning=warning
        )

    def outcome(self, request: ApprovalRequest) -> dict[str, Any]:
        return outcome_message(request, self._links)

    def requester_notice(self, request: ApprovalRequest) -> str:
        return requester_notice(request, self._links)


def slack_approval_notifier(
    *,
    client: WebClient,
    channel_id: str,
    log_channel_id: str | None = None,
    links: ReasonLinks = NO_TICKET_LINKS,
) -> SlackApprovalNotifier:
    """The Slack adapter, sending this transport's approval messages."""
    return SlackApprovalNotifier(
        client=client,
        channel_id=channel_id,
        log_channel_id=log_channel_id,
        messages=SlackApprovalMessages(links),
    )
