"""The console transport: one command a line on stdin, replies as text on stdout.

A second converter around the same `CommandService.handle` the Slack app uses:
`/credits show acme` and `show acme` both work.
"""

from __future__ import annotations

import re
from typing import TextIO

from bot.commands import messages
from bot.commands.context import Actor
from bot.commands.formatting import Content, layout
from bot.commands.replies import ConfirmReply, Reply
from bot.commands.service import CommandService

PROMPT = "credits> "
_MARKUP = re.compile(r"[*`]")
_MENTION = re.compile(r"<([@#])([A-Z0-9]+)(?:\|[^>]*)?>")


def render_text(reply: Reply) -> str:
    """A Reply as plain text: headline, sections, fields, then small print."""
    return content_text(layout(reply))


def content_text(content: Content) -> str:
    marker = "! " if content.warning else ""
    lines = [f"{marker}{content.headline}", "-" * min(60, len(marker + content.headline))]
    for section in content.sections:
        if section.text:
            lines.extend(_plain(section.text).splitlines())
        width = max((len(label) for label, _ in section.fields), default=0)
        lines.extend(f"{label.ljust(width)}  {_plain(value)}" for label, value in section.fields)
    lines.extend(f"  {_plain(note)}" for note in content.notes)
    return "\n".join(lines)


def run_console(
    service: CommandService,
    *,
    user_id: str,
    stdin: TextIO,
    stdout: TextIO,
    interactive: bool = False,
) -> int:
    """Answer each line of `stdin` until it ends (or `exit`). Returns the exit code."""
    actor = Actor(user_id=user_id)
    while True:
        if interactive:
            stdout.write(PROMPT)
            stdout.flush()
        line = stdin.readline()
        if not line:
            break
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if text in ("exit", "quit"):
            break
        reply = service.handle(actor, text)
        if isinstance(reply, ConfirmReply):
            # The console's Confirm button: the next line, `yes` or anything else.
            stdout.write(render_text(reply) + "\n" + messages.CONSOLE_CONFIRM + " ")
            stdout.flush()
            answer = stdin.readline().strip().lower()
            reply = service.confirm(actor, reply.confirmation_id, confirm=answer == "yes")
        stdout.write(render_text(reply) + "\n\n")
        stdout.flush()
    return 0


def _plain(text: str) -> str:
    """mrkdwn → plain text: no bold/code markers, `<@U123>` → `@U123`."""
    text = _MENTION.sub(lambda m: m.group(1) + m.group(2), _MARKUP.sub("", text))
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
