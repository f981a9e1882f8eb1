"""`GET /readyz`: can this instance do its work? Database, SendGrid, Slack.

- **database**: reachable, and migrated to the newest revision; checked at
  every probe (one cheap query on a connection of its own, bounded by a
  connect timeout, so a stopped server is reported, not waited for).
- **sendgrid**: the credentials are accepted (one listing call);
  **slack**: the bot token is valid (`auth.test`). Both are cached — a
  verdict for `ok_ttl` seconds, a rejection for `fail_ttl` — and refreshed in
  the background, one refresh at a time, so N probes make one call and a slow
  SendGrid never makes a probe wait.

A rejection (wrong key, revoked token) makes the instance not ready. SendGrid
or Slack merely being unreachable does not: every instance would be pulled at
once, and the bot answers "SendGrid is unavailable" better than no answer at
all; the check then keeps its last verdict and says it could not confirm it.
"""

from __future__ import annotations

import logging
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
from bot.domain.ports import CreditsBackend
from bot.errors import AuthenticationFailed, RequestRejected, SendGridError

OK_TTL = 300.0
FAIL_TTL = 30.0
CONNECT_TIMEOUT = 3
FIRST_WAIT = 5.0

logger = logging.getLogger("bot.readiness")


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


def in_background(task: Callable[[], None]) -> None:
    threading.Thread(target=task, name="readiness-check", daemon=True).start()


class CachedCheck:
    """Runs `probe` at most once per TTL; concurrent callers share one run.

    Once there is a verdict, an expired one is still answered while the next
    probe runs in the background (`start`), so a slow SendGrid or Slack never
    makes the probe itself time out. The very first probe waits up to
    `first_wait` seconds for its verdict, then counts as not confirmed yet.
    """

    def __init__(
        self,
        name: str,
        probe: Callable[[], None],
        *,
        ok_ttl: float = OK_TTL,
        fail_ttl: float = FAIL_TTL,
        first_wait: float = FIRST_WAIT,
        clock: Callable[[], float] = time.monotonic,
        start: Callable[[Callable[[], None]], None] = in_background,
    ) -> None:
        self.name = name
        self._probe = probe
        self._ok_ttl = ok_ttl
        self._fail_ttl = fail_ttl
        self._first_wait = first_wait
        self._clock = clock
        self._start = start
        self._lock = threading.Lock()
        self._checked = threading.Event()
        self._refreshing = False
        self._result: CheckResult | None = None
        self._confirmed: CheckResult | None = None  # the last definite verdict
        self._expires = 0.0

    def __call__(self) -> CheckResult:
        with self._lock:
            expired = self._result is None or self._clock() >= self._expires
            refresh = expired and not self._refreshing
            self._refreshing = self._refreshing or refresh
        if refresh:
            self._start(self._refresh)
        self._checked.wait(self._first_wait)
        with self._lock:
            return self._result or CheckResult(self.name, True, "not confirmed yet (checking)")

    def _refresh(self) -> None:
        result, ttl = CheckResult(self.name, True, "not confirmed (the check failed)"), 0.0
        try:
            self._probe()
        except Verdict as verdict:
            result, ttl = self._judge(verdict), self._fail_ttl
        except Exception:  # a bug in a probe must not stop the checks for good
            logger.exception("readiness check %s failed", self.name)
        else:
            result, ttl = CheckResult(self.name, True), self._ok_ttl
            self._confirmed = result
        finally:
            with self._lock:
                self._result, self._expires = result, self._clock() + ttl
                self._refreshing = False
            self._checked.set()

    def _judge(self, verdict: Verdict) -> CheckResult:
        if verdict.rejected:
            self._confirmed = CheckResult(self.name, False, verdict.detail)
            return self._confirmed
        last = self._confirmed
        detail = f"not confirmed ({verdict.detail})"
        if last is not None and not last.ok:
            detail = f"{last.detail}; {detail}"
        return CheckResult(self.name, last.ok if last is not None else True, detail)


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
