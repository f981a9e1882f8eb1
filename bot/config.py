"""Configuration: read once from the environment (and `.env`), validated, passed down.

This is the only module that reads the environment. `load_settings()` returns a
frozen `Settings`; a missing or malformed value raises `ConfigError` with one
line naming the variable and what it expects. Secrets are `Secret` objects whose
`repr` and `str` never show the value; call `.reveal()` where it must be sent.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TypeVar
from urllib.parse import unquote, urlsplit

from dotenv import dotenv_values

from bot.errors import ConfigError

T = TypeVar("T")


class Secret:
    """A credential that must not appear in a repr, a log line or a reply."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting of design §3, typed. Built by `load_settings()`."""

    slack_bot_token: Secret | None = None
    slack_signing_secret: Secret | None = None
    slack_app_token: Secret | None = None
    slack_api_url: str = "https://slack.com/api/"

    sendgrid_api_user: str | None = None
    sendgrid_api_key: Secret | None = None
    sendgrid_api_version: str = "v2"
    sendgrid_api_url: str = "https://api.sendgrid.com/apiv2/"
    sendgrid_mode: str = "subuser"
    sendgrid_format: str = "json"
    sendgrid_rate_limit: int = 600
    sendgrid_rate_window: float = 60.0
    sendgrid_interactive_reserve: float = 20.0
    sendgrid_timeout: float = 10.0
    sendgrid_proxy: str | None = None

    database_url: str = "sqlite:///credits-bot.sqlite3"

    admins: frozenset[str] = frozenset()
    approvers: frozenset[str] = frozenset()
    operators: frozenset[str] = frozenset()
    viewers: frozenset[str] = frozenset()

    approval_channel: str | None = None
    auto_approve_max: int = 0
    # Credits one operator (and one subuser) may receive by auto-approval in 24 h;
    # None: 3 × auto_approve_max.
    auto_approve_budget: int | None = None
    approval_ttl: timedelta = timedelta(hours=24)
    remind_after: timedelta = timedelta(minutes=30)
    escalate_after: timedelta = timedelta(hours=2)
    escalate_to: str | None = None
    log_channel: str | None = None
    confirm_above: int = 10_000
    max_change: int = 1_000_000
    two_approvals_above: int = 100_000
    require_reason: bool = False
    ticket_pattern: str = r"\b[A-Z][A-Z0-9]+-[0-9]+\b"
    ticket_url: str | None = None

    alert_channel: str | None = None
    alert_below: int = 1000
    alert_percent: float = 10.0
    alert_schedule: str = "*/15 * * * *"
    # The clock reads every watched balance at least this often (issue 15).
    max_staleness: timedelta = timedelta(hours=6)
    watch: tuple[str, ...] = ()

    port: int = 3000
    # `serve`'s gunicorn worker processes; None: one per CPU this process may use, at most 4.
    web_concurrency: int | None = None
    log_level: str = "INFO"
    log_format: str = "text"
    # prometheus_client's multi-process directory (gunicorn workers add up there).
    metrics_dir: str | None = None
    # `clock` serves /metrics on this port when set (the web process serves its own).
    metrics_port: int | None = None

    def secrets(self) -> tuple[str, ...]:
        """The configured secret values, for log redaction and leak scans."""
        candidates = (
            self.slack_bot_token,
            self.slack_signing_secret,
            self.slack_app_token,
            self.sendgrid_api_key,
        )
        urls = (self.sendgrid_proxy, self.database_url, self.slack_api_url, self.sendgrid_api_url)
        in_urls = (secret for url in urls if url for secret in url_credentials(url))
        return (*(s.reveal() for s in candidates if s), *in_urls)

    @property
    def effective_auto_approve_budget(self) -> int:
        """CREDITS_AUTO_APPROVE_BUDGET, or 3 × CREDITS_AUTO_APPROVE_MAX when unset."""
        if self.auto_approve_budget is not None:
            return self.auto_approve_budget
        return 3 * self.auto_approve_max

    def require(self, *names: str) -> None:
        """Stop with a ConfigError if any of these settings (env names) is unset."""
        for name in names:
            if not getattr(self, _ATTRIBUTE_OF[name]):
                raise ConfigError(f"{name} is required for this command and is not set")


