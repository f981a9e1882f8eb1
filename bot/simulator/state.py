"""The simulator's in-memory SendGrid: accounts, credit tasks, a call log, fault rules.

Behaviour follows the recorded v2 traffic (reference §2.1): `total`,
`increment` and `decrement` set the balance and clear the recurring amount
(v3's `PATCH …/credits/remaining` moves the balance and keeps the plan, as the
spec's example answer shows),
`recurring` sets the allowance (and the balance to `initial_credits` or
`credits`), `none` removes the limit so `retrieve` answers `[]`. Where real
behaviour is unknown the choice is written down: `decrement` never takes the
balance below zero, and `increment` on an unlimited account starts from zero.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import unquote

WRITE_TASKS = frozenset({"none", "recurring", "total", "increment", "decrement"})
PERIODS = ("daily", "weekly", "monthly")
MAX_UNSIGNED = 4_294_967_295
# The demo key's scopes (`GET /v3/scopes`): the subuser and credits scopes, and a
# few unrelated ones, as a key made with "Full Access" would have.
CREDITS_KEY_SCOPES = frozenset(
    {
        "mail.send",
        "subusers.read",
        "subusers.credits.read",
        "subusers.credits.update",
        "subusers.credits.remaining.read",
        "subusers.credits.remaining.update",
        "user.profile.read",
    }
)


class SimulatedError(Exception):
    """A SendGrid-style refusal: `messages` go into `{"message":"error","errors":[…]}`
    (v2, HTTP 200) or `{"errors":[{"field","message"}]}` (v3, HTTP `status`)."""

    def __init__(self, *messages: str, status: int = 400) -> None:
        super().__init__("; ".join(messages))
        self.messages = messages
        self.status = status


@dataclass
class SimulatedAccount:
    """One subuser or reseller customer and its credits."""

    username: str
    email: str
    active: bool = True
    unlimited: bool = False
    credit: int = 0  # recurring reset amount; 0 when not recurring
    credit_remain: int = 0
    period: str | None = None
    last_reset: str = "2026-11-01"
    startdate: str | None = None
    enddate: str | None = None
    overview: dict[str, Any] = field(default_factory=dict)
    first_name: str = ""
    last_name: str = ""
    id: int = 0


@dataclass(frozen=True)
class CallRecord:
    """One request the simulator received (credentials never recorded)."""

    seq: int
    at: float
    module: str
    fmt: str
    params: dict[str, str]
    status: int
    outcome: str  # ok | error | fault:<kind> | rate-limited | unauthorized
    applied: bool  # a write that changed state

    @property
    def task(self) -> str | None:
        return self.params.get("task")

    @property
    def user(self) -> str | None:
        return self.params.get("user")

    @property
    def is_write(self) -> bool:
        return self.task in WRITE_TASKS and self.params.get("method", "limit") == "limit"


# The metrics of the spec's `CategoryStats` example answer.
STAT_METRICS = (
    "blocks",
    "bounce_drops",
    "bounces",
    "clicks",
    "deferred",
    "delivered",
    "invalid_emails",
    "opens",
    "processed",
    "requests",
    "spam_report_drops",
    "spam_reports",
    "unique_clicks",
    "unique_opens",
    "unsubscribe_drops",
    "unsubscribes",
)

FAULT_KINDS = (
    "latency",  # arg: ms to wait before handling
    "status",  # arg: HTTP status (5xx) with an HTML body
    "ratelimit",  # arg: Retry-After seconds; HTTP 429
    "error200",  # arg: 1|2|3, one of the three HTTP-200 error shapes; echo|echo-url: the
    # error text quotes the api_key as sent, raw or URL-encoded (a careless server)
    "html-echo",  # arg: HTTP status (default 200); an HTML page quoting the HTML-escaped
    # api_key 100 characters in (a proxy's error page)
    "xml-error",  # an XML error body, whatever format was asked
    "malformed",  # a body that does not parse
    "empty",  # HTTP 200 with no body
    "truncated",  # Content-Length promises more than is sent, then the connection closes
    "drop",  # the connection closes without any answer
    "slow-write",  # arg: ms; the write is applied, then the answer waits this long
)


@dataclass
class FaultRule:
    """Inject `kind` into matching requests.

    Matches requests whose task/user/module equal the given values (None = any).
    `times` counts down to zero (None = forever); `probability` picks a fraction.
    """

    kind: str
    arg: str | None = None
    task: str | None = None
    user: str | None = None
    module: str | None = None
    times: int | None = None
    probability: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {self.kind!r}; known: {', '.join(FAULT_KINDS)}")

    def matches(self, module: str, params: dict[str, str]) -> bool:
        return (
            (self.task is None or params.get("task") == self.task)
            and (self.user is None or params.get("user") == self.user)
            and (self.module is None or module == self.module)
        )


def parse_key_faults(suffix: str) -> list[FaultRule]:
    """Faults named in the API key after the password: `secret~latency:500~drop`.

    `~` is unreserved in URLs and form bodies, so it arrives as typed (`+` would
    arrive as a space).
    """
    rules = []
    for part in filter(None, suffix.split("~")):
        kind, _, arg = part.partition(":")
        rules.append(FaultRule(kind=kind, arg=arg or None))
    return rules


class SlidingWindowLimit:
    """At most `limit` accepted requests per `window` seconds, per API user."""

    def __init__(
        self, limit: int, window: float = 60.0, clock: Callable[[], float] = time.monotonic
    ):
        self.limit = limit
        self.window = window
        self._clock = clock
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, who: str) -> float | None:
        """Record a request; return None if allowed, else seconds until one is."""
        with self._lock:
            now = self._clock()
            seen = self._seen.setdefault(who, deque())
            while seen and seen[0] <= now - self.window:
                seen.popleft()
            if len(seen) >= self.limit:
                return seen[0] + self.window - now
            seen.append(now)
            return None

    def remaining(self, who: str) -> int:
        with self._lock:
            return max(0, self.limit - len(self._seen.get(who, ())))


class SimulatorState:
    """Thread-safe accounts, call log and fault rules shared by all requests."""

    def __init__(
        self,
        *,
        api_user: str,
        api_key: str,
        subusers: Iterable[SimulatedAccount] = (),
        customers: Iterable[SimulatedAccount] = (),
        rate_limit: int | None = 600,
        rate_window: float = 60.0,
        retrieve_shape: str = "array",
        today: Callable[[], date] = date.today,
        seed: int = 0,
    ) -> None:
        self.api_user = api_user
        self.api_key = api_key
        # What `GET /v3/scopes` answers for the key; tests take scopes away.
        self.key_scopes: set[str] = set(CREDITS_KEY_SCOPES)
        self.subusers = {a.username: a for a in subusers}
        self.customers = {a.username: a for a in customers}
        self.limit = SlidingWindowLimit(rate_limit, rate_window) if rate_limit else None
        self.retrieve_shape = retrieve_shape
        self._today = today
        self._random = random.Random(seed)
        self._lock = threading.RLock()
        self._calls: list[CallRecord] = []
        self._rules: list[FaultRule] = []
        # Spending over time (bot.simulator.traffic.TrafficModel); None: balances stay put.
        self.traffic: Any = None

    # --- faults and log ------------------------------------------------------------

    def add_fault(self, rule: FaultRule) -> FaultRule:
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear_faults(self) -> None:
        with self._lock:
            self._rules.clear()

    def faults_for(self, module: str, params: dict[str, str]) -> list[FaultRule]:
        with self._lock:
            chosen = []
            for rule in self._rules:
                if rule.times == 0 or not rule.matches(module, params):
                    continue
                if rule.probability < 1.0 and self._random.random() >= rule.probability:
                    continue
                if rule.times is not None:
                    rule.times -= 1
                chosen.append(rule)
            return chosen

    def record(self, **fields: Any) -> CallRecord:
        with self._lock:
            params = {
                k: v for k, v in fields.pop("params").items() if k not in ("api_key", "api_user")
            }
            record = CallRecord(seq=len(self._calls) + 1, at=time.time(), params=params, **fields)
            self._calls.append(record)
            return record

    def calls(self) -> list[CallRecord]:
        with self._lock:
            return list(self._calls)

    def writes(self, *, user: str | None = None, task: str | None = None) -> list[CallRecord]:
        """Write calls that changed state (optionally for one user / task)."""
        return [
            c
            for c in self.calls()
            if c.applied and (user is None or c.user == user) and (task is None or c.task == task)
        ]

    def clear_calls(self) -> None:
        with self._lock:
            self._calls.clear()

    # --- the API ---------------------------------------------------------------------

    def handle(self, module: str, params: dict[str, str]) -> tuple[Any, bool]:
        """Run one authenticated call. Returns (JSON-able result, applied)."""
        params = {k: v for k, v in params.items() if k != "keep_plan"}  # v3's alone
        with self._lock:
            self._settle(self.subusers.get(params.get("user") or ""))
            if module == "customer.limit":
                return self._limit(self._account(self.subusers, params), params)
            if module == "customer.profile":
                return self._profiles(self.subusers, params, paged=False), False
            if module == "reseller.account":
                if params.get("task") != "overview":
                    raise SimulatedError("Invalid task")
                return self._overview(self._account(self.customers, params)), False
            if module == "reseller.manage":
                method = params.get("method")
                if method == "limit":
                    return self._limit(self._account(self.customers, params), params)
                if method == "profile":
                    return self._profiles(self.customers, params, paged=True), False
                raise SimulatedError("Invalid method")
        raise SimulatedError("Invalid module")

    # --- v3 (same accounts, same semantics) ---------------------------------------------

    def handle_v3(self, params: dict[str, str]) -> tuple[Any, bool]:
        """A v3 call, given as the v2-style params `v3_params` made of it."""
        with self._lock:
            if params["task"] == "scopes":
                return {"scopes": sorted(self.key_scopes)}, False
            if params["task"] == "stats-sums":
                return self._stats_sums(params), False
            if params["task"] == "get":
                offset, limit = int(params["offset"]), int(params["limit"])
                chosen = list(self.subusers.values())[offset : offset + limit]
                return [
                    {"disabled": not a.active, "email": a.email, "id": a.id, "username": a.username}
                    for a in chosen
                ], False
            account = self.subusers.get(params["user"])
            if account is None:
                raise SimulatedError("No user found")
            self._settle(account)
            applied = False
            if params["task"] != "retrieve":
                _, applied = self._limit(account, params)
            return _v3_credits(account), applied

    def _settle(self, account: SimulatedAccount | None) -> None:
        if self.traffic is not None and account is not None:
            self.traffic.settle(account)

    def _stats_sums(self, params: dict[str, str]) -> dict[str, Any]:
        """`GET /v3/subusers/stats/sums` as the spec defines it (`CategoryStats`): one
        entry per subuser, `type: subuser`, sorted by `sort_by_metric`, paged. Only
        `requests` moves (the traffic model's sends); other metrics stay 0."""
        start = _date_param(params, "start_date")
        if start is None:
            raise SimulatedError("start_date is required")
        metric = params.get("sort_by_metric") or "delivered"
        sent: dict[str, int] = (
            self.traffic.requests_today(date.fromisoformat(start)) if self.traffic else {}
        )
        descending = params.get("sort_by_direction", "desc") != "asc"
        offset, limit = int(params.get("offset") or 0), int(params.get("limit") or 5)
        value = sent.get if metric == "requests" else (lambda _name, _default: 0)
        names = sorted(self.subusers, key=lambda n: value(n, 0), reverse=descending)
        rows = [
            {
                "metrics": {**dict.fromkeys(STAT_METRICS, 0), "requests": sent.get(name, 0)},
                "name": name,
                "type": "subuser",
            }
            for name in names[offset : offset + limit]
        ]
        return {"date": start, "stats": rows}

    def _account(
        self, accounts: dict[str, SimulatedAccount], params: dict[str, str]
    ) -> SimulatedAccount:
        user = params.get("user")
        if not user:
            raise SimulatedError("Missing required parameter: user")
        account = accounts.get(user)
        if account is None:
            raise SimulatedError("User does not exist")
        return account

    def _limit(self, account: SimulatedAccount, params: dict[str, str]) -> tuple[Any, bool]:
        task = params.get("task")
        if task == "retrieve":
            return self._retrieve(account), False
        if task not in WRITE_TASKS:
            raise SimulatedError("Invalid task")
        if task == "none":
            account.unlimited, account.credit, account.period = True, 0, None
            return {"message": "success"}, True
        credits = _unsigned(params, "credits")
        if task == "recurring":
            period = params.get("period")
            if period not in PERIODS:
                raise SimulatedError("period must be daily, weekly or monthly")
            start, end = _date_param(params, "startdate"), _date_param(params, "enddate")
            initial = _unsigned(params, "initial_credits") if "initial_credits" in params else None
            account.unlimited = False
            account.credit, account.period = credits, period
            account.credit_remain = credits if initial is None else initial
            account.startdate, account.enddate = start, end
            account.last_reset = self._today().isoformat()
        elif task == "total":
            account.unlimited, account.credit, account.period = False, 0, None
            account.credit_remain = credits
        elif task in ("increment", "decrement"):
            base = 0 if account.unlimited else account.credit_remain
            account.unlimited = False
            if params.get("keep_plan") != "1":  # v2 clears the recurring amount (§2.1)
                account.credit, account.period = 0, None
            moved = base + credits if task == "increment" else base - credits
            account.credit_remain = max(0, min(MAX_UNSIGNED, moved))
        return {"message": "success"}, True

    def _retrieve(self, account: SimulatedAccount) -> Any:
        if account.unlimited:
            return []
        balance = {
            "credit": str(account.credit),
            "credit_remain": str(account.credit_remain),
            "last_reset": account.last_reset,
        }
        return [balance] if self.retrieve_shape == "array" else balance

    def _overview(self, account: SimulatedAccount) -> dict[str, Any]:
        overview = dict(account.overview)
        # The documented example mixes quoted and unquoted numbers; so do we.
        overview["credits_remain"] = 0 if account.unlimited else account.credit_remain
        return overview

    def _profiles(
        self, accounts: dict[str, SimulatedAccount], params: dict[str, str], *, paged: bool
    ) -> list[dict[str, str]]:
        if params.get("task") != "get":
            raise SimulatedError("Invalid task")
        wanted = params.get("username", "")
        active = params.get("active")
        chosen = [
            a
            for a in accounts.values()
            if wanted in a.username and (active is None or a.active == (active in ("1", "true")))
        ]
        if paged:
            offset = int(_unsigned(params, "offset")) if "offset" in params else 0
            limit = int(_unsigned(params, "limit")) if "limit" in params else len(chosen)
            chosen = chosen[offset : offset + limit]
        return [_profile(a, with_id=paged) for a in chosen]

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "subusers": [asdict(a) for a in self.subusers.values()],
                "customers": [asdict(a) for a in self.customers.values()],
            }


