"""Builds the parts a process needs from Settings (the composition root).

Every transport gets its services here, so Slack and the console run exactly
the same commands with the same policy and the same database.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from dataclasses import dataclass

from bot.adapters.sendgrid import build_backend
from bot.adapters.store import SqlStore
from bot.commands.changes import ApprovalNotifier, ChangeService
from bot.commands.service import CommandService
from bot.config import Settings
from bot.domain.approvals import Store
from bot.domain.credits import CreditsBackend
from bot.domain.policy import GroupDirectory, RoleBook
from bot.errors import BotError

logger = logging.getLogger("bot")


def role_book(settings: Settings) -> RoleBook:
    return RoleBook(
        admins=settings.admins,
        approvers=settings.approvers,
        operators=settings.operators,
        viewers=settings.viewers,
    )


def executor_name() -> str:
    """Names this process in the requests it executes (host, pid, random)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Services:
    commands: CommandService
    changes: ChangeService
    store: Store


def build_services(
    settings: Settings,
    *,
    backend: CreditsBackend | None = None,
    directory: GroupDirectory | None = None,
    roles: RoleBook | None = None,
    store: Store | None = None,
    notifier: ApprovalNotifier | None = None,
) -> Services:
    """The services for these settings; collaborators may be injected.

    Opening the store applies pending migrations (`credits-bot migrate` does
    only that).
    """
    backend = backend if backend is not None else build_backend(settings)
    roles = roles if roles is not None else role_book(settings)
    store = store if store is not None else SqlStore.from_url(settings.database_url)
    changes = ChangeService(
        store=store,
        backend=backend,
        roles=roles,
        directory=directory,
        notifier=notifier,
        ttl=settings.approval_ttl,
        executor=executor_name(),
        logger=logging.getLogger("bot.changes"),
    )
    commands = CommandService(
        backend=backend,
        roles=roles,
        directory=directory,
        changes=changes,
        auto_approve_max=settings.auto_approve_max,
        logger=logging.getLogger("bot.commands"),
    )
    return Services(commands=commands, changes=changes, store=store)


class Housekeeping:
    """At start-up: mark orphaned executions unknown. Then, every `interval` s: expire.

    Expiry is one conditional UPDATE, so several instances doing it at once
    still expire (and announce) each request once.
    """

    def __init__(self, changes: ChangeService, *, interval: float = 60.0) -> None:
        self._changes = changes
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="housekeeping", daemon=True)

    def start(self) -> Housekeeping:
        recovered = self._changes.recover_orphans()
        if recovered:
            logger.warning(
                "%d request(s) left executing by a stopped process: now unknown", recovered
            )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._changes.expire_due()
            except BotError:
                logger.exception("expiring approval requests failed; will retry")
