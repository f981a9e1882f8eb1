"""`/credits history USER` in Slack: the chart uploaded where the command was typed.

`files_upload_v2` (files.getUploadURLExternal → the upload URL →
files.completeUploadExternal, shared to the command's channel). When Slack will not
take it — the bot is not in that channel, the `files:write` scope is missing, a DM
between two other people — the reply carries the text sparkline and why.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackRequestError

from bot.adapters.slack.web import failure_reason
from bot.commands import messages
from bot.commands.replies import HistoryReply
from bot.transports.charts import HistoryChart, history_png

NOT_SENT = "upload_failed"


def post_history_chart(
    client: WebClient,
    reply: HistoryReply,
    *,
    channel_id: str | None,
    logger: logging.Logger | None = None,
) -> HistoryReply:
    """Upload `reply`'s chart to `channel_id`; the reply says whether it was posted."""
    log = logger or logging.getLogger("bot.slack")
    if not any(not s.unlimited and s.remaining is not None for s in reply.snapshots):
        return reply  # nothing to draw: the text says so
    if not channel_id:
        return replace(reply, chart_posted=False, chart_error="no channel")
    png = history_png(
        HistoryChart(reply.user, reply.snapshots, now=reply.now, hours_left=reply.hours_left)
    )
    try:
        client.files_upload_v2(
            channel=channel_id,
            file=png,
            filename=f"{reply.user}-credits-30-days.png",
            title=messages.HISTORY_TITLE.format(user=reply.user),
            alt_txt=messages.HISTORY_ALT.format(user=reply.user),
        )
    except SlackApiError as error:
        reason = failure_reason(error)
        log.info("history chart of %s not posted to %s: %s", reply.user, channel_id, reason)
        return replace(reply, chart_posted=False, chart_error=reason)
    except (SlackRequestError, OSError) as error:
        log.warning("history chart of %s not uploaded: %s", reply.user, type(error).__name__)
        return replace(reply, chart_posted=False, chart_error=NOT_SENT)
    return replace(reply, chart_posted=True)