def _v3_credits(account: SimulatedAccount) -> dict[str, Any]:
    if account.unlimited:
        kind, total, used, frequency = "unlimited", None, None, None
        remain: int | None = None
    elif account.credit and account.period:
        kind, frequency = "recurring", account.period
        remain, total = account.credit_remain, account.credit
        used = max(0, account.credit - account.credit_remain)
    else:
        kind, total, used, frequency = "nonrecurring", None, None, None
        remain = account.credit_remain
    return {
        "type": kind,
        "reset_frequency": frequency,
        "remain": remain,
        "total": total,
        "used": used,
    }


def v3_params(
    method: str, path: str, query: dict[str, str], body: dict[str, Any]
) -> dict[str, str] | None:
    """A v3 request as the v2-style params the state (and the call log) speak.

    None if the path is not one of the v3 endpoints the simulator serves.
    """
    parts = path.strip("/").split("/")
    if parts == ["v3", "scopes"] and method == "GET":
        return {"task": "scopes"}
    if parts == ["v3", "subusers", "stats", "sums"] and method == "GET":
        return {
            "task": "stats-sums",
            **{
                k: query[k]
                for k in (
                    "start_date",
                    "end_date",
                    "limit",
                    "offset",
                    "sort_by_metric",
                    "sort_by_direction",
                )
                if k in query
            },
        }
    if parts == ["v3", "subusers"] and method == "GET":
        return {
            "task": "get",
            "limit": query.get("limit", "500"),
            "offset": query.get("offset", "0"),
        }
    if len(parts) < 4 or parts[:2] != ["v3", "subusers"] or parts[3] != "credits":
        return None
    user = unquote(parts[2])
    if len(parts) == 4 and method == "GET":
        return {"user": user, "task": "retrieve"}
    if len(parts) == 4 and method == "PUT":
        kind = body.get("type")
        if kind == "unlimited":
            return {"user": user, "task": "none"}
        total = body.get("total")
        if not isinstance(total, int) or isinstance(total, bool) or total < 1:
            raise SimulatedError("total must be an integer of at least 1")
        if kind == "nonrecurring":
            return {"user": user, "task": "total", "credits": str(total)}
        if kind == "recurring":
            return {
                "user": user,
                "task": "recurring",
                "credits": str(total),
                "period": str(body.get("reset_frequency")),
            }
        raise SimulatedError("Type should be set to 'recurring', 'nonrecurring', or 'unlimited'")
    if len(parts) == 5 and parts[4] == "remaining" and method == "PATCH":
        update = body.get("allocation_update")
        if not isinstance(update, int) or isinstance(update, bool) or update == 0:
            raise SimulatedError("allocation_update must be a non-zero integer")
        task = "increment" if update > 0 else "decrement"
        # The spec's example answer keeps `type: recurring`: only the balance moves.
        return {"user": user, "task": task, "credits": str(abs(update)), "keep_plan": "1"}
    return None


