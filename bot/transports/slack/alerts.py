"""Low-credit digests in Slack: one message per sweep (more if Block Kit needs it).

Each worrying subuser gets a line and two buttons, "Add credits" (a dialog whose
amount goes through the usual approval rules) and "Snooze 24 h". Messages to the
alerts channel are paced at one per second, Slack's per-channel posting rate.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from slack_sdk import WebClient
from slack_sdk.models.blocks import (
    ActionsBlock,
    ButtonElement,
    ContextBlock,
    HeaderBlock,
    InputBlock,
    MarkdownTextObject,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View

from bot.adapters.slack.poster import SlackDigestPoster
from bot.commands import messages
from bot.commands.formatting import balance_summary
from bot.commands.sweep import Announcement, SweepReport
from bot.domain.alerts import AlertLevel, Change

ADD_ACTION = "alert_add_credits"
SNOOZE_ACTION = "alert_snooze"
ADD_VIEW = "alert_add_credits_amount"
AMOUNT_BLOCK = "amount"
AMOUNT_INPUT = "amount_input"
ADD_REASON_BLOCK = "reason"
ADD_REASON_INPUT = "reason_input"
MAX_BLOCKS = 50
PER_MESSAGE = 23  # 2 blocks each, plus header and footer, within 50

_ICONS = {AlertLevel.EXHAUSTED: ":red_circle:", AlertLevel.LOW: ":large_orange_circle:"}


def digest_messages(report: SweepReport) -> list[dict[str, Any]]:
    """The digest as Slack messages, each within Block Kit's limits."""
    alerts = report.alerts
    low = sum(a.assessment.level is AlertLevel.LOW for a in alerts)
    exhausted = sum(a.assessment.level is AlertLevel.EXHAUSTED for a in alerts)
    summary = ", ".join(
        part
        for part in (
            f"{exhausted} exhausted" if exhausted else "",
            f"{low} low" if low else "",
            f"{len(report.recoveries)} recovered" if report.recoveries else "",
            f"{len(report.failures)} unreadable" if report.failures else "",
        )
        if part
    )
    footer = messages.DIGEST_FOOTER.format(
        at=report.started.strftime("%Y-%m-%d %H:%M"),
        read=report.read,
        low=report.level_counts.get(AlertLevel.LOW, 0),
        exhausted=report.level_counts.get(AlertLevel.EXHAUSTED, 0),
    )
    pages = [alerts[i : i + PER_MESSAGE] for i in range(0, len(alerts), PER_MESSAGE)] or [[]]
    out = []
    for number, page in enumerate(pages, start=1):
        title = (
            messages.DIGEST_TITLE.format(summary=summary)
            if number == 1
            else messages.DIGEST_TITLE_CONTINUED.format(part=number, parts=len(pages))
        )
        blocks: list[Any] = [HeaderBlock(text=PlainTextObject(text=title[:150]))]
        for alert in page:
            blocks.extend(_alert_blocks(alert))
        if number == len(pages):
            blocks.extend(_tail_blocks(report))
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=footer)]))
        out.append({"text": title, "blocks": [b.to_dict() for b in blocks[:MAX_BLOCKS]]})
    return out


def _alert_blocks(alert: Announcement) -> list[Any]:
    a = alert.assessment
    outlook = (
        messages.DIGEST_OUTLOOK.format(hours=max(1, round(a.forecast.hours_left)))
        if a.forecast is not None and a.level is not AlertLevel.EXHAUSTED
        else ""
    )
    line = messages.DIGEST_ALERT_LINE.format(
        icon=_ICONS.get(a.level, ""),
        user=a.user,
        balance=balance_summary(a.balance),
        reason=a.reason,
        outlook=outlook,
        note=messages.DIGEST_REMINDER if alert.change is Change.STILL_LOW else "",
    )
    return [
        SectionBlock(text=MarkdownTextObject(text=line[:3000])),
        ActionsBlock(
            block_id=f"alert-{a.user}",
            elements=[
                ButtonElement(
                    text=messages.ADD_CREDITS, action_id=ADD_ACTION, value=a.user, style="primary"
                ),
                ButtonElement(text=messages.SNOOZE, action_id=SNOOZE_ACTION, value=a.user),
            ],
        ),
    ]


