"""Logging set-up shared by every process, with secrets scrubbed from every record.

Code never logs a secret on purpose, but a library may echo a request, a token or a
body into a message or a traceback. So the scrubbing happens where a record is
born, not where it is written: `configure_logging` installs a record factory that
scrubs the message, the traceback and the stack of every record as it is created,
before any handler (stderr, pytest's capture, an error tracker) sees it. The
formatter scrubs once more what it renders itself.

`LOG_FORMAT=text` (default): one human-readable line per record.
`LOG_FORMAT=json`: one JSON object per line — time, level, logger, message,
`request_id` (the Slack request being handled, the same from ack to reply),
exception — each string scrubbed before it is encoded.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from bot.observability.context import current_request
from bot.scrubbing import REDACTED, Scrubber

__all__ = ["REDACTED", "RedactingFormatter", "ScrubbingRecordFactory", "configure_logging"]

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class ScrubbingRecordFactory:
    """A `logging.setLogRecordFactory` factory whose records hold no secret.

    A record whose message holds a secret gets its message scrubbed and its
    arguments dropped (they are in the message); a record with an exception gets
    its traceback rendered and scrubbed now (`exc_text`, which formatters use
    instead of rendering it again). Other records are left as they are.
    """

    def __init__(self, scrubber: Scrubber, base: Callable[..., logging.LogRecord]) -> None:
        # Installed again (a second app in one process), wrap the original, not ourselves.
        if isinstance(base, ScrubbingRecordFactory):
            base = base._base
        self._base: Callable[..., logging.LogRecord] = base
        self._scrubber = scrubber
        self._formatter = logging.Formatter()

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self._base(*args, **kwargs)
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a bad format string: logging reports it later
            message = str(record.msg)
        scrubbed = self._scrubber.scrub(message)
        if scrubbed is not message:
            record.msg, record.args = scrubbed, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = self._scrubber.scrub(self._formatter.formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = self._scrubber.scrub(record.stack_info)
        return record


class RedactingFormatter(logging.Formatter):
    """Formats as usual, then scrubs the line (time, names and all) once more."""

    def __init__(self, fmt: str, scrubber: Scrubber) -> None:
        super().__init__(fmt)
        self._scrubber = scrubber

    def format(self, record: logging.LogRecord) -> str:
        return self.redact(super().format(record))

    def redact(self, text: str) -> str:
        return self._scrubber.scrub(text)


class JsonFormatter(RedactingFormatter):
    """One JSON object per record; every value scrubbed before it is encoded
    (so a secret with a quote or a backslash in it cannot slip through escaped)."""

    def __init__(self, scrubber: Scrubber) -> None:
        super().__init__("%(message)s", scrubber)

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": self.redact(record.getMessage()),
        }
        request = current_request()
        if request is not None:
            line["request_id"] = request.request_id
        if record.exc_text:
            line["exception"] = self.redact(record.exc_text)
        elif record.exc_info:
            line["exception"] = self.redact(self.formatException(record.exc_info))
        if record.stack_info:
            line["stack"] = self.redact(self.formatStack(record.stack_info))
        return self.redact(json.dumps(line, ensure_ascii=False))


def configure_logging(level: str, secrets: Iterable[str], *, log_format: str = "text") -> None:
    """Log to stderr at `level` as text or JSON lines, scrubbing `secrets` from every record."""
    scrubber = Scrubber(secrets)
    logging.setLogRecordFactory(ScrubbingRecordFactory(scrubber, logging.getLogRecordFactory()))
    handler = logging.StreamHandler()
    formatter: logging.Formatter
    if log_format == "json":
        formatter = JsonFormatter(scrubber)
    else:
        formatter = RedactingFormatter(FORMAT, scrubber)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Alembic narrates every migration step and plugin at INFO; keep its warnings only.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))
