"""A held change's Confirm / Cancel buttons (above CREDITS_CONFIRM_ABOVE, or ending a plan).

The buttons carry only the confirmation's id; who may confirm (its author), whether
it is still pending and unexpired, and what it changes are decided on the server,
and `pending → confirmed` is one conditional update, so a change held for
confirmation runs at most once however often, and wherever, Confirm is clicked.
"""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import ActionsBlock, ButtonElement

from bot.commands import messages
from bot.commands.replies import ConfirmReply
from bot.errors import UserError

CONFIRM_ACTION = "change_confirm"
CANCEL_ACTION = "change_cancel"
MAX_ID = 2**31 - 1


def confirm_buttons(reply: ConfirmReply) -> dict[str, Any]:
    value = str(reply.confirmation_id)
    return ActionsBlock(
        block_id=f"confirm-{value}",
        elements=[
            ButtonElement(
                text=messages.CONFIRM_BUTTON,
                action_id=CONFIRM_ACTION,
                value=value,
                style="danger" if reply.why.value == "plan" else "primary",
            ),
            ButtonElement(text=messages.CANCEL, action_id=CANCEL_ACTION, value=value),
        ],
    ).to_dict()


def confirmation_id_from(value: object) -> int:
    text = str(value or "")
    if not text.isascii() or not text.isdigit() or not 0 < int(text) <= MAX_ID:
        raise UserError("That button does not carry a valid confirmation number.")
    return int(text)