def _tail_blocks(report: SweepReport) -> list[Any]:
    blocks: list[Any] = []
    if report.recoveries:
        lines = [
            messages.DIGEST_RECOVERED_LINE.format(
                user=r.assessment.user, balance=balance_summary(r.assessment.balance)
            )
            for r in report.recoveries
        ]
        text = messages.DIGEST_RECOVERED_TITLE + "\n" + "\n".join(lines)
        blocks.append(SectionBlock(text=MarkdownTextObject(text=_fit(text))))
    if report.failures:
        users = ", ".join(f"{user} ({kind})" for user, kind in report.failures)
        text = messages.DIGEST_FAILURES.format(count=len(report.failures), users=users)
        blocks.append(SectionBlock(text=MarkdownTextObject(text=_fit(text))))
    return blocks


def _fit(text: str, limit: int = 3000) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def add_credits_dialog(
    user: str, *, digest: tuple[str, str] | None = None, recent: str | None = None
) -> dict[str, Any]:
    """The amount dialog. `digest` (channel, ts) is where the click came from, so the
    line can be edited once the credits are added; `recent` is a top-up someone else
    made a moment ago, said before anyone adds more."""
    blocks: list[Any] = []
    if recent:
        text = f"{recent} {messages.RECENT_TOP_UP_CONFIRM}"
        blocks.append(SectionBlock(text=MarkdownTextObject(text=_fit(text))))
    blocks.append(
        InputBlock(
            block_id=AMOUNT_BLOCK,
            label=PlainTextObject(text=messages.ADD_MODAL_LABEL.format(user=user)[:2000]),
            element=PlainTextInputElement(action_id=AMOUNT_INPUT, placeholder="1,500"),
        )
    )
    return View(
        type="modal",
        callback_id=ADD_VIEW,
        private_metadata=" ".join((user, *digest)) if digest else user,
        title=PlainTextObject(text=messages.ADD_MODAL_TITLE),
        submit=PlainTextObject(text=messages.ADD_MODAL_SUBMIT),
        close=PlainTextObject(text=messages.CANCEL),
        blocks=[
            *blocks,
            InputBlock(
                block_id=ADD_REASON_BLOCK,
                optional=True,
                label=PlainTextObject(text=messages.REASON_LABEL),
                element=PlainTextInputElement(
                    action_id=ADD_REASON_INPUT,
                    placeholder="ZD-4411 spring campaign",
                    max_length=300,
                ),
            ),
        ],
    ).to_dict()


def dialog_target(private_metadata: str) -> tuple[str, tuple[str, str] | None]:
    """The dialog's USER (still to be validated) and the digest it came from, if any."""
    parts = private_metadata.split()
    if len(parts) == 3:
        return parts[0], (parts[1], parts[2])
    return private_metadata, None


def annotate_line(message: dict[str, Any], user: str, note: str) -> dict[str, Any]:
    """The digest message with `user`'s line saying `note` (replacing an earlier note):
    the section just before the actions block `alert-USER`."""
    blocks = [dict(block) for block in message.get("blocks", [])]
    for index, block in enumerate(blocks):
        if block.get("type") == "actions" and block.get("block_id") == f"alert-{user}":
            if index and blocks[index - 1].get("type") == "section":
                section = blocks[index - 1]
                line = str(section.get("text", {}).get("text", "")).split("\n")[0]
                section["text"] = {"type": "mrkdwn", "text": _fit(f"{line}\n{note}")}
            break
    return {**message, "blocks": blocks}


def amount_from(view: dict[str, Any]) -> str:
    values = view.get("state", {}).get("values", {})
    return str(values.get(AMOUNT_BLOCK, {}).get(AMOUNT_INPUT, {}).get("value") or "")


def add_reason_from(view: dict[str, Any]) -> str:
    """The dialog's reason, on one line (a command's reason is the rest of its line)."""
    values = view.get("state", {}).get("values", {})
    raw = values.get(ADD_REASON_BLOCK, {}).get(ADD_REASON_INPUT, {}).get("value") or ""
    return " ".join(str(raw).split())


def SlackAlertPoster(
    *,
    client: WebClient,
    channel_id: str,
    sleep: Callable[[float], None] = time.sleep,
) -> SlackDigestPoster[SweepReport]:
    """The Slack adapter that posts this transport's digest pages (`digest_messages`)."""
    return SlackDigestPoster(
        client=client, channel_id=channel_id, render=digest_messages, sleep=sleep
    )