def url_credentials(url: str) -> tuple[str, ...]:
    """The password in a URL's `user:password@`, in the forms a log line or an echo may
    give it: as written (percent-encoded), decoded, as `user:password`, and base64 of
    that (a proxy's `Proxy-Authorization: Basic …` header). Empty without a password."""
    userinfo, at, _ = urlsplit(url).netloc.rpartition("@")
    user, colon, password = userinfo.partition(":")
    if not (at and colon and password):
        return ()
    pair = f"{unquote(user)}:{unquote(password)}"
    encoded = base64.b64encode(pair.encode()).decode()
    return tuple(dict.fromkeys((password, unquote(password), userinfo, pair, encoded)))


DEFAULT_SENDGRID_URLS = {
    "v2": "https://api.sendgrid.com/apiv2/",
    # EU-regional subusers: SENDGRID_API_URL=https://api.eu.sendgrid.com/
    "v3": "https://api.sendgrid.com/",
}

_ATTRIBUTE_OF = {
    "SLACK_BOT_TOKEN": "slack_bot_token",
    "SLACK_SIGNING_SECRET": "slack_signing_secret",
    "SLACK_APP_TOKEN": "slack_app_token",
    "SENDGRID_API_USER": "sendgrid_api_user",
    "SENDGRID_API_KEY": "sendgrid_api_key",
    "CREDITS_APPROVAL_CHANNEL": "approval_channel",
    "CREDITS_ALERT_CHANNEL": "alert_channel",
}


def load_settings(
    environ: Mapping[str, str] | None = None, *, dotenv_path: str | Path | None = ".env"
) -> Settings:
    """Build Settings from `.env` (if present) overlaid by the process environment.

    Pass `environ` to build from an explicit mapping (tests); `.env` is then
    ignored unless `dotenv_path` is also given explicitly.
    """
    values: dict[str, str] = {}
    if environ is None:
        if dotenv_path is not None and Path(dotenv_path).is_file():
            values.update({k: v for k, v in dotenv_values(dotenv_path).items() if v is not None})
        values.update(os.environ)
    else:
        values.update(environ)
    env = _Env(values)
    # v3 when only an API key is configured (v2 needs api_user + api_key).
    implied = "v3" if env.text("SENDGRID_API_KEY") and not env.text("SENDGRID_API_USER") else "v2"
    version = env.choice("SENDGRID_API_VERSION", ("v2", "v3"), implied)
    return Settings(
        slack_bot_token=env.secret("SLACK_BOT_TOKEN"),
        slack_signing_secret=env.secret("SLACK_SIGNING_SECRET"),
        slack_app_token=env.secret("SLACK_APP_TOKEN"),
        slack_api_url=env.url("SLACK_API_URL", "https://slack.com/api/"),
        sendgrid_api_user=env.text("SENDGRID_API_USER"),
        sendgrid_api_key=env.secret("SENDGRID_API_KEY"),
        sendgrid_api_version=version,
        sendgrid_api_url=env.url("SENDGRID_API_URL", DEFAULT_SENDGRID_URLS[version]),
        sendgrid_mode=env.choice("SENDGRID_MODE", ("subuser", "reseller"), "subuser"),
        sendgrid_format=env.choice("SENDGRID_FORMAT", ("json", "xml"), "json"),
        sendgrid_rate_limit=env.integer("SENDGRID_RATE_LIMIT", 600, minimum=1),
        sendgrid_rate_window=env.number("SENDGRID_RATE_WINDOW", 60.0, minimum=1.0),
        sendgrid_interactive_reserve=env.number(
            "SENDGRID_INTERACTIVE_RESERVE", 20.0, minimum=0.0, maximum=90.0
        ),
        sendgrid_timeout=env.number("SENDGRID_TIMEOUT", 10.0, minimum=0.1),
        sendgrid_proxy=env.proxy("SENDGRID_PROXY"),
        database_url=normalize_database_url(
            env.text("DATABASE_URL") or "sqlite:///credits-bot.sqlite3"
        ),
        admins=env.slack_ids("CREDITS_ADMINS"),
        approvers=env.slack_ids("CREDITS_APPROVERS"),
        operators=env.slack_ids("CREDITS_OPERATORS"),
        viewers=env.slack_ids("CREDITS_VIEWERS"),
        approval_channel=env.channel("CREDITS_APPROVAL_CHANNEL"),
        auto_approve_max=env.integer("CREDITS_AUTO_APPROVE_MAX", 0, minimum=0),
        auto_approve_budget=env.optional_integer(
            "CREDITS_AUTO_APPROVE_BUDGET", minimum=0, maximum=2**53
        ),
        approval_ttl=env.duration("CREDITS_APPROVAL_TTL", timedelta(hours=24)),
        remind_after=env.duration("CREDITS_REMIND_AFTER", timedelta(minutes=30)),
        escalate_after=env.duration("CREDITS_ESCALATE_AFTER", timedelta(hours=2)),
        escalate_to=env.user_group("CREDITS_ESCALATE_TO"),
        log_channel=env.channel("CREDITS_LOG_CHANNEL"),
        confirm_above=env.integer("CREDITS_CONFIRM_ABOVE", 10_000, minimum=0),
        max_change=env.integer("CREDITS_MAX_CHANGE", 1_000_000, minimum=1),
        two_approvals_above=env.integer("CREDITS_TWO_APPROVALS_ABOVE", 100_000, minimum=0),
        require_reason=env.boolean("CREDITS_REQUIRE_REASON", False),
        ticket_pattern=env.regex("CREDITS_TICKET_PATTERN", r"\b[A-Z][A-Z0-9]+-[0-9]+\b"),
        ticket_url=env.ticket_url("CREDITS_TICKET_URL"),
        alert_channel=env.channel("CREDITS_ALERT_CHANNEL"),
        alert_below=env.integer("CREDITS_ALERT_BELOW", 1000, minimum=0),
        alert_percent=env.number("CREDITS_ALERT_PERCENT", 10.0, minimum=0.0, maximum=100.0),
        alert_schedule=env.cron("CREDITS_ALERT_SCHEDULE", "*/15 * * * *"),
        max_staleness=env.duration("CREDITS_MAX_STALENESS", timedelta(hours=6)),
        watch=env.names("CREDITS_WATCH"),
        port=env.integer("PORT", 3000, minimum=1, maximum=65535),
        web_concurrency=env.optional_integer("WEB_CONCURRENCY", minimum=1, maximum=64),
        log_level=env.choice("LOG_LEVEL", ("DEBUG", "INFO", "WARNING", "ERROR"), "INFO"),
        log_format=env.choice("LOG_FORMAT", ("text", "json"), "text"),
        metrics_dir=env.text("PROMETHEUS_MULTIPROC_DIR"),
        metrics_port=env.optional_integer("METRICS_PORT", minimum=1, maximum=65535),
    )


