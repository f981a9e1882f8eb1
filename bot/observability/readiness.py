"""`GET /readyz`: can this instance do its work? Database, SendGrid, Slack.

- **database**: reachable, and migrated to the newest revision; checked at
  every probe (one cheap query on a connection of its own, bounded by a
  connect timeout, so a stopped server is reported, not waited for).
- **sendgrid**: the credentials are accepted (one listing call);
  **slack**: the bot token is valid (`auth.test`). Both are cached — a
  verdict for `ok_ttl` seconds, a rejection for `fail_ttl` — and refreshed by
  one probe at a time, so N probes make one call.

A rejection (wrong key, revoked token) makes the instance not ready. SendGrid
or Slack merely being unreachable does not: every instance would be pulled at
once, and the bot answers "SendGrid is unavailable" better than no answer at
all; the check then keeps its last verdict and says it could not confirm it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from alembic.config import Config
from alembic.script import ScriptDirectory
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from sqlalchemy import create_engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from bot.adapters.store.sql import MIGRATIONS
from bot.domain.credits import CreditsBackend
from bot.errors import AuthenticationFailed, RequestRejected, SendGridError

OK_TTL = 300.0
FAIL_TTL = 30.0
CONNECT_TIMEOUT = 3


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    ok: bool
    detail: str = "ok"


class Verdict(Exception):
    """Raised by a probe: `rejected` means a definite no, else it could not tell."""

    def __init__(self, detail: str, *, rejected: bool) -> None:
        super().__init__(detail)
        self.detail = detail
        self.rejected = rejected


class CachedCheck:
    """Runs `probe` at most once per TTL; concurrent callers share one run."""

    def __init__(
        self,
        name: str,
        probe: Callable[[], None],
        *,
        ok_ttl: float = OK_TTL,
        fail_ttl: float = FAIL_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._probe = probe
        self._ok_ttl = ok_ttl
        self._fail_ttl = fail_ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._result: CheckResult | None = None
        self._confirmed: CheckResult | None = None  # the last definite verdict
        self._expires = 0.0

    def __call__(self) -> CheckResult:
        with self._lock:
            now = self._clock()
            if self._result is not None and now < self._expires:
                return self._result
            try:
                self._probe()
            except Verdict as verdict:
                if verdict.rejected:
                    self._confirmed = CheckResult(self.name, False, verdict.detail)
                    self._result, ttl = self._confirmed, self._fail_ttl
                else:
                    last = self._confirmed
                    ok = last.ok if last is not None else True
                    detail = f"not confirmed ({verdict.detail})"
                    if last is not None and not last.ok:
                        detail = f"{last.detail}; {detail}"
                    self._result, ttl = CheckResult(self.name, ok, detail), self._fail_ttl
            else:
                self._confirmed = self._result = CheckResult(self.name, True)
                ttl = self._ok_ttl
            self._expires = now + ttl
            return self._result


class Readiness:
    """Runs every check; ready when all pass."""

    def __init__(self, checks: Sequence[Callable[[], CheckResult]]) -> None:
        self._checks = tuple(checks)

    def check(self) -> list[CheckResult]:
        return [check() for check in self._checks]


def database_check(url: str) -> Callable[[], CheckResult]:
    """Reachable and at the newest migration (not cached: it is one cheap query)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    heads = set(ScriptDirectory.from_config(config).get_heads())
    connect_args: dict[str, object] = (
        {"timeout": CONNECT_TIMEOUT}
        if url.startswith("sqlite")
        else {"connect_timeout": CONNECT_TIMEOUT}
    )
    engine = create_engine(url, poolclass=NullPool, connect_args=connect_args)

    def check() -> CheckResult:
        try:
            connection = engine.connect()
        except SQLAlchemyError as error:
            return CheckResult("database", False, f"unreachable: {_reason(error)}")
        try:
            rows = connection.execute(text("SELECT version_num FROM alembic_version"))
            current = {row[0] for row in rows}
        except SQLAlchemyError:
            current = set()
        finally:
            connection.close()
        if current != heads:
            shown = ", ".join(sorted(current)) or "none"
            return CheckResult(
                "database",
                False,
                f"not migrated: at {shown}, needs {', '.join(sorted(heads))} "
                "(run `credits-bot migrate`)",
            )
        return CheckResult("database", True)

    return check


def sendgrid_check(
    backend: CreditsBackend, *, ok_ttl: float = OK_TTL, fail_ttl: float = FAIL_TTL
) -> CachedCheck:
    """The credentials are accepted: one page of the account listing."""

    def probe() -> None:
        try:
            next(iter(backend.list_accounts()), None)
        except (AuthenticationFailed, RequestRejected) as error:
            raise Verdict(
                f"credentials rejected ({type(error).__name__}): check SENDGRID_API_KEY"
                " (and SENDGRID_API_USER on v2)",
                rejected=True,
            ) from None
        except SendGridError as error:
            raise Verdict(f"{type(error).__name__}", rejected=False) from None

    return CachedCheck("sendgrid", probe, ok_ttl=ok_ttl, fail_ttl=fail_ttl)


# Slack's answers that mean the token itself is no good (not a passing fault).
TOKEN_REJECTED = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "no_permission",
        "missing_scope",
        "ekm_access_denied",
    }
)


def slack_check(
    client: WebClient, *, ok_ttl: float = OK_TTL, fail_ttl: float = FAIL_TTL
) -> CachedCheck:
    """The bot token is valid: `auth.test`."""

    def probe() -> None:
        try:
            client.auth_test()
        except SlackApiError as error:
            code = str(error.response.get("error") or f"HTTP {error.response.status_code}")
            raise Verdict(
                f"token rejected ({code}): check SLACK_BOT_TOKEN", rejected=code in TOKEN_REJECTED
            ) from None
        except (SlackClientError, OSError) as error:
            raise Verdict(type(error).__name__, rejected=False) from None

    return CachedCheck("slack", probe, ok_ttl=ok_ttl, fail_ttl=fail_ttl)


def _reason(error: SQLAlchemyError) -> str:
    original = getattr(error, "orig", None) or error
    first = str(original).strip().splitlines()[0] if str(original).strip() else ""
    return f"{type(original).__name__}: {first}"[:300]
