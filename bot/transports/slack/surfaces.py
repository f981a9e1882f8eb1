"""The App Home and the request modal, as Block Kit (built through slack_sdk's models,
so every limit they check is checked here too).

The Home is drawn from `HomeContent` (stored state only, see `bot.commands.home`).
Its Approve/Deny buttons are the approval card's own (`decision_buttons`: same
action ids, same handlers, same service). The modal asks for the fields of one
change; its subuser is an `external_select` whose options come from the sweep's
subuser list (`SubuserNames`), and its submission becomes a `Command` field by
field (`command_from_fields`), never a line of text parsed again.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.models.blocks import (
    Block,
    ButtonElement,
    DividerBlock,
    ExternalDataSelectElement,
    HeaderBlock,
    InputBlock,
    MarkdownTextObject,
    Option,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from bot.commands import messages
from bot.commands.form import FORM_VERBS
from bot.commands.formatting import number, request_summary
from bot.commands.home import AccountOutlook, HomeContent, HomeService
from bot.domain.alerts import AlertLevel
from bot.domain.approvals import ApprovalRequest, RequestStatus
from bot.domain.credits import Period
from bot.domain.policy import Role
from bot.transports.slack.blocks import decision_buttons

OPEN_REQUEST_ACTION = "home_new_request"
REQUEST_SHORTCUT = "credits_request"
MESSAGE_SHORTCUT = "credits_request_from_message"
REQUEST_VIEW = "credits_request_form"
USER_BLOCK, USER_SELECT = "user", "user_select"
ACTION_BLOCK, ACTION_SELECT = "action", "action_select"
AMOUNT_BLOCK, AMOUNT_INPUT = "amount", "amount_input"
PERIOD_BLOCK, PERIOD_SELECT = "period", "period_select"
REASON_BLOCK, REASON_INPUT = "reason", "reason_input"
FIELD_BLOCKS = {
    "user": USER_BLOCK,
    "action": ACTION_BLOCK,
    "amount": AMOUNT_BLOCK,
    "period": PERIOD_BLOCK,
    "reason": REASON_BLOCK,
}
MAX_HOME_BLOCKS = 100
MAX_REASON = 300
ERROR_MAX = 150  # what a modal shows of an inline error, kept short

# After a sweep or a change, the Homes of those who opened theirs lately are redrawn:
# the most recent HOME_REFRESH_LIMIT within HOME_REFRESH_WITHIN (views.publish is
# Tier 4, 100+/min; 50 calls stay well inside it even twice a minute).
HOME_REFRESH_LIMIT = 50
HOME_REFRESH_WITHIN = timedelta(hours=24)

_ICONS = {AlertLevel.EXHAUSTED: ":red_circle:", AlertLevel.LOW: ":large_orange_circle:"}


def _fit(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _slack_time(at: datetime) -> str:
    """`at` in the reader's own time zone (Slack's date formatting), UTC as fallback."""
    return f"<!date^{int(at.timestamp())}^{{date_short_pretty}} {{time}}|{at:%Y-%m-%d %H:%M} UTC>"


# --- the App Home -------------------------------------------------------------------------


def home_view(content: HomeContent) -> dict[str, Any]:
    """The viewer's Home tab: what needs attention, decisions waiting, their requests."""
    blocks: list[Block] = [HeaderBlock(text=PlainTextObject(text=messages.HOME_TITLE))]
    if content.role is Role.NONE:
        blocks.append(_text(messages.HOME_NO_ROLE.format(user_id=content.user_id)))
        return View(type="home", blocks=blocks).to_dict()
    intro = _text(messages.HOME_INTRO.format(role=content.role.label))
    if content.may_request:
        intro.accessory = ButtonElement(
            text=messages.HOME_NEW_REQUEST,
            action_id=OPEN_REQUEST_ACTION,
            value="new",
            style="primary",
        )
    blocks.append(intro)
    if content.store_failed:
        blocks.append(_text(messages.HOME_STORE_FAILED))
        return View(type="home", blocks=blocks).to_dict()
    blocks += [DividerBlock(), _title(messages.HOME_ATTENTION)]
    lines = [_attention_line(o) for o in content.attention]
    blocks.append(_text("\n".join(lines) if lines else messages.HOME_ATTENTION_NONE))
    if content.may_decide:
        blocks += [DividerBlock(), _title(messages.HOME_PENDING)]
        if not content.pending:
            blocks.append(_text(messages.HOME_PENDING_NONE))
        for request in content.pending:
            blocks.extend(_pending_blocks(request, content.user_id))
    blocks += [DividerBlock(), _title(messages.HOME_MINE)]
    mine = [_mine_line(r) for r in content.mine]
    blocks.append(_text("\n".join(mine) if mine else messages.HOME_MINE_NONE))
    return View(type="home", blocks=blocks[:MAX_HOME_BLOCKS]).to_dict()


