"""`credits-bot doctor`, and the checks long-running commands make before they start.

`doctor` checks a deployment and prints one line per check, `✓` or `✗` with the
fix (`–` for something optional that is not set up):

- settings: what is required is set (the Slack token and signing secret, or the
  Socket Mode app token, which Slack is asked about; SendGrid credentials; at
  least one role);
- the Slack token (`auth.test`) and the scopes it was granted (`x-oauth-scopes`)
  against the ones `manifest.yml` asks for;
- the approval and alert channels: they exist and the bot can post there
  (`conversations.info`);
- every user group a role is granted to (`usergroups.users.list`);
- SendGrid: the credentials are accepted and, on v3, the key has the scopes the
  bot needs (`GET /v3/scopes`);
- the database: reachable and migrated to the newest revision.

It changes nothing anywhere (it does not migrate; it does not create a SQLite
file), exits 1 if any check failed, and never prints a secret: every line is
scrubbed of the configured secret values before it is written.

`check_sendgrid_settings`, `verify_slack_token` and (Socket Mode)
`verify_app_token` are what `serve`, `socket`, `clock` and `sweep` run before
they start, so a bad setting stops them with one line naming it (for `serve`,
before gunicorn starts its worker).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TextIO

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from bot.adapters.sendgrid import SendGridV2Client, SendGridV3Client, build_backend
from bot.adapters.sendgrid.v3 import REQUIRED_SCOPES as SENDGRID_V3_SCOPES
from bot.adapters.slack.web import build_web_client, failure_reason
from bot.adapters.store import create_store_engine
from bot.adapters.store.sql import MIGRATIONS, database_location, describe_failure
from bot.config import Settings
from bot.errors import AuthenticationFailed, BotError, ConfigError, SendGridError
from bot.logs import REDACTED

OK, FAILED, NOT_SET = "✓", "✗", "–"

# manifest.yml's `oauth_config.scopes.bot` (a test keeps the two equal).
SLACK_SCOPES = frozenset(
    {
        "commands",
        "chat:write",
        "chat:write.public",
        "usergroups:read",
        "channels:read",
        "groups:read",
    }
)
WHERE_TO_FIND_IT = "copy the Bot User OAuth Token (xoxb-…) from the app's OAuth & Permissions page"

APP_LEVEL_HINT = (
    "create an app-level token with connections:write (Basic Information → App-Level Tokens)"
)


@dataclass(frozen=True, slots=True)
class Finding:
    """The outcome of one check: a mark, what was checked, and what was found or the fix."""

    mark: str
    subject: str
    detail: str

    @property
    def failed(self) -> bool:
        return self.mark == FAILED

    def line(self) -> str:
        return f"{self.mark} {self.subject}: {self.detail}"


@dataclass(frozen=True, slots=True)
class SlackIdentity:
    team: str
    user: str
    scopes: frozenset[str] | None  # None when Slack did not say


# --- what commands check before they start ---------------------------------------------


def check_sendgrid_settings(settings: Settings) -> None:
    """ConfigError naming the variable if the SendGrid credentials are missing."""
    backend = build_backend(settings)
    backend.close()


def verify_slack_token(client: WebClient, *, api_url: str) -> SlackIdentity:
    """`auth.test`: who the token is, and the scopes it was granted.

    Raises ConfigError naming SLACK_BOT_TOKEN when Slack refuses the token, and
    BotError when Slack cannot be reached at `api_url`.
    """
    try:
        response = client.auth_test()
    except SlackApiError as error:
        raise ConfigError(
            f"SLACK_BOT_TOKEN: Slack refused the token ({failure_reason(error)}); "
            f"{WHERE_TO_FIND_IT}"
        ) from None
    except (SlackClientError, OSError) as error:
        raise BotError(
            f"Slack could not be reached at {api_url} ({_cause(error)}); check SLACK_API_URL "
            "and the network"
        ) from None
    header = _header(response.headers, "x-oauth-scopes")
    scopes = frozenset(s.strip() for s in header.split(",") if s.strip()) if header else None
    return SlackIdentity(
        team=str(response.get("team") or response.get("team_id") or "?"),
        user=str(response.get("user") or response.get("user_id") or "?"),
        scopes=scopes,
    )


def verify_app_token(client: WebClient, app_token: str, *, api_url: str) -> None:
    """Socket Mode's `apps.connections.open` with the app-level token (the URL it
    returns is single-use and left to expire). ConfigError naming SLACK_APP_TOKEN
    when Slack refuses the token."""
    try:
        client.apps_connections_open(app_token=app_token)
    except SlackApiError as error:
        raise ConfigError(
            f"SLACK_APP_TOKEN: Slack refused it ({failure_reason(error)}); {APP_LEVEL_HINT}"
        ) from None
    except (SlackClientError, OSError) as error:
        raise BotError(
            f"Slack could not be reached at {api_url} ({_cause(error)}); check SLACK_API_URL "
            "and the network"
        ) from None


def slack_client(settings: Settings) -> WebClient:
    """A client for the checks. Its own failure logs are silenced: the check's one
    line says what failed."""
    assert settings.slack_bot_token is not None
    token = settings.slack_bot_token.reveal()
    return build_web_client(token=token, base_url=settings.slack_api_url, logger=_quiet_logger())


def _quiet_logger() -> logging.Logger:
    quiet = logging.getLogger("bot.slack.checks")
    quiet.setLevel(logging.CRITICAL)
    return quiet


# --- doctor ------------------------------------------------------------------------------


def run_doctor(
    settings: Settings,
    *,
    out: TextIO,
    web_client: WebClient | None = None,
) -> int:
    """Run every check, print one line each as it completes; 1 if any failed, else 0."""
    failed = False
    secrets = [s for s in settings.secrets() if len(s) >= 4]  # as the log formatter does
    for finding in _findings(settings, web_client):
        line = finding.line()
        for secret in secrets:
            line = line.replace(secret, REDACTED)
        print(line, file=out, flush=True)
        failed = failed or finding.failed
    return 1 if failed else 0


def settings_error(error: ConfigError) -> str:
    """The doctor's line when the settings cannot even be read."""
    return Finding(FAILED, "settings", str(error)).line()


