"""`credits-bot` / `python -m bot`: the process entry points of design §3.

Each subcommand loads the settings once, sets up logging and hands the
settings to the part it starts. A ConfigError stops start-up with one line.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from bot.config import Secret, Settings, load_settings
from bot.errors import ConfigError, StoreError
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
        print(f"credits-bot: configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.secrets())
    runner: Runner = args.run
    try:
        return runner(args, settings)
    except ConfigError as exc:
        print(f"credits-bot: configuration error: {exc}", file=sys.stderr)
        return 2
    except StoreError as exc:
        print(f"credits-bot: database error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="credits-bot",
        description="Look after SendGrid customers' email credits from Slack.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    simulator = commands.add_parser(
        "simulator", help="run the embedded SendGrid v2 simulator as an HTTP server"
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
    simulator.set_defaults(run=_run_simulator)

    console = commands.add_parser(
        "console", help="chat with the bot without Slack: one command a line on stdin"
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
    console.set_defaults(run=_run_console)

    serve = commands.add_parser(
        "serve", help="HTTP mode: POST /slack/events and GET /healthz, under gunicorn"
    )
    serve.add_argument("--port", type=int, help="port (default: $PORT, else 3000)")
    serve.add_argument("--host", default="0.0.0.0", help="address (default 0.0.0.0)")
    serve.set_defaults(run=_run_serve)

    socket = commands.add_parser("socket", help="Socket Mode (needs SLACK_APP_TOKEN)")
    socket.set_defaults(run=_run_socket)

    clock = commands.add_parser(
        "clock", help="the scheduler: low-credit sweeps (CREDITS_ALERT_SCHEDULE) and expiry"
    )
    clock.set_defaults(run=_run_clock)

    sweep = commands.add_parser("sweep", help="run one low-credit sweep now, post alerts, exit")
    sweep.set_defaults(run=_run_sweep)

    migrate = commands.add_parser(
        "migrate", help="apply database migrations to DATABASE_URL (also done at start-up)"
    )
    migrate.set_defaults(run=_run_migrate)
    return parser


def _run_clock(args: argparse.Namespace, settings: Settings) -> int:
    from bot.transports.assembly import build_clock
    from bot.transports.clock import run_clock

    run_clock(build_clock(settings), cron=settings.alert_schedule)
    return 0


def _run_sweep(args: argparse.Namespace, settings: Settings) -> int:
    from bot.transports.assembly import build_clock
    from bot.transports.clock import sweep_once

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


CONSOLE_USER = "UCONSOLE"


def _run_console(args: argparse.Namespace, settings: Settings) -> int:
    import dataclasses
    import logging as logging_module
    import tempfile

    from bot.simulator import DEMO_API_KEY, DEMO_API_USER, SimulatorServer, sample_state
    from bot.transports.assembly import build_services
    from bot.transports.console import run_console

    def chat(chat_settings: Settings) -> int:
        return run_console(
            build_services(chat_settings).commands,
            user_id=args.user_id,
            stdin=sys.stdin,
            stdout=sys.stdout,
            interactive=sys.stdin.isatty(),
        )

    if not args.demo:
        return chat(settings)
    # Demo: quiet logs, an in-process simulator with sample data, a scratch database,
    # and the caller an admin.
    logging_module.getLogger().setLevel(logging_module.ERROR)
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
        )
        accounts = ", ".join(sorted(simulator.state.subusers)[:6])
        print(
            f"credits-bot console (demo): SendGrid {settings.sendgrid_api_version} simulator at "
            f"{simulator.url_for(settings.sendgrid_api_version)}; "
            f"you are {args.user_id}, an admin.\n"
            f"Try: help | show acme-eu | add globex 500 | recurring hooli 3,000 weekly\n"
            f"Sample subusers: {accounts}, …  (exit or Ctrl-D to leave)\n",
            flush=True,
        )
        return chat(demo_settings)


def _run_serve(args: argparse.Namespace, settings: Settings) -> int:
    from bot.transports.slack.server import serve_with_gunicorn

    settings.require("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET")
    port = args.port if args.port is not None else settings.port
    serve_with_gunicorn(settings, host=args.host, port=port)
    return 0


def _run_socket(args: argparse.Namespace, settings: Settings) -> int:
    settings.require("SLACK_APP_TOKEN", "SLACK_BOT_TOKEN")
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    from bot.transports.slack.app import create_app

    assert settings.slack_app_token is not None
    app = create_app(settings, socket_mode=True)
    logger.info("connecting to Slack in Socket Mode")
    SocketModeHandler(app, settings.slack_app_token.reveal()).start()  # type: ignore[no-untyped-call]
    return 0


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