def _text(text: str) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=_fit(text, 3000)))


def _title(text: str) -> HeaderBlock:
    return HeaderBlock(text=PlainTextObject(text=_fit(text, 150)))


def _attention_line(outlook: AccountOutlook) -> str:
    runway = (
        messages.HOME_RUNWAY.format(hours=max(1, round(outlook.hours_left)))
        if outlook.hours_left and outlook.level is AlertLevel.LOW
        else ""
    )
    state = messages.HOME_EXHAUSTED if outlook.level is AlertLevel.EXHAUSTED else messages.HOME_LOW
    return messages.HOME_ATTENTION_LINE.format(
        icon=_ICONS[outlook.level],
        user=outlook.user,
        state=state,
        remaining=number(outlook.remaining),
        runway=runway,
        seen=_slack_time(outlook.seen_at),
    )


def _pending_blocks(request: ApprovalRequest, viewer: str) -> list[Block]:
    reason = f" — {request.change.reason}" if request.change.reason else ""
    line = messages.HOME_PENDING_LINE.format(
        id=request.id,
        summary=request_summary(request),
        requester=request.requester_id,
        reason=_fit(reason, 400),
    )
    if request.requester_id == viewer:  # they cannot approve their own: no buttons
        return [_text(line + messages.HOME_PENDING_OWN)]
    return [_text(line), decision_buttons(request, labelled=True)]


def _mine_line(request: ApprovalRequest) -> str:
    by = (
        messages.HOME_DECIDED_BY.format(who=request.decided_by)
        if request.decided_by and request.status is not RequestStatus.PENDING
        else ""
    )
    return messages.HOME_MINE_LINE.format(
        id=request.id,
        summary=request_summary(request),
        status=messages.STATUS_TEXT[request.status.value],
        by=by,
    )


class HomePublisher:
    """Draws a viewer's Home with `views.publish`; redraws recent viewers' Homes after a
    sweep or a change, at most one redraw running at a time (a change during one
    queues exactly one more)."""

    def __init__(
        self,
        *,
        client: WebClient,
        home: HomeService,
        logger: logging.Logger | None = None,
        limit: int = HOME_REFRESH_LIMIT,
        within: timedelta = HOME_REFRESH_WITHIN,
    ) -> None:
        self._client = client
        self.home = home
        self._logger = logger or logging.getLogger("bot.slack.home")
        self._limit = limit
        self._within = within
        self._lock = threading.Lock()
        self._running = False
        self._again = False

    def opened(self, user_id: str) -> None:
        """The viewer opened their Home: remember them, then draw it."""
        self.home.saw(user_id)
        self.publish(user_id)

    def publish(self, user_id: str) -> bool:
        view = home_view(self.home.home(user_id))
        try:
            self._client.views_publish(user_id=user_id, view=view)
        except (SlackApiError, SlackRequestError, OSError) as error:
            self._logger.warning("home of %s not published: %r", user_id, error)
            return False
        return True

    def refresh_recent(self) -> int:
        """Redraw the Homes of recent viewers; returns how many were drawn. Coalesced:
        a call while one runs makes that one go round once more, then returns 0."""
        with self._lock:
            if self._running:
                self._again = True
                return 0
            self._running = True
        drawn = 0
        try:
            while True:
                viewers = self.home.recent_viewers(within=self._within, limit=self._limit)
                for user_id in viewers:
                    if not self.publish(user_id):
                        break  # Slack is refusing or away: the next refresh tries again
                    drawn += 1
                with self._lock:
                    if not self._again:
                        return drawn
                    self._again = False
        finally:
            with self._lock:
                self._running = False


# --- the request modal --------------------------------------------------------------------


def _option(value: str, label: str) -> Option:
    return Option(value=value, text=PlainTextObject(text=_fit(label, 75)))


def subuser_options(names: list[str]) -> list[dict[str, Any]]:
    """`block_suggestion` options for these subuser names (Slack shows up to 100)."""
    return [_option(name, name).to_dict() for name in names[:100]]


