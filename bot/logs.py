"""Logging set-up shared by every process, with secrets scrubbed from every line.

`LOG_FORMAT=text` (default): one human-readable line per record.
`LOG_FORMAT=json`: one JSON object per line — time, level, logger, message,
`request_id` (the Slack request being handled, the same from ack to reply),
exception — each string redacted before it is encoded.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import UTC, datetime

from bot.observability.context import current_request

REDACTED = "********"


class RedactingFormatter(logging.Formatter):
    """Formats as usual, then replaces every configured secret value with asterisks.

    A second line of defence: code never logs secrets on purpose, but a library
    might echo a request or a token into a message or a traceback, and the
    traceback is only rendered here.
    """

    def __init__(self, fmt: str, secrets: Iterable[str]) -> None:
        super().__init__(fmt)
        self._secrets = tuple(s for s in secrets if s and len(s) >= 4)

    def format(self, record: logging.LogRecord) -> str:
        return self.redact(super().format(record))

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text


class JsonFormatter(RedactingFormatter):
    """One JSON object per record; every value redacted before it is encoded
    (so a secret with a quote or a backslash in it cannot slip through escaped)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__("%(message)s", secrets)

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
        if record.exc_info:
            line["exception"] = self.redact(self.formatException(record.exc_info))
        elif record.exc_text:
            line["exception"] = self.redact(record.exc_text)
        if record.stack_info:
            line["stack"] = self.redact(self.formatStack(record.stack_info))
        return self.redact(json.dumps(line, ensure_ascii=False))


def configure_logging(level: str, secrets: Iterable[str], *, log_format: str = "text") -> None:
    """Log to stderr at `level` as text or JSON lines, redacting `secrets` from everything."""
    handler = logging.StreamHandler()
    formatter: logging.Formatter
    if log_format == "json":
        formatter = JsonFormatter(secrets)
    else:
        formatter = RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", secrets)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Alembic narrates every migration step and plugin at INFO; keep its warnings only.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))