def console_history_file(environ: Mapping[str, str] | None = None) -> Path | None:
    """Where the console keeps its line history: `$XDG_STATE_HOME/credits-bot/`, else
    `~/.local/state/credits-bot/` (the XDG default), or None without a home."""
    # The platform's conventions, not settings of the bot (not in .env.example).
    system = os.environ if environ is None else environ
    state = system.get("XDG_STATE_HOME", "").strip()
    if state and Path(state).is_absolute():
        return Path(state) / "credits-bot" / "console_history"
    home = system.get("HOME", "").strip()
    if not home:
        return None
    return Path(home) / ".local" / "state" / "credits-bot" / "console_history"


def normalize_database_url(url: str) -> str:
    """Accept database URLs as hosting platforms hand them out.

    `postgres://` and `postgresql://` become `postgresql+psycopg://` (psycopg 3);
    an explicit driver (`postgresql+psycopg://`, `sqlite://`) is kept as given.
    """
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    if not re.match(r"^(sqlite|postgresql\+\w+)://", url):
        raise ConfigError(
            "DATABASE_URL: expected sqlite:///PATH or postgres[ql]://USER@HOST/DB, "
            f"got a URL starting {url.split(':', 1)[0]!r}"
        )
    return url


_SLACK_ID = re.compile(r"^[UWS][A-Z0-9]{2,}$")
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,}$")
_DURATION = re.compile(r"^(\d+)\s*([smhd])$")
_DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