def request_modal(
    *, user: str | None = None, reason: str | None = None, action: str = "add"
) -> dict[str, Any]:
    """The modal a shortcut or the Home's button opens: subuser (type-ahead), action,
    credits, period and reason, each its own block so errors show beside the field."""
    actions = [_option(v.value, messages.MODAL_ACTIONS[v.value]) for v in FORM_VERBS]
    periods = [_option(p.value, messages.MODAL_PERIODS[p.value]) for p in Period]
    chosen = next(o for o in actions if o.value == action)
    blocks: list[Block] = [
        InputBlock(
            block_id=USER_BLOCK,
            label=PlainTextObject(text=messages.MODAL_USER_LABEL),
            element=ExternalDataSelectElement(
                action_id=USER_SELECT,
                placeholder=PlainTextObject(text=messages.MODAL_USER_PLACEHOLDER),
                min_query_length=1,
                initial_option=_option(user, user) if user else None,
            ),
        ),
        InputBlock(
            block_id=ACTION_BLOCK,
            label=PlainTextObject(text=messages.MODAL_ACTION_LABEL),
            element=StaticSelectElement(
                action_id=ACTION_SELECT, options=actions, initial_option=chosen
            ),
        ),
        InputBlock(
            block_id=AMOUNT_BLOCK,
            optional=True,
            label=PlainTextObject(text=messages.MODAL_AMOUNT_LABEL),
            hint=PlainTextObject(text=messages.MODAL_AMOUNT_HINT),
            element=PlainTextInputElement(action_id=AMOUNT_INPUT, placeholder="1,500"),
        ),
        InputBlock(
            block_id=PERIOD_BLOCK,
            optional=True,
            label=PlainTextObject(text=messages.MODAL_PERIOD_LABEL),
            element=StaticSelectElement(action_id=PERIOD_SELECT, options=periods),
        ),
        InputBlock(
            block_id=REASON_BLOCK,
            optional=True,
            label=PlainTextObject(text=messages.MODAL_REASON_LABEL),
            element=PlainTextInputElement(
                action_id=REASON_INPUT,
                placeholder="ZD-4411 spring campaign",
                max_length=MAX_REASON,
                initial_value=_fit(reason, MAX_REASON) if reason else None,
            ),
        ),
    ]
    return View(
        type="modal",
        callback_id=REQUEST_VIEW,
        title=PlainTextObject(text=messages.MODAL_TITLE),
        submit=PlainTextObject(text=messages.MODAL_SUBMIT),
        close=PlainTextObject(text=messages.CANCEL),
        blocks=blocks,
    ).to_dict()


def form_fields(view: dict[str, Any]) -> dict[str, str]:
    """The modal's values by field name (user, action, amount, period, reason), as text."""
    values = view.get("state", {}).get("values", {})

    def selected(block: str, action: str) -> str:
        option = (values.get(block, {}).get(action) or {}).get("selected_option") or {}
        return str(option.get("value") or "")

    def typed(block: str, action: str) -> str:
        return str((values.get(block, {}).get(action) or {}).get("value") or "")

    return {
        "user": selected(USER_BLOCK, USER_SELECT),
        "action": selected(ACTION_BLOCK, ACTION_SELECT),
        "amount": typed(AMOUNT_BLOCK, AMOUNT_INPUT),
        "period": selected(PERIOD_BLOCK, PERIOD_SELECT),
        "reason": typed(REASON_BLOCK, REASON_INPUT),
    }


def field_errors(field: str, message: str) -> dict[str, str]:
    """`response_action: errors` for the block of `field` (Slack shows it beside it)."""
    return {FIELD_BLOCKS.get(field, USER_BLOCK): _fit(message, ERROR_MAX)}


def message_link_reason(permalink: str | None) -> str | None:
    return messages.MODAL_FROM_MESSAGE.format(link=permalink) if permalink else None


__all__ = [
    "ACTION_BLOCK",
    "AMOUNT_BLOCK",
    "MESSAGE_SHORTCUT",
    "OPEN_REQUEST_ACTION",
    "REQUEST_SHORTCUT",
    "REQUEST_VIEW",
    "USER_BLOCK",
    "USER_SELECT",
    "HomePublisher",
    "field_errors",
    "form_fields",
    "home_view",
    "message_link_reason",
    "request_modal",
    "subuser_options",
]