def _findings(settings: Settings, web_client: WebClient | None) -> Iterator[Finding]:
    yield from _settings_findings(settings)
    if settings.slack_bot_token:
        yield from _slack_findings(settings, web_client or slack_client(settings))
    yield from _sendgrid_findings(settings)
    yield _database_finding(settings)


def _settings_findings(settings: Settings) -> Iterator[Finding]:
    yield Finding(
        OK,
        "settings",
        f"read (SendGrid {settings.sendgrid_api_version}, {settings.sendgrid_mode} mode, "
        f"database: {database_location(create_store_engine(settings.database_url))})",
    )
    if not settings.slack_bot_token:
        yield Finding(FAILED, "SLACK_BOT_TOKEN", f"not set; {WHERE_TO_FIND_IT}")
    if settings.slack_app_token:
        yield _app_token_finding(settings)
    elif settings.slack_signing_secret:
        yield Finding(OK, "SLACK_SIGNING_SECRET", "set (Slack's requests are checked with it)")
    else:
        yield Finding(
            FAILED,
            "SLACK_SIGNING_SECRET",
            "not set; copy the Signing Secret from the app's Basic Information page "
            "(or use Socket Mode: SLACK_APP_TOKEN and `credits-bot socket`)",
        )
    roles = settings.admins | settings.approvers | settings.operators | settings.viewers
    if not roles:
        yield Finding(
            FAILED,
            "roles",
            "no one has a role, so everyone is refused; set CREDITS_ADMINS to your Slack "
            "member ID (profile → ⋮ → Copy member ID)",
        )
    if not settings.approval_channel:
        yield Finding(
            NOT_SET,
            "CREDITS_APPROVAL_CHANNEL",
            "not set: changes that need approval are listed by /credits pending but posted "
            "nowhere; set it to a channel ID",
        )
    if not settings.alert_channel:
        yield Finding(
            NOT_SET,
            "CREDITS_ALERT_CHANNEL",
            "not set: sweeps run but post no low-credit warnings; set it to a channel ID",
        )


