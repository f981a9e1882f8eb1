"""Every error credits-bot raises on purpose, under one root.

```
BotError
├── ConfigError            a setting is missing or malformed; start-up stops
├── UserError              the caller can fix it: bad input, not allowed, conflicts
│   ├── ShuttingDown           this process is stopping; nothing was sent
│   └── ConfirmationRequired   held for its author's Confirm (size, or ending a plan)
├── DirectoryError         Slack could not say who is in a user group (roles fail closed)
├── NotifyError            Slack could not take a message (approval channel, requester DM)
├── SendGridError          talking to SendGrid failed
│   ├── AuthenticationFailed   SendGrid refused the configured credentials
│   ├── UnknownAccount         no such subuser / customer under this account
│   ├── RequestRejected        SendGrid understood the call and said no (bad value …)
│   ├── RateLimited            HTTP 429; `retry_after` seconds, when SendGrid said
│   ├── Unavailable            5xx, connection refused, timeout on a read: nothing changed
│   ├── OutcomeUnknown         a write may or may not have been applied; re-read, never repeat
│   └── BadResponse            a body that is neither a result nor a known error shape
└── StoreError             the database failed
```

`Unavailable` on a write means the request provably never reached SendGrid
(connection refused, or SendGrid answered 5xx), so nothing changed. When a write
may have reached SendGrid and no answer came back, the client raises
`OutcomeUnknown` instead: the caller must re-read the balance and tell the user.

No message built here ever contains a credential: the SendGrid client redacts
`api_key` before any text reaches an exception.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # for annotations only: the domain imports this module
    from bot.domain.credits import Balance
    from bot.domain.policy import ConfirmWhy


class BotError(Exception):
    """Root of every error credits-bot raises on purpose."""


class ConfigError(BotError):
    """A configuration value is missing or malformed.

    The message is one line that names the variable and what it expects.
    """


class UserError(BotError):
    """Something the caller can fix: bad input, missing role, approval conflicts."""


class ShuttingDown(UserError):
    """This process is stopping: new work is refused before anything is sent."""


class ConfirmationRequired(UserError):
    """A direct change stopped after its first read, before anything was sent: its author
    must confirm it first. `why` is a `ConfirmWhy`, `before` the balance read."""

    def __init__(self, message: str, *, why: ConfirmWhy, before: Balance) -> None:
        super().__init__(message)
        self.why = why
        self.before = before


class DirectoryError(BotError):
    """Slack could not say who is in a user group; roles that depend on it are denied.

    `reason` is Slack's error code (`plan_upgrade_required`, `ratelimited`, …)
    or a short description of the failure.
    """

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class NotifyError(BotError):
    """Slack refused or could not take a message. `reason` is Slack's error code."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class StoreError(BotError):
    """The database failed or is unreachable."""


class SendGridError(BotError):
    """Talking to SendGrid failed.

    `messages` holds SendGrid's own error texts, when it sent any.
    """

    def __init__(self, message: str, *, messages: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.messages = messages


class AuthenticationFailed(SendGridError):
    """SendGrid refused the configured `api_user` / `api_key` (or lacks permission)."""


class UnknownAccount(SendGridError):
    """The subuser or reseller customer does not exist under this account."""


class RequestRejected(SendGridError):
    """SendGrid understood the request and refused it (e.g. a value it does not accept)."""


class RateLimited(SendGridError):
    """SendGrid answered 429. `retry_after` is in seconds, when SendGrid said."""

    def __init__(
        self, message: str, *, retry_after: float | None = None, messages: tuple[str, ...] = ()
    ) -> None:
        super().__init__(message, messages=messages)
        self.retry_after = retry_after


class Unavailable(SendGridError):
    """SendGrid could not be reached or failed (5xx); nothing was changed.

    `sent` is False when the request provably never left this process
    (connection refused, connect timeout): only then may a write be retried.
    """

    def __init__(self, message: str, *, sent: bool = True, messages: tuple[str, ...] = ()) -> None:
        super().__init__(message, messages=messages)
        self.sent = sent


class OutcomeUnknown(SendGridError):
    """A write was sent and no answer came back: it may or may not have been applied."""


class BadResponse(SendGridError):
    """SendGrid's answer is neither a result nor a known error shape."""
