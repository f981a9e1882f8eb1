"""A change asked for in a form (the request modal), field by field.

The fields become a `Command` with the same checks as the command line (user,
number and reason rules from `grammar`); nothing is written out as text to be
parsed again. Each error names the field it belongs to, so a form can show it
beside that field.
"""

from __future__ import annotations

from bot.commands import messages
from bot.commands.grammar import (
    Command,
    UsageError,
    parse_credits,
    parse_user,
    reason_from_words,
)
from bot.commands.registry import USAGE, Verb
from bot.domain.credits import ChangeKind, CreditChange, Period

# The changes a form (the request modal) can ask for.
FORM_VERBS: tuple[Verb, ...] = (Verb.ADD, Verb.REMOVE, Verb.SET, Verb.RECURRING, Verb.UNLIMIT)


class FieldError(UsageError):
    """A form's field is wrong: `field` names it (user, action, amount, period, reason)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def command_from_fields(
    *, action: str, user: str, amount: str = "", period: str = "", reason: str = ""
) -> Command:
    """A change asked for in a form, field by field, checked as the command line is
    (the same user, number and reason rules); each error names its field."""
    try:
        verb = Verb(action)
    except ValueError:
        raise FieldError("action", messages.FORM_PICK_ACTION) from None
    if verb not in FORM_VERBS:
        raise FieldError("action", messages.FORM_PICK_ACTION)
    usage = USAGE[verb]
    kind = ChangeKind(verb.value)
    try:
        parsed_user = parse_user(user.strip(), usage)
    except UsageError as error:
        raise FieldError("user", str(error)) from None
    words = reason.split()
    try:
        why = reason_from_words(words)
    except UsageError as error:
        raise FieldError("reason", str(error)) from None
    if verb is Verb.UNLIMIT:
        if amount.strip():
            raise FieldError("amount", messages.FORM_NO_AMOUNT)
        change = CreditChange(kind, parsed_user, reason=why)
        return Command(verb, user=parsed_user, change=change)
    if not amount.strip():
        raise FieldError("amount", messages.FORM_AMOUNT_NEEDED)
    try:
        credits = parse_credits(amount.strip(), usage)
    except UsageError as error:
        raise FieldError("amount", str(error)) from None
    chosen: Period | None = None
    if verb is Verb.RECURRING:
        try:
            chosen = Period(period)
        except ValueError:
            raise FieldError("period", messages.FORM_PERIOD_NEEDED) from None
    elif period:
        raise FieldError("period", messages.FORM_PERIOD_ONLY_RECURRING)
    change = CreditChange(kind, parsed_user, credits, period=chosen, reason=why)
    return Command(verb, user=parsed_user, change=change)
