"""The words after a subcommand → `Command`. Pure: no I/O, no Slack, no SendGrid.

Each subcommand's record (bot/commands/registry.py) names one of the argument
parsers below; `registry.parse` finds the record by the first word.

USER arrives as typed (`acme-eu`), as an e-mail, or as Slack escapes it
(`<mailto:a@b.com|a@b.com>`, `&amp;`). N is a positive whole number, with an
optional thousands separator (`1,500`). Anything else raises `UsageError`,
whose message says what was wrong and whose `usage` shows the right form.
"""

from __future__ import annotations

import difflib
import html
import re
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from bot.commands import messages
from bot.domain.credits import MAX_CREDITS, ChangeKind, CreditChange, Period
from bot.errors import UserError

if TYPE_CHECKING:
    from bot.commands.registry import Verb

MAX_TEXT = 500
MAX_USER = 64
_USER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+\-]*$")
_NUMBER = re.compile(r"^(?:[0-9]+|[0-9]{1,3}(?:,[0-9]{3})+)$")
_MAILTO = re.compile(r"^<mailto:([^|>]+)(?:\|[^>]*)?>$")
_OPTION_NAMES = ("start", "end", "initial")
_OPTION_LIKE = re.compile(r"^[A-Za-z]+=")
MAX_REASON = 300

RESOLUTIONS = {"applied": True, "not-applied": False}
MAX_REQUEST_ID = 2**31 - 1


class UsageError(UserError):
    """The command text is malformed. `usage` is the right form, when one applies."""

    def __init__(self, message: str, *, usage: str | None = None) -> None:
        super().__init__(message)
        self.usage = usage


class UnknownSubcommand(UsageError):
    """The first word is not a subcommand; the reply shows help along with it."""


@dataclass(frozen=True, slots=True)
class Command:
    """A parsed `/credits` command: the verb, its USER, and the change it asks for."""

    verb: Verb
    user: str | None = None
    change: CreditChange | None = None
    topic: Verb | None = None  # for `help SUBCOMMAND`
    amount: int | None = None  # for `threshold USER N`
    request_id: int | None = None  # for approve / deny / cancel / resolve
    reason: str | None = None  # for `deny ID reason…`
    applied: bool | None = None  # for `resolve ID applied|not-applied`

    @property
    def credits(self) -> int | None:
        return self.change.credits if self.change else None


def check_line(text: str) -> list[str]:
    """The command line as words: one line, not too long, Slack's escapes undone, a
    leading `/credits` tolerated."""
    if len(text) > MAX_TEXT:
        raise UsageError(messages.TOO_LONG.format(limit=MAX_TEXT))
    if "\n" in text or "\r" in text:
        raise UsageError(messages.ONE_LINE)
    words = html.unescape(text).split()
    if words and words[0].lower() == "/credits":
        words = words[1:]
    return words


# --- argument parsers: (verb, words after it, the whole line, usage) -> Command ----------


def no_arguments(verb: Verb, args: list[str], text: str, usage: str) -> Command:
    _arity(args, 0, usage)
    return Command(verb)


def one_user(verb: Verb, args: list[str], text: str, usage: str) -> Command:
    _arity(args, 1, usage)
    return Command(verb, user=parse_user(args[0], usage))


def optional_user(verb: Verb, args: list[str], text: str, usage: str) -> Command:
    if len(args) > 1:
        _arity(args, 1, usage)
    return Command(verb, user=parse_user(args[0], usage) if args else None)


def user_and_credits(verb: Verb, args: list[str], text: str, usage: str) -> Command:
    """`add`/`remove`/`set USER N [reason…]`: the rest of the line after N is the reason."""
    if len(args) < 2:
        raise UsageError(messages.MISSING_ARGUMENTS, usage=usage)
    user = parse_user(args[0], usage)
    credits = parse_credits(args[1], usage)
    change = CreditChange(ChangeKind(verb.value), user, credits, reason=_reason(args[2:]))
    return Command(verb, user=user, change=change)


def user_and_reason(verb: Verb, args: list[str], text: str, usage: str) -> Command:
    """`unlimit USER [reason…]`."""
    if not args:
        raise UsageError(messages.MISSING_ARGUMENTS, usage=usage)
    user = parse_user(args[0], usage)
    change = CreditChange(ChangeKind(verb.value), user, reason=_reason(args[1:]))
    return Command(verb, user=user, change=change)


def user_and_amount(verb: Verb, args: list[str], text: str, usage: str) -> Command:
    """`threshold USER N` (N may be 0)."""
    _arity(args, 2, usage)
    user = parse_user(args[0], usage)
    return Command(verb, user=user, amount=parse_credits(args[1], usage, allow_zero=True))


def request_id(verb: Verb, args: list[str], text: str, usage: str) -> Command:
    """`approve ID`, `cancel ID`."""
    if not args:
        raise UsageError(messages.MISSING_ARGUMENTS, usage=usage)
    number = parse_request_id(args[0], usage)
    _arity(args, 1, usage)
    return Command(verb, request_id=number)


def request_id_and_reason(verb: Verb, args: list[str], text: str, usage: str) -> Command:
    """`deny ID [reason…]`: the reason is the rest of the line as typed (spacing kept)."""
    if not args:
        raise UsageError(messages.MISSING_ARGUMENTS, usage=usage)
    number = parse_request_id(args[0], usage)
    line = html.unescape(text).strip()
    if line[:8].lower() == "/credits":
        line = line[8:]
    parts = line.split(None, 2)  # verb, id, reason
    reason = parts[2].strip() if len(parts) > 2 else None
    return Command(verb, request_id=number, reason=reason or None)


