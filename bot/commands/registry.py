"""Every `/credits` subcommand, one record each: its name, usage, help sentence,
the action the access filter checks (bot/domain/policy.py says which role may), its
argument parser and its handler.

Adding a subcommand is one `Verb` member and one record here, its handler (in
`reads.py`, `writes.py` or a new feature module) and its sentences in `messages.py`.
Help, usage lines, the role check and dispatch all read these records.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from bot.commands import grammar, messages, reads, writes
from bot.commands.context import Handler
from bot.commands.grammar import Command
from bot.domain.policy import REQUIRED_ROLE, Action, Role, allows


class Verb(enum.StrEnum):
    """The `/credits` subcommands, by name (each has exactly one record below)."""

    HELP = "help"
    SHOW = "show"
    OVERVIEW = "overview"
    ADD = "add"
    REMOVE = "remove"
    SET = "set"
    RECURRING = "recurring"
    UNLIMIT = "unlimit"
    PENDING = "pending"
    AUDIT = "audit"
    THRESHOLD = "threshold"
    APPROVE = "approve"
    DENY = "deny"
    CANCEL = "cancel"
    RESOLVE = "resolve"
    WHOAMI = "whoami"
    LOW = "low"
    HISTORY = "history"


# (verb, the words after it, the whole line, its usage) -> Command; raises UsageError.
Parser = Callable[[Verb, list[str], str, str], Command]


@dataclass(frozen=True, slots=True, kw_only=True)
class Subcommand:
    """One subcommand: what it is called, how it is written, who may run it, what runs."""

    verb: Verb
    usage: str
    help: str
    action: Action
    parse: Parser
    handle: Handler
    changes_state: bool = False  # refused while a request's replay cannot be checked
    posts_elsewhere: bool = False  # besides its reply (history's chart in the channel)

    @property
    def only_replies(self) -> bool:
        """Its only effect is its reply: it may run while its replay is still being
        decided, as long as the reply waits for that (`PostAckWork`)."""
        return not self.changes_state and not self.posts_elsewhere

    @property
    def name(self) -> str:
        return self.verb.value

    @property
    def required_role(self) -> Role:
        return REQUIRED_ROLE[self.action]


def _help_topic(verb: Verb, args: list[str], text: str, usage: str) -> Command:
    """`help [SUBCOMMAND]`: an unknown topic shows the whole help."""
    topic = BY_NAME.get(args[0].lower()) if args else None
    return Command(verb, topic=topic.verb if topic else None)


SUBCOMMANDS: tuple[Subcommand, ...] = (
    Subcommand(
        verb=Verb.HELP,
        usage="/credits help",
        help=messages.HELP_HELP,
        action=Action.READ_HELP,
        parse=_help_topic,
        handle=reads.show_help,
    ),
    Subcommand(
        verb=Verb.SHOW,
        usage="/credits show USER",
        help=messages.HELP_SHOW,
        action=Action.READ_BALANCES,
        parse=grammar.one_user,
        handle=reads.show_balance,
    ),
    Subcommand(
        verb=Verb.OVERVIEW,
        usage="/credits overview USER",
        help=messages.HELP_OVERVIEW,
        action=Action.READ_BALANCES,
        parse=grammar.one_user,
        handle=reads.show_overview,
    ),
    Subcommand(
        verb=Verb.ADD,
        usage="/credits add USER N [reason]",
        help=messages.HELP_ADD,
        action=Action.CHANGE_CREDITS,
        parse=grammar.user_and_credits,
        handle=writes.change_credits,
        changes_state=True,
    ),
    Subcommand(
        verb=Verb.REMOVE,
        usage="/credits remove USER N [reason]",
        help=messages.HELP_REMOVE,
        action=Action.CHANGE_CREDITS,
        parse=grammar.user_and_credits,
        handle=writes.change_credits,
        changes_state=True,
    ),
    Subcommand(
        verb=Verb.SET,
        usage="/credits set USER N [reason]",
        help=messages.HELP_SET,
        action=Action.CHANGE_CREDITS,
        parse=grammar.user_and_credits,
        handle=writes.change_credits,
        changes_state=True,
    ),
    Subcommand(
        verb=Verb.RECURRING,
        usage=(
            "/credits recurring USER N daily|weekly|monthly "
            "[start=YYYY-MM-DD] [end=YYYY-MM-DD] [initial=N] [reason]"
        ),
        help=messages.HELP_RECURRING,
        action=Action.CHANGE_CREDITS,
        parse=grammar.recurring,
        handle=writes.change_credits,
        changes_state=True,
    ),
    Subcommand(
        verb=Verb.UNLIMIT,
        usage="/credits unlimit USER [reason]",
        help=messages.HELP_UNLIMIT,
        action=Action.CHANGE_CREDITS,
        parse=grammar.user_and_reason,
        handle=writes.change_credits,
        changes_state=True,
    ),
    Subcommand(
        verb=Verb.PENDING,
        usage="/credits pending",
        help=messages.HELP_PENDING,
        action=Action.READ_RECORDS,
        parse=grammar.no_arguments,
        handle=reads.list_pending,
    ),
    Subcommand(
        verb=Verb.AUDIT,
        usage="/credits audit [USER]",
        help=messages.HELP_AUDIT,
        action=Action.READ_RECORDS,
        parse=grammar.optional_user,
        handle=reads.show_audit,
    ),
    Subcommand(
        verb=Verb.THRESHOLD,
        usage="/credits threshold USER N",
        help=messages.HELP_THRESHOLD,
        action=Action.SET_THRESHOLD,
        parse=grammar.user_and_amount,
        handle=writes.set_threshold,
        changes_state=True,
    ),
    Subcommand(
        verb=Verb.APPROVE,
        usage="/credits approve ID",
        help=messages.HELP_APPROVE,
        action=Action.DECIDE_REQUEST,
        parse=grammar.request_id,
        handle=writes.approve_request,
        changes_state=True,
    ),
    Subcommand(
        verb=Verb.DENY,
        usage="/credits deny ID [reason]",
        help=messages.HELP_DENY,
        action=Action.DECIDE_REQUEST,
        parse=grammar.request_id_and_reason,
        handle=writes.deny_request,
        changes_state=True,
    ),
    Subcommand(
        verb=Verb.CANCEL,
        usage="/credits cancel ID",
        help=messages.HELP_CANCEL,
        action=Action.CANCEL_REQUEST,
        parse=grammar.request_id,
        handle=writes.cancel_request,
        changes_state=True,
    ),
    Subcommand(
        verb=Verb.RESOLVE,
        usage="/credits resolve ID applied|not-applied",
        help=messages.HELP_RESOLVE,
        action=Action.RESOLVE_REQUEST,
        parse=grammar.request_id_and_outcome,
        handle=writes.resolve_request,
        changes_state=True,
    ),
    Subcommand(
        verb=Verb.WHOAMI,
        usage="/credits whoami",
        help=messages.HELP_WHOAMI,
        action=Action.READ_HELP,
        parse=grammar.no_arguments,
        handle=reads.whoami,
    ),
    Subcommand(
        verb=Verb.LOW,
        usage="/credits low",
        help=messages.HELP_LOW,
        action=Action.READ_BALANCES,
        parse=grammar.no_arguments,
        handle=reads.list_low,
    ),
    Subcommand(
        verb=Verb.HISTORY,
        usage="/credits history USER",
        help=messages.HELP_HISTORY,
        action=Action.READ_BALANCES,
        parse=grammar.one_user,
        handle=reads.show_history,
        posts_elsewhere=True,
    ),
)

BY_VERB: dict[Verb, Subcommand] = {record.verb: record for record in SUBCOMMANDS}
BY_NAME: dict[str, Subcommand] = {record.name: record for record in SUBCOMMANDS}
USAGE: dict[Verb, str] = {record.verb: record.usage for record in SUBCOMMANDS}


def parse(text: str) -> Command:
    """Parse the text after `/credits` (a leading `/credits` is tolerated)."""
    words = grammar.check_line(text)
    if not words:
        return Command(Verb.HELP)
    name, args = words[0].lower(), words[1:]
    record = BY_NAME.get(name)
    if record is None:
        raise grammar.unknown(name, list(BY_NAME))
    return record.parse(record.verb, args, text, record.usage)


def allowed(role: Role) -> list[Subcommand]:
    """The subcommands `role` may use, in help's order."""
    return [record for record in SUBCOMMANDS if allows(role, record.action)]