def _app_token_finding(settings: Settings) -> Finding:
    assert settings.slack_app_token is not None
    client = build_web_client(token="", base_url=settings.slack_api_url, logger=_quiet_logger())
    try:
        verify_app_token(client, settings.slack_app_token.reveal(), api_url=settings.slack_api_url)
    except BotError as error:
        return Finding(FAILED, "SLACK_APP_TOKEN", str(error).removeprefix("SLACK_APP_TOKEN: "))
    return Finding(OK, "SLACK_APP_TOKEN", "accepted for Socket Mode (`credits-bot socket`)")


def _slack_findings(settings: Settings, client: WebClient) -> Iterator[Finding]:
    try:
        identity = verify_slack_token(client, api_url=settings.slack_api_url)
    except BotError as error:
        yield Finding(FAILED, "Slack token", str(error))
        return
    yield Finding(OK, "Slack token", f"SLACK_BOT_TOKEN is @{identity.user} in {identity.team}")
    if identity.scopes is None:
        yield Finding(NOT_SET, "Slack scopes", "Slack did not say which scopes the token has")
    else:
        missing = sorted(SLACK_SCOPES - identity.scopes)
        if missing:
            yield Finding(
                FAILED,
                "Slack scopes",
                f"missing {', '.join(missing)}; add them under OAuth & Permissions "
                "(manifest.yml lists them all) and reinstall the app",
            )
        else:
            yield Finding(OK, "Slack scopes", ", ".join(sorted(SLACK_SCOPES)))
    public_posting = identity.scopes is None or "chat:write.public" in identity.scopes
    for variable, channel in (
        ("CREDITS_APPROVAL_CHANNEL", settings.approval_channel),
        ("CREDITS_ALERT_CHANNEL", settings.alert_channel),
    ):
        if channel:
            yield _channel_finding(client, variable, channel, public_posting=public_posting)
    yield from _group_findings(settings, client)


def _channel_finding(
    client: WebClient, variable: str, channel: str, *, public_posting: bool
) -> Finding:
    subject = f"{variable} {channel}"
    try:
        info = client.conversations_info(channel=channel).get("channel") or {}
    except SlackApiError as error:
        reason = failure_reason(error)
        if reason == "channel_not_found":
            return Finding(
                FAILED,
                subject,
                "not found: if it is a private channel, invite the bot (/invite @the-bot); "
                "otherwise check the ID (channel details, at the bottom)",
            )
        if reason == "missing_scope":
            return Finding(
                FAILED, subject, "cannot be checked: the token lacks channels:read / groups:read"
            )
        return Finding(FAILED, subject, f"Slack answered {reason}")
    except (SlackClientError, OSError) as error:
        return Finding(FAILED, subject, f"Slack could not be reached ({_cause(error)})")
    name = f"#{info.get('name') or channel}"
    if info.get("is_member"):
        return Finding(OK, subject, f"{name}, the bot is a member")
    if not info.get("is_private") and public_posting:
        return Finding(
            OK, subject, f"{name}, public: the bot posts without being a member (chat:write.public)"
        )
    return Finding(FAILED, subject, f"{name}: the bot is not a member; /invite it to {name}")


def _group_findings(settings: Settings, client: WebClient) -> Iterator[Finding]:
    granted: dict[str, list[str]] = {}
    for role, ids in (
        ("admins", settings.admins),
        ("approvers", settings.approvers),
        ("operators", settings.operators),
        ("viewers", settings.viewers),
    ):
        for group in sorted(i for i in ids if i.startswith("S")):
            granted.setdefault(group, []).append(role)
    fixes = {
        "plan_upgrade_required": "user groups need a paid Slack plan; grant the role to "
        "user IDs (U…) instead",
        "no_such_subteam": "no such user group; check the ID (in the group's URL)",
        "missing_scope": "the token lacks usergroups:read; add it and reinstall the app",
    }
    for group, roles in granted.items():
        subject = f"user group {group} ({', '.join(roles)})"
        try:
            users = client.usergroups_users_list(usergroup=group).get("users")
        except SlackApiError as error:
            reason = failure_reason(error)
            yield Finding(FAILED, subject, fixes.get(reason, f"Slack answered {reason}"))
            continue
        except (SlackClientError, OSError) as error:
            yield Finding(FAILED, subject, f"Slack could not be reached ({_cause(error)})")
            continue
        count = len(users) if isinstance(users, list) else 0
        yield Finding(OK, subject, f"{count} member{'' if count == 1 else 's'}")


