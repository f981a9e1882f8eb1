"""One scrubber for every text that could carry a secret: SendGrid bodies, error
messages, log records and audit outcomes.

`Scrubber(secrets).scrub(text)` replaces with `REDACTED`:

- every run of at least `MIN_FRAGMENT` (8) consecutive characters of a secret, so a
  text that holds only part of one (a preview cut in the middle of it, a message
  truncated to fit a column) is scrubbed as surely as one that holds it whole;
- in every form an echo may give it: URL-encoded (`quote`, `quote_plus`, either hex
  case), JSON-escaped (`\\"`, `\\/`, `\\u002b`) and HTML-escaped (`&amp;`, `&#43;`,
  `&#x2B;`, `&quot;`), also nested (`%252B`, an HTML page quoting a JSON string).

Why 8 characters: the credentials are long random strings (a SendGrid key is 69
characters, Slack tokens 50+, a signing secret 32 hex digits). Fewer than 8 of them
leave at least 96 bits unknown for the shortest, so they do not matter; while at 8,
an unrelated run of text equals one of a secret's windows only by a ~1e-13 chance,
so the scrubber never eats ordinary words, IDs or the public prefixes `SG.` and
`xoxb-`. Windows without a letter (`12345678`, `2026-11-2`) do not count on their
own: they are numbers, dates and the public numeric IDs inside Slack tokens, and a
balance that happened to match one must not be scrubbed out of a SendGrid answer.
Secrets shorter than 8 characters are removed whole; shorter than 4 not at all (they
would match ordinary text and are not credentials).

Callers scrub *before* they cut a text short: a preview of an unscrubbed text may
end inside a secret, and what is left of it is no longer the secret as a whole.
Everything that can be computed from the secrets alone is computed once, in the
constructor, so scrubbing is cheap enough for every log record: text that holds no
secret costs one regular-expression scan for runs of a secret's characters.
"""

from __future__ import annotations

import html
import re
import string
from collections.abc import Iterable, Iterator

REDACTED = "********"
MIN_FRAGMENT = 8
MIN_SECRET = 4
_MAX_DECODINGS = 3  # an echo of an echo of an echo

# One escaped character, in any of the encodings an echo may use.
_ESCAPE = re.compile(
    r"%[0-9A-Fa-f]{2}"  # URL: %2B, %2b
    r"|\\u[0-9A-Fa-f]{4}"  # JSON: \u002b
    r"|\\[\"\\/bfnrt]"  # JSON: \" \\ \/
    r"|&#[0-9]{1,7};|&#[xX][0-9A-Fa-f]{1,6};"  # HTML: &#43; &#x2B;
    r"|&[A-Za-z][A-Za-z0-9]{1,31};"  # HTML: &amp; &quot; &plus;
)
# Each encoding alone too: a stray `%07` before an HTML-escaped fragment must not
# swallow the fragment's first character when every escape is undone at once.
_ESCAPES_ALONE = (
    re.compile(r"%[0-9A-Fa-f]{2}"),
    re.compile(r"\\u[0-9A-Fa-f]{4}|\\[\"\\/bfnrt]"),
    re.compile(r"&#[0-9]{1,7};|&#[xX][0-9A-Fa-f]{1,6};|&[A-Za-z][A-Za-z0-9]{1,31};"),
)
_ESCAPE_CHARACTERS = "%\\&#;" + string.ascii_letters + string.digits
_JSON_ESCAPES = {
    '"': '"',
    "\\": "\\",
    "/": "/",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
}

Span = tuple[int, int]


