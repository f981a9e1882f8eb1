"""One bot process answering `/credits show` as fast as its SendGrid limiter lets it.

`tests/scenarios/test_fleet_rate_limit.py` starts several of these (beside a real
`credits-bot sweep`) with the bot's settings in the environment:

    python -m tests.scenarios.fleet_load --shows 30 --threads 8 --as U0VIEWER1 sub-000001 …

Services are built exactly as `serve` builds them (`build_services`), so the process
uses whatever limiter the bot wires. Prints one JSON line: the replies, counted by kind.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from bot.commands.service import Actor
from bot.config import load_settings
from bot.services import build_services


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fleet_load")
    parser.add_argument("--shows", type=int, required=True)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--as", dest="user_id", required=True)
    parser.add_argument("users", nargs="+")
    args = parser.parse_args(argv)

    services = build_services(load_settings(dotenv_path=None), slack=False)
    actor = Actor(user_id=args.user_id)

    def show(index: int) -> str:
        reply = services.commands.handle(actor, f"show {args.users[index % len(args.users)]}")
        return type(reply).__name__

    with ThreadPoolExecutor(max_workers=args.threads) as pool:
        kinds = Counter(pool.map(show, range(args.shows)))
    print(json.dumps(dict(kinds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
