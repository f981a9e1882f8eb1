"""Builds the parts a process needs from Settings (the composition root).

Every transport gets its `CommandService` here, so Slack and the console run
exactly the same commands with the same policy.
"""

from __future__ import annotations

import logging

from bot.adapters.sendgrid import build_backend
from bot.commands.service import CommandService
from bot.config import Settings
from bot.domain.credits import CreditsBackend
from bot.domain.policy import GroupDirectory, RoleBook


def role_book(settings: Settings) -> RoleBook:
    return RoleBook(
        admins=settings.admins,
        approvers=settings.approvers,
        operators=settings.operators,
        viewers=settings.viewers,
    )


def build_service(
    settings: Settings,
    *,
    backend: CreditsBackend | None = None,
    directory: GroupDirectory | None = None,
    roles: RoleBook | None = None,
) -> CommandService:
    """The command service for these settings; collaborators may be injected."""
    return CommandService(
        backend=backend if backend is not None else build_backend(settings),
        roles=roles if roles is not None else role_book(settings),
        directory=directory,
        auto_approve_max=settings.auto_approve_max,
        logger=logging.getLogger("bot.commands"),
    )