def request_id_and_outcome(verb: Verb, args: list[str], text: str, usage: str) -> Command:
    """`resolve ID applied|not-applied`."""
    if not args:
        raise UsageError(messages.MISSING_ARGUMENTS, usage=usage)
    number = parse_request_id(args[0], usage)
    _arity(args, 2, usage)
    resolution = args[1].lower()
    if resolution not in RESOLUTIONS:
        raise UsageError(messages.BAD_RESOLUTION.format(value=_quote(args[1])), usage=usage)
    return Command(verb, request_id=number, applied=RESOLUTIONS[resolution])


def parse_request_id(raw: str, usage: str) -> int:
    """A request number as shown on the card: `12` or `#12`."""
    digits = raw.removeprefix("#")
    if not digits.isascii() or not digits.isdigit() or not 0 < int(digits) <= MAX_REQUEST_ID:
        raise UsageError(messages.NOT_A_REQUEST_ID.format(value=_quote(raw)), usage=usage)
    return int(digits)


def parse_user(raw: str, usage: str) -> str:
    """A SendGrid username or customer e-mail, unwrapped from Slack's formatting."""
    mailto = _MAILTO.match(raw)
    if mailto:
        raw = mailto.group(1)
    elif raw.startswith("<") and raw.endswith(">"):
        raise UsageError(messages.USER_IS_A_LINK, usage=usage)
    if len(raw) > MAX_USER:
        raise UsageError(messages.USER_TOO_LONG.format(limit=MAX_USER), usage=usage)
    if not _USER.match(raw):
        raise UsageError(messages.USER_CHARACTERS.format(user=_quote(raw)), usage=usage)
    return raw


def parse_credits(raw: str, usage: str, *, allow_zero: bool = False) -> int:
    """A positive whole number of credits, `1500` or `1,500`, at most MAX_CREDITS."""
    if not _NUMBER.match(raw):
        raise UsageError(messages.NOT_A_NUMBER.format(value=_quote(raw)), usage=usage)
    value = int(raw.replace(",", ""))
    if value == 0 and not allow_zero:
        raise UsageError(messages.ZERO_CREDITS, usage=usage)
    if value > MAX_CREDITS:
        raise UsageError(messages.TOO_MANY_CREDITS.format(limit=MAX_CREDITS), usage=usage)
    return value


def recurring(verb: Verb, args: list[str], text: str, usage: str) -> Command:
    """`recurring USER N daily|weekly|monthly [start=…] [end=…] [initial=N] [reason…]`."""
    if len(args) < 3:
        raise UsageError(messages.MISSING_ARGUMENTS, usage=usage)
    user = parse_user(args[0], usage)
    credits = parse_credits(args[1], usage)
    try:
        period = Period(args[2].lower())
    except ValueError:
        raise UsageError(messages.BAD_PERIOD.format(value=_quote(args[2])), usage=usage) from None
    options: dict[str, str] = {}
    rest = args[3:]
    while rest and _OPTION_LIKE.match(rest[0]):
        word, rest = rest[0], rest[1:]
        key, _, value = word.partition("=")
        key = key.lower()
        if key not in _OPTION_NAMES:
            raise UsageError(messages.UNKNOWN_OPTION.format(value=_quote(word)), usage=usage)
        if key in options:
            raise UsageError(messages.REPEATED_OPTION.format(name=key), usage=usage)
        options[key] = value
    start = _date(options, "start", usage)
    end = _date(options, "end", usage)
    initial = options.get("initial")
    change = CreditChange(
        kind=ChangeKind(verb.value),
        user=user,
        credits=credits,
        period=period,
        start=start,
        end=end,
        initial=parse_credits(initial, usage, allow_zero=True) if initial is not None else None,
        reason=_reason(rest),
    )
    return Command(verb, user=user, change=change)


def _reason(words: list[str]) -> str | None:
    """The rest of the line after a change's arguments: why it is asked."""
    return parse_reason(" ".join(words))


def parse_reason(text: str | None) -> str | None:
    """Why a change is asked, on one line (None if empty); at most MAX_REASON characters."""
    reason = " ".join((text or "").split())
    if len(reason) > MAX_REASON:
        raise UsageError(messages.REASON_TOO_LONG.format(limit=MAX_REASON))
    return reason or None


def _date(options: dict[str, str], name: str, usage: str) -> date | None:
    raw = options.get(name)
    if raw is None:
        return None
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", raw):
        raise UsageError(messages.BAD_DATE.format(name=name, value=_quote(raw)), usage=usage)
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise UsageError(
            messages.BAD_DATE.format(name=name, value=_quote(raw)), usage=usage
        ) from None


def _arity(args: list[str], expected: int, usage: str) -> None:
    if len(args) < expected:
        raise UsageError(messages.MISSING_ARGUMENTS, usage=usage)
    if len(args) > expected:
        extra = " ".join(args[expected:])
        raise UsageError(messages.EXTRA_ARGUMENTS.format(extra=_quote(extra)), usage=usage)


def unknown(name: str, names: list[str]) -> UnknownSubcommand:
    """`name` is no subcommand: say so, suggesting the closest of `names`."""
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    if close:
        return UnknownSubcommand(
            messages.DID_YOU_MEAN.format(value=_quote(name), suggestion=close[0])
        )
    return UnknownSubcommand(messages.UNKNOWN_SUBCOMMAND.format(value=_quote(name)))


def _quote(value: str, limit: int = 40) -> str:
    """User text made safe to echo back inside `code`: short, no backticks or markup."""
    cleaned = "".join(ch if ch.isprintable() else "?" for ch in value).replace("`", "'")
    cleaned = cleaned.replace("<", "‹").replace(">", "›").replace("&", "＆")
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"
