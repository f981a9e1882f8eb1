"""`credits-bot` / `python -m bot`: the process entry points.

Each subcommand loads the settings once, sets up logging and hands the
settings to the part it starts. Whatever stops start-up — a missing or
malformed setting, a token Slack refuses, a database it cannot reach — is one
line on stderr naming the variable or the cause, and a non-zero exit:
2 for configuration, 1 for everything else.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from bot import __version__
from bot.config import Secret, Settings, load_settings
from bot.errors import BotError, ConfigError, StoreError
from bot.logs import configure_logging

logger = logging.getLogger("bot")

Runner = Callable[[argparse.Namespace, Settings], int]


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line, load settings, run the subcommand; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        if args.command == "doctor":
            from bot.transports.doctor import settings_error

            print(settings_error(exc), flush=True)
            return 1
        print(f"credits-bot: configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.secrets(), log_format=settings.log_format)
    runner: Runner = args.run
    try:
        return runner(args, settings)
    except ConfigError as exc:
        print(f"credits-bot: configuration error: {exc}", file=sys.stderr)
        return 2
    except StoreError as exc:
        print(f"credits-bot: database error: {exc}", file=sys.stderr)
        return 1
    except BotError as exc:
        print(f"credits-bot: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="credits-bot",
        description="Look after SendGrid customers' email credits from Slack. Settings come "
        "from the environment and from .env in the working directory.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, summary: str, details: str, run: Runner) -> argparse.ArgumentParser:
        sentence = summary[:1].upper() + summary[1:]
        sub = commands.add_parser(name, help=summary, description=f"{sentence}. {details}")
        sub.set_defaults(run=run)
        return sub

    serve = command(
        "serve",
        "HTTP mode: POST /slack/events and GET /healthz, under gunicorn",
        "Needs SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET and SendGrid credentials; checks the "
        "token with Slack and migrates the database before it starts.",
        _run_serve,
    )
    serve.add_argument("--port", type=int, help="port (default: $PORT, else 3000)")
    serve.add_argument("--host", default="0.0.0.0", help="address (default 0.0.0.0)")

    command(
        "socket",
        "Socket Mode: connect out to Slack, no public URL needed",
        "Needs SLACK_APP_TOKEN (an app-level token with connections:write) and SLACK_BOT_TOKEN.",
        _run_socket,
    )
    command(
        "clock",
        "the scheduler: low-credit sweeps (CREDITS_ALERT_SCHEDULE) and approval expiry",
        "Run exactly one per deployment next to serve or socket; a second one stands by. "
        "Warnings go to CREDITS_ALERT_CHANNEL.",
        _run_clock,
    )
    command(
        "sweep",
        "run one low-credit sweep now, print what it found, post the digest, exit",
        "For cron, a platform scheduler or by hand; never overlaps the clock's sweep.",
        _run_sweep,
    )
    command(
        "migrate",
        "apply database migrations to DATABASE_URL, then exit",
        "serve, socket and clock also migrate at start-up; this is for a release step.",
        _run_migrate,
    )
    command(
        "doctor",
        "check this deployment: settings, Slack, channels, user groups, SendGrid, database",
        "One line per check, ✓ or ✗ with the fix; exits 1 if any check failed. Changes "
        "nothing and prints no secret.",
        _run_doctor,
    )

    audit = command(
        "audit",
        "the audit trail as a ledger: export it, or verify its hash chain",
        "`audit export --since 2026-11-01 --format csv` prints every event since then; "
        "`audit verify` exits 1 if any audit row was edited or deleted.",
        _run_audit,
    )
    audit.add_argument("action", choices=["export", "verify"])
    audit.add_argument(
        "--since",
        type=_since,
        default=None,
        metavar="WHEN",
        help="YYYY-MM-DD or an ISO time, UTC (export; default: everything)",
    )
    audit.add_argument("--format", choices=["csv", "json"], default="csv", help="(export)")

    console = command(
        "console",
        "chat with the bot without Slack: one command a line on stdin",
        "Type what you would type after /credits. --demo needs no settings at all.",
        _run_console,
    )
    console.add_argument(
        "--as",
        dest="user_id",
        default=CONSOLE_USER,
        help=f"Slack user ID to act as ({CONSOLE_USER})",
    )
    console.add_argument(
        "--demo",
        action="store_true",
        help="start the embedded SendGrid simulator with sample data and act as an admin",
    )

    simulator = command(
        "simulator",
        "run the embedded SendGrid simulator (v2 and v3) as an HTTP server",
        "Sample subusers and reseller customers; credentials demo / demo-key unless "
        "SENDGRID_API_USER / SENDGRID_API_KEY are set. For tests and demos, never production.",
        _run_simulator,
    )
    simulator.add_argument("--port", type=int, default=8025, help="port (default 8025)")
    simulator.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    simulator.add_argument("--data", help="JSON file of subusers/customers (default: samples)")
    simulator.add_argument(
        "--generate",
        type=int,
        metavar="N",
        help="serve N generated subusers in varied states instead (load tests, benchmarks)",
    )
    simulator.add_argument(
        "--rate-limit",
        type=int,
        default=600,
        help="requests per window per API user before HTTP 429; 0 turns it off (default 600)",
    )
    simulator.add_argument(
        "--rate-window",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="the sliding window of --rate-limit (default 60; match SENDGRID_RATE_WINDOW)",
    )
    return parser


def _run_clock(args: argparse.Namespace, settings: Settings) -> int:
    from bot.transports.assembly import build_clock
    from bot.transports.clock import run_clock, serve_metrics

    _check_before_start(settings)
    run_clock(build_clock(settings, metrics=serve_metrics(settings)), cron=settings.alert_schedule)
    return 0


def _run_sweep(args: argparse.Namespace, settings: Settings) -> int:
    from bot.transports.assembly import build_clock
    from bot.transports.clock import sweep_once

    _check_before_start(settings)
    clock = build_clock(settings)
    report = sweep_once(clock.sweeper, clock.sweep_lock)
    if report is None:
        print("no sweep ran (another is running, or it failed: see the log)")
        return 1
    print(
        f"swept {report.accounts} accounts ({report.skipped_inactive} inactive skipped): "
        f"{report.read} read, {len(report.failures)} failed, {len(report.alerts)} alerts, "
        f"{len(report.recoveries)} recoveries{', posted' if report.posted else ''}"
    )
    for alert in report.alerts:
        a = alert.assessment
        print(f"  {a.level.value:9} {a.user}: {a.reason}")
    for user, kind in report.failures:
        print(f"  unreadable {user}: {kind}")
    return 0


def _run_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from bot.adapters.store import create_store_engine, migrate

    engine = create_store_engine(settings.database_url)
    migrate(engine)
    engine.dispose()
    print(f"database is up to date ({settings.database_url.split('://', 1)[0]})")
    return 0


def _since(raw: str) -> datetime:
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{raw!r} is not a date: write YYYY-MM-DD or YYYY-MM-DDTHH:MM"
        ) from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def _run_audit(args: argparse.Namespace, settings: Settings) -> int:
    """`audit export` (CSV or JSON lines of the ledger on stdout) and `audit verify`."""
    import csv
    import json

    from bot.adapters.store import SqlStore
    from bot.commands.formatting import LEDGER_COLUMNS, ledger_row

    store = SqlStore.from_url(settings.database_url)
    try:
        if args.action == "verify":
            report = store.verify_ledger()
            for problem in report.problems:
                print(f"✗ {problem}")
            legacy = f", {report.unchained} from before the ledger" if report.unchained else ""
            verdict = "intact" if report.intact else f"{len(report.problems)} problem(s)"
            print(
                f"audit ledger: {report.rows} rows, {report.entries} ledger entries{legacy}: "
                f"{verdict}"
            )
            return 0 if report.intact else 1
        since = args.since or datetime(1970, 1, 1, tzinfo=UTC)
        rows = [ledger_row(event, request) for event, request in store.audit_since(since)]
        if args.format == "json":
            print(json.dumps(rows, ensure_ascii=False, indent=1))
        else:
            writer = csv.DictWriter(sys.stdout, fieldnames=LEDGER_COLUMNS, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        return 0
    finally:
        store.close()


CONSOLE_USER = "UCONSOLE"
# `--demo`'s people: `as NAME` switches between them (the admin is `--as`).
DEMO_PERSONAS = {
    "operator": "UDEMOOPERATOR",
    "approver": "UDEMOAPPROVER",
    "viewer": "UDEMOVIEWER",
}


def _run_console(args: argparse.Namespace, settings: Settings) -> int:
    import dataclasses
    import logging as logging_module
    import tempfile

    from bot.config import console_history_file
    from bot.services import build_services
    from bot.simulator import DEMO_API_KEY, DEMO_API_USER, SimulatorServer, sample_state
    from bot.transports.console import run_console

    def chat(chat_settings: Settings, personas: dict[str, str] | None = None) -> int:
        services = build_services(chat_settings, kind="console", slack=False)
        try:
            return run_console(
                services.commands,
                user_id=args.user_id,
                stdin=sys.stdin,
                stdout=sys.stdout,
                interactive=sys.stdin.isatty(),
                history_file=console_history_file(),
                personas=personas,
            )
        finally:
            services.close()

    if not args.demo:
        return chat(settings)
    # Demo: quiet logs, an in-process simulator with sample data, a scratch database,
    # the caller an admin, and an operator, an approver and a viewer to switch to.
    logging_module.getLogger().setLevel(logging_module.ERROR)
    personas = {"admin": args.user_id, **DEMO_PERSONAS}
    with (
        SimulatorServer(sample_state()).running() as simulator,
        tempfile.TemporaryDirectory(prefix="credits-bot-demo-") as scratch,
    ):
        demo_settings = dataclasses.replace(
            settings,
            sendgrid_api_user=DEMO_API_USER,
            sendgrid_api_key=Secret(DEMO_API_KEY),
            sendgrid_api_url=simulator.url_for(settings.sendgrid_api_version),
            database_url=f"sqlite:///{scratch}/demo.sqlite3",
            admins=settings.admins | {args.user_id},
            approvers=settings.approvers | {DEMO_PERSONAS["approver"]},
            operators=settings.operators | {DEMO_PERSONAS["operator"]},
            viewers=settings.viewers | {DEMO_PERSONAS["viewer"]},
        )
        _first_sweep(demo_settings)
        accounts = ", ".join(sorted(simulator.state.subusers)[:6])
        # The banner is not a reply: stderr, so stdout carries replies only.
        print(
            f"credits-bot console (demo): SendGrid {settings.sendgrid_api_version} simulator at "
            f"{simulator.url_for(settings.sendgrid_api_version)}; "
            f"you are {args.user_id}, an admin.\n"
            f"Try: help | show acme-eu | low | add globex 500 | recurring hooli 3,000 weekly\n"
            f"Switch who you are: as operator | as approver | as viewer | as admin "
            f"(an operator's add becomes a request; as approver: approve N)\n"
            f"Sample subusers: {accounts}, …  (exit or Ctrl-D to leave)\n",
            file=sys.stderr,
            flush=True,
        )
        return chat(demo_settings, personas)


def _first_sweep(settings: Settings) -> None:
    """One sweep of the demo's sample subusers, so `low` and show's status have
    something to read (nothing is posted: there is no Slack)."""
    from bot.adapters.store import SqlStore
    from bot.transports.assembly import build_sweep

    store = SqlStore.from_url(settings.database_url)
    try:
        build_sweep(settings, store=store).sweep()
    finally:
        store.close()


def _run_serve(args: argparse.Namespace, settings: Settings) -> int:
    settings.require("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET")
    # Checked here, in the one process, so that a bad setting is one line and not a
    # gunicorn worker failing to boot.
    _check_before_start(settings, database=True)
    from bot.transports.slack.server import serve_with_gunicorn

    port = args.port if args.port is not None else settings.port
    serve_with_gunicorn(settings, host=args.host, port=port)
    return 0


def _run_socket(args: argparse.Namespace, settings: Settings) -> int:
    settings.require("SLACK_APP_TOKEN", "SLACK_BOT_TOKEN")
    _check_before_start(settings, app_token=True)
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    from bot.services import build_services
    from bot.transports.assembly import Upkeep
    from bot.transports.slack.app import DATABASE_THREADS, create_app

    assert settings.slack_app_token is not None
    services = build_services(settings, kind="socket", database_threads=DATABASE_THREADS)
    app = create_app(services, socket_mode=True)
    upkeep = Upkeep(services.database, services.changes).start()  # this process's own timer
    logger.info("connecting to Slack in Socket Mode")
    try:
        SocketModeHandler(app, settings.slack_app_token.reveal()).start()  # type: ignore[no-untyped-call]
    finally:
        upkeep.stop()
        services.close()
    return 0


def _run_doctor(args: argparse.Namespace, settings: Settings) -> int:
    from bot.transports.doctor import run_doctor

    # The findings say what failed; the clients' own warnings would repeat it.
    logging.getLogger().setLevel(logging.ERROR)
    return run_doctor(settings, out=sys.stdout)


def _check_before_start(
    settings: Settings, *, database: bool = False, app_token: bool = False
) -> None:
    """What `doctor` would find fatal, checked before a long-running command starts:
    SendGrid credentials set, the Slack token accepted (when set), with `app_token`
    the Socket Mode token accepted, and with `database` the database reachable and
    migrated."""
    from bot.transports.doctor import (
        check_sendgrid_settings,
        slack_client,
        verify_app_token,
        verify_slack_token,
    )

    check_sendgrid_settings(settings)
    if settings.slack_bot_token:
        client = slack_client(settings)
        verify_slack_token(client, api_url=settings.slack_api_url)
        if app_token and settings.slack_app_token:
            verify_app_token(
                client, settings.slack_app_token.reveal(), api_url=settings.slack_api_url
            )
    if database:
        from bot.adapters.store import create_store_engine, migrate

        engine = create_store_engine(settings.database_url)
        try:
            migrate(engine)
        finally:
            engine.dispose()


def _run_simulator(args: argparse.Namespace, settings: Settings) -> int:
    from bot.simulator import (
        DEMO_API_KEY,
        DEMO_API_USER,
        SimulatorServer,
        generated_subusers,
        sample_state,
    )

    api_user = settings.sendgrid_api_user or DEMO_API_USER
    api_key = settings.sendgrid_api_key.reveal() if settings.sendgrid_api_key else DEMO_API_KEY
    state = sample_state(
        api_user=api_user,
        api_key=api_key,
        data=args.data,
        rate_limit=args.rate_limit or None,
        rate_window=args.rate_window,
    )
    if args.generate:
        state.subusers = {a.username: a for a in generated_subusers(args.generate, seed=7)}
    server = SimulatorServer(state, host=args.host, port=args.port)
    key_hint = "(from SENDGRID_API_KEY)" if settings.sendgrid_api_key else f"api_key={api_key}"
    print(
        f"SendGrid v2 simulator on {server.url}  api_user={api_user} {key_hint}  "
        f"{len(state.subusers)} subusers, {len(state.customers)} customers  "
        f"rate limit {f'{args.rate_limit}/{args.rate_window:g}s' if args.rate_limit else 'off'}",
        flush=True,
    )
    try:
        server.serve_forever()
    finally:
        server.stop()
    return 0
