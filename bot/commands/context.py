"""What a subcommand's handler is given: who asks, what they asked, what the access
filter decided, and the collaborators (built once, by the command service)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from bot.commands.changes import ChangeService
from bot.commands.grammar import Command
from bot.commands.replies import Reply
from bot.commands.sweep import ForecastCache
from bot.domain.approvals import AuditAction, AuditEvent
from bot.domain.policy import Decision, ResolvedRole, RoleBook
from bot.domain.ports import AlertStore, CreditsBackend, GroupDirectory, Store

if TYPE_CHECKING:
    from bot.commands.registry import Subcommand


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is asking: a Slack user ID (never a username)."""

    user_id: str


@dataclass(frozen=True, slots=True)
class Call:
    """One subcommand as the access filter let it through."""

    actor: Actor
    command: Command
    resolved: ResolvedRole
    decision: Decision


@dataclass(frozen=True, slots=True, kw_only=True)
class Context:
    """The collaborators every handler may use."""

    backend: CreditsBackend
    roles: RoleBook
    directory: GroupDirectory | None
    changes: ChangeService
    alerts: AlertStore
    forecasts: ForecastCache
    store: Store
    auto_approve_max: int
    logger: logging.Logger
    clock: Callable[[], datetime]
    subcommands: tuple[Subcommand, ...]

    def audit(self, actor: Actor, action: AuditAction, user: str, outcome: str) -> None:
        self.store.record(
            AuditEvent(
                at=self.clock(),
                actor_id=actor.user_id,
                action=action,
                target=user,
                outcome=outcome,
            )
        )


# A subcommand's handler: given the collaborators and the call, the reply.
Handler = Callable[[Context, Call], Reply]