def _profile(account: SimulatedAccount, *, with_id: bool) -> dict[str, str]:
    profile = {
        "username": account.username,
        "email": account.email,
        "active": "true" if account.active else "false",
        "first_name": account.first_name,
        "last_name": account.last_name,
    }
    if with_id:
        profile["id"] = str(account.id)
    return profile


def _unsigned(params: dict[str, str], name: str) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        raise SimulatedError(f"Missing required parameter: {name}")
    if not raw.isascii() or not raw.isdigit() or int(raw) > MAX_UNSIGNED:
        raise SimulatedError(f"{name} must be an unsigned integer")
    return int(raw)


def _date_param(params: dict[str, str], name: str) -> str | None:
    raw = params.get(name)
    if raw is None:
        return None
    try:
        return date.fromisoformat(raw).isoformat()
    except ValueError:
        raise SimulatedError(f"{name} must be in YYYY-mm-dd format") from None


def load_accounts(
    path: str | Path | None = None,
) -> tuple[list[SimulatedAccount], list[SimulatedAccount]]:
    """Subusers and customers from a JSON file (default: the bundled sample data)."""
    if path is None:
        text = resources.files("bot.simulator").joinpath("sample_data.json").read_text("utf-8")
    else:
        text = Path(path).read_text("utf-8")
    data = json.loads(text)
    subusers = [SimulatedAccount(**item) for item in data.get("subusers", [])]
    customers = [
        SimulatedAccount(id=index, **item)
        for index, item in enumerate(data.get("customers", []), start=1001)
    ]
    return subusers, customers


def generated_subusers(count: int, *, seed: int = 0) -> list[SimulatedAccount]:
    """`count` subusers in varied states, for load tests and benchmarks."""
    rng = random.Random(seed)
    accounts = []
    for index in range(count):
        allowance = rng.choice((0, 1_000, 10_000, 50_000))
        remain = rng.randint(0, max(allowance, 20_000))
        accounts.append(
            SimulatedAccount(
                username=f"sub-{index:06d}",
                email=f"ops+{index}@example.com",
                active=rng.random() > 0.05,
                unlimited=rng.random() < 0.05,
                credit=allowance,
                credit_remain=remain,
                period="monthly" if allowance else None,
            )
        )
    return accounts