@dataclass
class _Env:
    values: Mapping[str, str]

    def text(self, name: str) -> str | None:
        value = self.values.get(name, "").strip()
        return value or None

    def secret(self, name: str) -> Secret | None:
        value = self.text(name)
        return Secret(value) if value else None

    def _parsed(self, name: str, default: T, parse: Callable[[str], T], expects: str) -> T:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            return parse(raw)
        except (ValueError, ConfigError):
            raise ConfigError(f"{name}: expected {expects}, got {raw!r}") from None

    def url(self, name: str, default: str) -> str:
        def parse(raw: str) -> str:
            if not re.match(r"^https?://[^/\s]+", raw):
                raise ValueError(raw)
            return raw if raw.endswith("/") else raw + "/"

        return self._parsed(name, default, parse, "an http(s):// URL")

    def proxy(self, name: str) -> str | None:
        def parse(raw: str) -> str | None:
            if not re.match(r"^https?://[^/\s]+/?$", raw):
                raise ValueError(raw)
            return raw

        return self._parsed(name, None, parse, "a proxy URL (http://host:port)")

    def choice(self, name: str, options: tuple[str, ...], default: str) -> str:
        def parse(raw: str) -> str:
            for option in options:
                if raw.lower() == option.lower():
                    return option
            raise ValueError(raw)

        return self._parsed(name, default, parse, " or ".join(options))

    def integer(
        self, name: str, default: int, *, minimum: int = 0, maximum: int | None = None
    ) -> int:
        def parse(raw: str) -> int:
            value = int(raw.replace(",", "").replace("_", ""))
            if value < minimum or (maximum is not None and value > maximum):
                raise ValueError(raw)
            return value

        upper = f" and at most {maximum}" if maximum is not None else ""
        return self._parsed(name, default, parse, f"a whole number of at least {minimum}{upper}")

    def boolean(self, name: str, default: bool) -> bool:
        def parse(raw: str) -> bool:
            lowered = raw.lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)

        return self._parsed(name, default, parse, "true or false")

    def regex(self, name: str, default: str) -> str:
        def parse(raw: str) -> str:
            try:
                re.compile(raw)
            except re.error as error:
                raise ValueError(raw) from error
            return raw

        return self._parsed(name, default, parse, "a regular expression")

    def ticket_url(self, name: str) -> str | None:
        def parse(raw: str) -> str:
            if not re.match(r"^https?://[^/\s]+", raw) or "{ticket}" not in raw:
                raise ValueError(raw)
            return raw

        return self._parsed(
            name, None, parse, "an http(s):// URL containing {ticket}, e.g. https://x/t/{ticket}"
        )

    def optional_integer(self, name: str, *, minimum: int, maximum: int) -> int | None:
        if self.text(name) is None:
            return None
        return self.integer(name, minimum, minimum=minimum, maximum=maximum)

    def number(
        self, name: str, default: float, *, minimum: float, maximum: float | None = None
    ) -> float:
        def parse(raw: str) -> float:
            value = float(raw.rstrip("%"))
            if not value >= minimum or (maximum is not None and value > maximum):
                raise ValueError(raw)
            return value

        upper = f" and at most {maximum:g}" if maximum is not None else ""
        return self._parsed(name, default, parse, f"a number of at least {minimum:g}{upper}")

    def duration(self, name: str, default: timedelta) -> timedelta:
        def parse(raw: str) -> timedelta:
            match = _DURATION.match(raw.lower())
            if not match or int(match.group(1)) == 0:
                raise ValueError(raw)
            unit = _DURATION_UNITS[match.group(2)]
            return timedelta(**{unit: int(match.group(1))})

        return self._parsed(name, default, parse, "a duration such as 90m, 24h or 2d")

    def cron(self, name: str, default: str) -> str:
        def parse(raw: str) -> str:
            # Imported here so that reading settings does not pull in the scheduler.
            from apscheduler.triggers.cron import CronTrigger  # noqa: PLC0415

            CronTrigger.from_crontab(raw)
            return raw

        return self._parsed(name, default, parse, "a 5-field cron expression like */15 * * * *")

    def _list(self, name: str) -> list[str]:
        raw = self.text(name) or ""
        return [item.strip() for item in raw.split(",") if item.strip()]

    def slack_ids(self, name: str) -> frozenset[str]:
        ids = self._list(name)
        for item in ids:
            if not _SLACK_ID.match(item):
                raise ConfigError(
                    f"{name}: expected Slack user IDs (U…/W…) or user-group IDs (S…), "
                    f"comma-separated; got {item!r} (usernames are not unique, so not accepted)"
                )
        return frozenset(ids)

    def user_group(self, name: str) -> str | None:
        def parse(raw: str) -> str:
            if not raw.startswith("S") or not _SLACK_ID.match(raw):
                raise ValueError(raw)
            return raw

        return self._parsed(name, None, parse, "a user-group ID such as S0123456789")

    def channel(self, name: str) -> str | None:
        def parse(raw: str) -> str:
            if not _CHANNEL_ID.match(raw):
                raise ValueError(raw)
            return raw

        return self._parsed(name, None, parse, "a channel ID such as C0123456789 (not #name)")

    def names(self, name: str) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self._list(name)))