class Scrubber:
    """Removes the given secrets from texts, whole or in part, raw or encoded."""

    def __init__(self, secrets: Iterable[str]) -> None:
        values = sorted({s for s in secrets if s and len(s) >= MIN_SECRET})
        windows: dict[int, set[str]] = {}
        for secret in values:
            size = min(len(secret), MIN_FRAGMENT)
            grams = [secret[i : i + size] for i in range(len(secret) - size + 1)]
            # A window without a letter is a number, a date or an ID (a Slack token
            # carries its workspace's and bot's numeric IDs): scrubbing it would eat
            # balances and timestamps. Windows with letters around it still catch it.
            lettered = [g for g in grams if any(c.isalpha() for c in g)]
            windows.setdefault(size, set()).update(lettered or grams)
        self._windows = tuple((size, frozenset(grams)) for size, grams in windows.items())
        self._count = len(values)
        # Where a secret could be: a run of characters that occur in a secret or in an
        # escape. Text without such a run (most log lines) is returned after one scan.
        if windows:
            characters = set("".join(values)) | set(_ESCAPE_CHARACTERS)
            allowed = "".join(re.escape(c) for c in sorted(characters))
            self._candidates: re.Pattern[str] | None = re.compile(f"[{allowed}]{{{min(windows)},}}")
        else:
            self._candidates = None

    def __repr__(self) -> str:
        return f"Scrubber(<{self._count} secret(s)>)"

    def __call__(self, text: str) -> str:
        return self.scrub(text)

    def scrub(self, text: str) -> str:
        """`text` with every secret, part of a secret (8+ characters) or encoded form
        of one replaced by `REDACTED`."""
        if self._candidates is None:
            return text
        spans: list[Span] = []
        for run in self._candidates.finditer(text):
            hits = self._hits(run.group())
            if hits:
                offset = run.start()
                spans.extend((offset + a, offset + b) for a, b in hits)
        if not spans:
            return text
        pieces, position = [], 0
        for start, end in _merged(spans):
            pieces += [text[position:start], REDACTED]
            position = end
        pieces.append(text[position:])
        return "".join(pieces)

    def scrub_bytes(self, content: bytes) -> bytes:
        """`scrub` for a body of unknown encoding: bytes that are not UTF-8 pass through
        unchanged (secrets are ASCII), and so does a body that holds no secret."""
        text = content.decode("utf-8", "surrogateescape")
        scrubbed = self.scrub(text)
        return content if scrubbed is text else scrubbed.encode("utf-8", "surrogateescape")

    def _hits(self, run: str) -> list[Span]:
        """Where in `run` a window of a secret lies, as written and after decoding."""
        hits = self._find(run, None)
        if not _ESCAPE.search(run):
            return hits
        for escape in (_ESCAPE, *_ESCAPES_ALONE):
            text, spans = run, None
            for _ in range(_MAX_DECODINGS):
                if not escape.search(text):
                    break
                text, spans = _decode(text, spans, escape)
                hits += self._find(text, spans)
        return hits

    def _find(self, text: str, spans: list[Span] | None) -> list[Span]:
        hits = []
        for size, grams in self._windows:
            for i in range(len(text) - size + 1):
                if text[i : i + size] in grams:
                    hits.append((spans[i][0], spans[i + size - 1][1]) if spans else (i, i + size))
        return hits


def _decode(
    text: str, spans: list[Span] | None, escape_pattern: re.Pattern[str] = _ESCAPE
) -> tuple[str, list[Span]]:
    """Undo one level of escaping; each decoded character keeps the span it came from."""
    if spans is None:
        spans = [(i, i + 1) for i in range(len(text))]
    characters: list[str] = []
    origins: list[Span] = []
    position = 0
    for escape in escape_pattern.finditer(text):
        start, end = escape.span()
        characters.extend(text[position:start])
        origins.extend(spans[position:start])
        decoded = _unescape(escape.group())
        if decoded is None:
            characters.extend(text[start:end])
            origins.extend(spans[start:end])
        else:
            characters.append(decoded)
            origins.append((spans[start][0], spans[end - 1][1]))
        position = end
    characters.extend(text[position:])
    origins.extend(spans[position:])
    return "".join(characters), origins


def _unescape(escape: str) -> str | None:
    if escape[0] == "%":
        return chr(int(escape[1:], 16))
    if escape[0] == "\\":
        return chr(int(escape[2:], 16)) if escape[1] == "u" else _JSON_ESCAPES[escape[1]]
    decoded = html.unescape(escape)
    return decoded if len(decoded) == 1 else None


def _merged(spans: list[Span]) -> Iterator[Span]:
    spans.sort()
    start, end = spans[0]
    for next_start, next_end in spans[1:]:
        if next_start > end:
            yield start, end
            start = next_start
        end = max(end, next_end)
    yield start, end