def _sendgrid_findings(settings: Settings) -> Iterator[Finding]:
    v3 = settings.sendgrid_api_version == "v3"
    subject = "SendGrid " + (
        "v3 (SENDGRID_API_KEY)" if v3 else "v2 (SENDGRID_API_USER, SENDGRID_API_KEY)"
    )
    if not settings.sendgrid_api_key and not settings.sendgrid_api_user:
        subject = "SendGrid"  # neither version is configured yet
    try:
        backend = build_backend(settings)
    except ConfigError as error:
        yield Finding(FAILED, subject, str(error))
        return
    try:
        yield from _sendgrid_calls(backend, subject, settings.sendgrid_api_url)
    finally:
        backend.close()


def _sendgrid_calls(
    backend: SendGridV2Client | SendGridV3Client, subject: str, url: str
) -> Iterator[Finding]:
    fix = (
        "create an API key (Settings → API Keys) with the subusers.credits.* and "
        "subusers.read scopes"
        if isinstance(backend, SendGridV3Client)
        else "use the parent account's username and password"
    )
    try:
        if isinstance(backend, SendGridV3Client):
            scopes = backend.scopes()
        else:
            next(iter(backend.list_accounts()), None)
    except AuthenticationFailed as error:
        said = "; ".join(error.messages) or str(error)
        yield Finding(FAILED, subject, f"SendGrid refused them ({said}); {fix}")
        return
    except SendGridError as error:
        yield Finding(FAILED, subject, f"no answer from SendGrid at {url}: {error}")
        return
    yield Finding(OK, subject, f"accepted by {url}")
    if isinstance(backend, SendGridV3Client):
        missing = sorted(SENDGRID_V3_SCOPES - scopes)
        if missing:
            yield Finding(
                FAILED,
                "SendGrid key scopes",
                f"missing {', '.join(missing)}; edit the key (Settings → API Keys) to grant "
                "them, or create one with them",
            )
        else:
            yield Finding(OK, "SendGrid key scopes", ", ".join(sorted(SENDGRID_V3_SCOPES)))


def _database_finding(settings: Settings) -> Finding:
    engine = create_store_engine(settings.database_url)
    subject = "database"
    try:
        if engine.url.get_backend_name() == "sqlite" and not _sqlite_file_exists(engine):
            return Finding(
                FAILED,
                subject,
                f"{database_location(engine)} does not exist yet; run `credits-bot migrate`",
            )
        current, newest = _revisions(engine)
    except SQLAlchemyError as error:
        return Finding(FAILED, subject, describe_failure(engine, error))
    finally:
        engine.dispose()
    where = database_location(engine)
    if current == newest:
        return Finding(OK, subject, f"{where}, migrated ({newest})")
    state = "not migrated" if current is None else f"at {current}, newest is {newest}"
    return Finding(
        FAILED,
        subject,
        f"{where} is {state}; run `credits-bot migrate` (serve and clock also do at start-up)",
    )


def _revisions(engine: Engine) -> tuple[str | None, str | None]:
    script = ScriptDirectory(str(MIGRATIONS))
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    return current, script.get_current_head()


def _sqlite_file_exists(engine: Engine) -> bool:
    path = engine.url.database
    return not path or path == ":memory:" or os.path.exists(path)


def _header(headers: Mapping[str, Any], name: str) -> str | None:
    """A response header by name, whatever its case (slack-sdk keeps Slack's)."""
    for key, value in headers.items():
        if str(key).lower() == name:
            return str(value[0] if isinstance(value, list) else value)
    return None


def _cause(error: BaseException) -> str:
    lines = str(getattr(error, "reason", None) or error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
