"""The console transport: one command a line on stdin, replies as text on stdout.

A second converter around the same `CommandService.handle` the Slack app uses:
`/credits show acme` and `show acme` both work. At a terminal, lines are read
with readline (editing, and a history kept across sessions when its file can be
written); log lines go to stderr, so stdout carries replies only. With
personas (`--demo`), `as approver` switches who is typing, so an approval can
be asked for and given in one session.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import TextIO

from bot.commands import messages
from bot.commands.context import Actor
from bot.commands.formatting import Content, layout
from bot.commands.replies import ConfirmReply, Reply
from bot.commands.service import CommandService

PROMPT = "credits> "
_MARKUP = re.compile(r"[*`]")
_MENTION = re.compile(r"<([@#])([A-Z0-9]+)(?:\|[^>]*)?>")
_DATE = re.compile(r"<!date\^([0-9]+)\^[^|>]*\|([^>]*)>")
_EMOJI = {":red_circle:": "(!!)", ":large_orange_circle:": "(!)", ":large_green_circle:": "✓"}
HISTORY_LENGTH = 1000
logger = logging.getLogger("bot.console")


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


class LineReader:
    """Lines from `stdin`; at a terminal through readline, with a history file.

    The history is read at start and written at `close()`; a file that cannot be
    read or written (no home, a read-only disk) only means no history.
    """

    def __init__(
        self,
        stdin: TextIO,
        stdout: TextIO,
        *,
        interactive: bool = False,
        history_file: Path | None = None,
    ) -> None:
        self._stdin = stdin
        self._stdout = stdout
        self._history_file = history_file
        self._readline = _readline() if interactive else None
        self._interactive = interactive
        if self._readline is not None and history_file is not None:
            with contextlib.suppress(OSError):
                self._readline.read_history_file(history_file)
            self._readline.set_history_length(HISTORY_LENGTH)

    def read(self, prompt: str) -> str | None:
        """The next line without its newline, or None at the end of input."""
        if self._readline is not None:
            try:
                return input(prompt)
            except EOFError:
                self._stdout.write("\n")
                return None
        if self._interactive or prompt != PROMPT:
            self._stdout.write(prompt)
            self._stdout.flush()
        line = self._stdin.readline()
        return line.rstrip("\n") if line else None

    def close(self) -> None:
        if self._readline is None or self._history_file is None:
            return
        try:
            self._history_file.parent.mkdir(parents=True, exist_ok=True)
            self._readline.write_history_file(self._history_file)
        except OSError as error:
            logger.debug("console history not saved: %s", error.strerror)


def run_console(
    service: CommandService,
    *,
    user_id: str,
    stdin: TextIO,
    stdout: TextIO,
    interactive: bool = False,
    history_file: Path | None = None,
    personas: Mapping[str, str] | None = None,
) -> int:
    """Answer each line of `stdin` until it ends (or `exit`). Returns the exit code.

    `personas` (name → Slack user ID) lets `as NAME` change who is typing.
    """
    actor = Actor(user_id=user_id)
    reader = LineReader(stdin, stdout, interactive=interactive, history_file=history_file)
    try:
        while True:
            line = reader.read(PROMPT)
            if line is None:
                break
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            if text in ("exit", "quit"):
                break
            words = text.split()
            if personas is not None and words[0].lower() == "as":
                actor = _switch(personas, words[1:], actor, stdout)
                continue
            reply = service.handle(actor, text)
            if isinstance(reply, ConfirmReply):
                # The console's Confirm button: the next line, `yes` or anything else.
                stdout.write(render_text(reply) + "\n")
                answer = (reader.read(messages.CONSOLE_CONFIRM + " ") or "").strip().lower()
                reply = service.confirm(actor, reply.confirmation_id, confirm=answer == "yes")
            stdout.write(render_text(reply) + "\n\n")
            stdout.flush()
    finally:
        reader.close()
    return 0


def _switch(personas: Mapping[str, str], args: list[str], actor: Actor, stdout: TextIO) -> Actor:
    name = args[0].lower() if len(args) == 1 else ""
    if name not in personas:
        stdout.write(messages.CONSOLE_PERSONAS.format(names=", ".join(personas)) + "\n\n")
        stdout.flush()
        return actor
    stdout.write(messages.CONSOLE_NOW_AS.format(persona=name, user_id=personas[name]) + "\n\n")
    stdout.flush()
    return Actor(user_id=personas[name])


def _readline() -> ModuleType | None:
    """The readline module where the platform has one (not on Windows)."""
    try:
        import readline  # noqa: PLC0415 (only at a terminal)
    except ImportError:
        return None
    return readline


def _plain(text: str) -> str:
    """mrkdwn → plain text: no bold/code markers, `<@U123>` → `@U123`, Slack's dates in
    this machine's time zone, status emoji as marks."""
    text = _MENTION.sub(lambda m: m.group(1) + m.group(2), _MARKUP.sub("", text))
    text = _DATE.sub(lambda m: _local_time(int(m.group(1))), text)
    for code, mark in _EMOJI.items():
        text = text.replace(code, mark)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _local_time(timestamp: int) -> str:
    """`Tue 14:00` in the console's own time zone (Slack shows each reader theirs)."""
    return datetime.fromtimestamp(timestamp).astimezone().strftime("%a %H:%M")
