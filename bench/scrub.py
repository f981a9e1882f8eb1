"""What does scrubbing cost per log line and per SendGrid body?

`bot.scrubbing.Scrubber` runs on every log record the process creates and on every
SendGrid body before it is decoded. This times it with four secrets of realistic
length (a 69-character SendGrid key, a Slack bot token, an app token, a 32-hex
signing secret) on:

- typical log lines without a secret (the common case), and with one echoed
  URL-encoded;
- a 120-account JSON page (~12 KB) and a 500-account page (~50 KB), clean;
- an HTML error page quoting the key HTML-escaped.

    python bench/scrub.py [--repeat 2000]

Prints microseconds per call (best of 5 runs of `repeat` calls).
"""

from __future__ import annotations

import argparse
import html
import json
import sys
import timeit
from pathlib import Path
from urllib.parse import quote_plus

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.scrubbing import Scrubber  # noqa: E402

KEY = "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"
SECRETS = [
    KEY,
    "xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy",
    "xapp-1-A0123456789-1234567890123-0123456789abcdef0123456789abcdef",
    "8f742231b10e8888abcd99yyyzzz85a5",
]


def accounts(n: int) -> bytes:
    rows = [
        {"username": f"customer-{i:04d}", "email": f"ops+{i}@example.com", "active": "true"}
        for i in range(n)
    ]
    return json.dumps(rows).encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2000)
    args = parser.parse_args()
    scrubber = Scrubber(SECRETS)
    line = (
        "2026-11-23 10:00:00,123 WARNING bot.sendgrid: sendgrid customer.limit task=retrieve "
        "user=acme-eu failed in 12 ms: Unavailable: SendGrid failed (HTTP 503)"
    )
    cases: dict[str, object] = {
        "log line, no secret (150 chars)": line,
        "log line, key URL-encoded": line + " api_key=" + quote_plus(KEY),
        "HTML page quoting the key (bytes)": (
            b"<html><body><h1>Bad Request</h1><p>api_key="
            + html.escape(KEY).encode()
            + b"</p></body></html>"
        ),
        "JSON page, 120 accounts (bytes)": accounts(120),
        "JSON page, 500 accounts (bytes)": accounts(500),
    }
    for name, value in cases.items():
        call = scrubber.scrub_bytes if isinstance(value, bytes) else scrubber.scrub
        repeat = args.repeat if len(value) < 1000 else max(20, args.repeat // 100)  # type: ignore[arg-type]
        best = min(timeit.repeat(lambda: call(value), number=repeat, repeat=5)) / repeat  # type: ignore[arg-type]  # noqa: B023
        print(f"{name:<40} {len(value):>7} chars  {best * 1e6:9.1f} µs")  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
