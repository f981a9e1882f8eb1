"""The leak check every secrets test uses: any run of `FRAGMENT` or more characters of
a secret, as written or in the forms a URL, a form body, JSON or HTML give it."""

from __future__ import annotations

import html
import json
import re
from urllib.parse import quote, quote_plus

FRAGMENT = 8  # the scrubber's promise (bot.scrubbing.MIN_FRAGMENT), restated independently


def encodings(fragment: str) -> set[str]:
    """The forms a fragment takes in a URL, a form body, JSON and HTML."""
    forms = {
        fragment,
        quote(fragment, safe=""),
        quote(fragment),
        quote_plus(fragment),
        json.dumps(fragment)[1:-1],
        json.dumps(fragment, ensure_ascii=True).replace("/", "\\/")[1:-1],
        html.escape(fragment),
        html.escape(fragment, quote=False),
        "".join(f"&#{ord(c)};" if not c.isalnum() else c for c in fragment),
    }
    lower_hex = {re.sub("%[0-9A-F]{2}", lambda m: m.group().lower(), form) for form in forms}
    return forms | lower_hex


def leaked(secret: str, haystack: str) -> list[str]:
    """Every encoded fragment of `secret` (FRAGMENT characters) found in `haystack`."""
    windows = {secret[i : i + FRAGMENT] for i in range(len(secret) - FRAGMENT + 1)}
    # Runs of digits and punctuation alone are numbers, dates and public IDs: not counted.
    windows = {w for w in windows if any(c.isalpha() for c in w)} or windows
    return sorted({form for window in windows for form in encodings(window) if form in haystack})
