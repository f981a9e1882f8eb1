"""Slack's directory: who is in a user group (`usergroups.users.list`), cached.

Roles can be granted to user groups (design §1). Lookups are Tier 2 (about 20 a
minute), so members are cached for `ttl` seconds. Failures are never cached and
never guessed: they raise `DirectoryError`, and the policy denies (fail closed).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.adapters.slack.web import failure_reason
from bot.errors import DirectoryError


class SlackUserGroups:
    """`GroupDirectory` over Slack's Web API, with a per-group TTL cache."""

    def __init__(
        self,
        *,
        client: WebClient,
        ttl: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        logger: logging.Logger | None = None,
    ) -> None:
        self._client = client
        self._ttl = ttl
        self._clock = clock
        self._logger = logger or logging.getLogger("bot.slack.directory")
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}
        self._lock = threading.Lock()

    def members(self, group_id: str) -> frozenset[str]:
        """The group's member IDs. Raises DirectoryError if Slack cannot say."""
        now = self._clock()
        with self._lock:
            cached = self._cache.get(group_id)
        if cached and now - cached[0] < self._ttl:
            return cached[1]
        try:
            response = self._client.usergroups_users_list(usergroup=group_id)
        except SlackApiError as error:
            reason = failure_reason(error)
            self._logger.warning("usergroups.users.list %s failed: %s", group_id, reason)
            raise DirectoryError(f"Slack could not list {group_id}", reason=reason) from None
        except (SlackClientError, OSError) as error:
            self._logger.warning("usergroups.users.list %s unreachable: %r", group_id, error)
            raise DirectoryError(
                f"Slack could not be reached to list {group_id}", reason="slack_unreachable"
            ) from None
        users = response.get("users")
        if not isinstance(users, list):
            raise DirectoryError(f"Slack sent no member list for {group_id}", reason="bad_response")
        members = frozenset(str(u) for u in users)
        with self._lock:
            self._cache[group_id] = (now, members)
        return members
