"""`credits-bot` / `python -m bot`: the process entry points of design §3.

Each subcommand loads the settings once, sets up logging and hands the
settings to the part it starts. A ConfigError stops start-up with one line.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from bot.config import Settings, load_settings
from bot.errors import ConfigError
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
        "--rate-limit",
        type=int,
        default=600,
        help="requests per minute per API user before HTTP 429; 0 turns it off (default 600)",
    )
    simulator.set_defaults(run=_run_simulator)
    return parser


def _run_simulator(args: argparse.Namespace, settings: Settings) -> int:
    from bot.simulator import DEMO_API_KEY, DEMO_API_USER, SimulatorServer, sample_state

    api_user = settings.sendgrid_api_user or DEMO_API_USER
    api_key = settings.sendgrid_api_key.reveal() if settings.sendgrid_api_key else DEMO_API_KEY
    state = sample_state(
        api_user=api_user, api_key=api_key, data=args.data, rate_limit=args.rate_limit or None
    )
    server = SimulatorServer(state, host=args.host, port=args.port)
    key_hint = "(from SENDGRID_API_KEY)" if settings.sendgrid_api_key else f"api_key={api_key}"
    print(
        f"SendGrid v2 simulator on {server.url}  api_user={api_user} {key_hint}  "
        f"{len(state.subusers)} subusers, {len(state.customers)} customers  "
        f"rate limit {args.rate_limit or 'off'}/min",
        flush=True,
    )
    try:
        server.serve_forever()
    finally:
        server.stop()
    return 0
