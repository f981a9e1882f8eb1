"""Replies → Block Kit messages, built with slack-sdk's block models.

`to_dict()` on those models validates Slack's limits (section text ≤ 3,000,
fields ≤ 10 of ≤ 2,000, header ≤ 150), so an over-long reply fails here and
not in Slack; `_fit` truncates before that can happen. Text arrives as mrkdwn
with outside values already escaped (`formatting.escape`), so mentions such as
`<@U…>` written by the bot stay mentions.
"""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from bot.commands import messages
from bot.commands.formatting import Content, Section, change_summary, layout
from bot.commands.replies import ConfirmReply, PendingReply, Reply
from bot.domain.approvals import ApprovalRequest, RequestStatus
from bot.transports.slack.confirmations import confirm_buttons

APPROVE_ACTION = "approval_approve"
DENY_ACTION = "approval_deny"

MAX_BLOCKS = 50
HEADER_MAX = 150
SECTION_MAX = 3000
FIELD_MAX = 2000
FIELDS_MAX = 10
CONTEXT_ELEMENTS_MAX = 10
FALLBACK_MAX = 3000


def render_message(reply: Reply) -> dict[str, Any]:
    """`text` (notification fallback) and `blocks` for chat.postMessage / respond()."""
    content = layout(reply)
    blocks = blocks_for(content)
    if isinstance(reply, PendingReply):  # decide from the list, as from the request's card
        waiting = [r for r in reply.requests if r.status is RequestStatus.PENDING]
        room = MAX_BLOCKS - len(blocks)
        blocks.extend(decision_buttons(r, labelled=True).to_dict() for r in waiting[:room])
    if isinstance(reply, ConfirmReply):
        blocks.append(confirm_buttons(reply))
    return {"text": _fit(content.fallback, FALLBACK_MAX), "blocks": blocks}


def decision_buttons(request: ApprovalRequest, *, labelled: bool = False) -> ActionsBlock:
    """Approve (with a confirm step) and Deny for one request; the value is its id."""
    what = change_summary(request.change)
    suffix = f" #{request.id}" if labelled else ""
    return ActionsBlock(
        block_id=f"approval-{request.id}",
        elements=[
            ButtonElement(
                text=messages.APPROVE + suffix,
                action_id=APPROVE_ACTION,
                value=str(request.id),
                style="primary",
                confirm=ConfirmObject(
                    title=messages.APPROVAL_CONFIRM_TITLE.format(id=request.id),
                    text=messages.APPROVAL_CONFIRM_TEXT.format(what=what, user=request.change.user),
                    confirm=messages.APPROVE,
                    deny=messages.CANCEL,
                ),
            ),
            ButtonElement(
                text=messages.DENY + suffix,
                action_id=DENY_ACTION,
                value=str(request.id),
                style="danger",
            ),
        ],
    )


def blocks_for(content: Content) -> list[dict[str, Any]]:
    blocks: list[Block] = []
    headline = (":warning: " if content.warning else "") + content.headline
    blocks.append(HeaderBlock(text=PlainTextObject(text=_fit(headline, HEADER_MAX), emoji=True)))
    blocks.extend(_section(section) for section in content.sections)
    if content.notes:
        elements = [
            MarkdownTextObject(text=_fit(note, SECTION_MAX))
            for note in content.notes[:CONTEXT_ELEMENTS_MAX]
        ]
        blocks.append(ContextBlock(elements=elements))
    return [block.to_dict() for block in blocks[:MAX_BLOCKS]]


def _section(section: Section) -> SectionBlock:
    fields = [
        MarkdownTextObject(text=_fit(f"*{label}*\n{value}", FIELD_MAX))
        for label, value in section.fields[:FIELDS_MAX]
    ]
    text = MarkdownTextObject(text=_fit(section.text, SECTION_MAX)) if section.text else None
    return SectionBlock(text=text, fields=fields or None)


def _fit(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
