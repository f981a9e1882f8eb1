"""Logging set-up shared by every process, with secrets scrubbed from every line."""

from __future__ import annotations

import logging
from collections.abc import Iterable

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
        text = super().format(record)
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text


def configure_logging(level: str, secrets: Iterable[str]) -> None:
    """Log to stderr at `level`, redacting `secrets` from everything written."""
    handler = logging.StreamHandler()
    handler.setFormatter(
        RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", secrets)
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Alembic narrates every migration step and plugin at INFO; keep its warnings only.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))
