"""The Bolt app: `create_app(services)` builds it, `register_listeners` routes it.

Slack needs an answer within 3 seconds. Every listener acks first and hands
the SendGrid work to a separate work pool; the reply goes back through
`respond()` (the command's `response_url`, valid for 30 minutes). Bolt's
listener executor therefore only ever runs acks, so a burst of slow commands —
SendGrid slow, or the client's rate limiter holding requests back — cannot
queue the acks of the next ones behind it.

Work starts as soon as its ack is sent. (An earlier version held it back, up
to 250 ms, while other requests were being acknowledged: that made acks look
faster by making every reply slower, and a person waits for the reply.)
"""

from __future__ import annotations

import contextvars
import heapq
import itertools
import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

from slack_bolt import Ack, App, BoltContext, Respond
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackRequestError
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_exponential_jitter

from bot.adapters.slack.web import ResponseUrls
from bot.commands import messages
from bot.commands.context import Actor
from bot.commands.form import FieldError, command_from_fields
from bot.commands.formatting import digest_note
from bot.commands.grammar import Command, parse_user
from bot.commands.home import SubuserNames
from bot.commands.registry import BY_VERB, USAGE, Verb, parse
from bot.commands.replies import ErrorReply, HistoryReply, Reply
from bot.commands.service import CommandService
from bot.errors import UserError
from bot.observability.context import ContextExecutor, current_request
from bot.observability.metrics import NO_METRICS, Metrics
from bot.services import Services
from bot.transports.slack.acks import AcksInFlight
from bot.transports.slack.alerts import (
    ADD_ACTION,
    ADD_REASON_BLOCK,
    ADD_VIEW,
    AMOUNT_BLOCK,
    SNOOZE_ACTION,
    add_credits_dialog,
    add_reason_from,
    amount_from,
    annotate_line,
    dialog_target,
)
from bot.transports.slack.approvals import (
    APPROVE_ACTION,
    DENY_ACTION,
    DENY_VIEW,
    REASON_BLOCK,
    deny_dialog,
    reason_from,
    request_id_from,
)
from bot.transports.slack.blocks import render_message
from bot.transports.slack.confirmations import (
    CANCEL_ACTION,
    CONFIRM_ACTION,
    confirmation_id_from,
)
from bot.transports.slack.history import post_history_chart
from bot.transports.slack.surfaces import (
    MESSAGE_SHORTCUT,
    OPEN_REQUEST_ACTION,
    REQUEST_SHORTCUT,
    REQUEST_VIEW,
    USER_SELECT,
    HomePublisher,
    field_errors,
    form_fields,
    message_link_reason,
    request_modal,
    subuser_options,
)

# Listeners only parse Slack's payload, ack and hand the rest to the work pool, in
# the thread that took the request (`process_before_response`): gunicorn's 32
# request threads (`serve`), the Socket Mode client's own. Work threads wait on
# SendGrid (up to its timeout, plus the rate limiter). Sized for a burst of
# 50 commands in flight at once, with room: at 48, two commands of every burst
# of 50 waited a whole SendGrid call for a thread (their replies + 500 ms).
LISTENER_WORKERS = 32
WORK_WORKERS = 64
# Every thread of a `serve` or `socket` process that may hold a database connection at
# once: the work pool, the threads listeners run in, and the upkeep timer.
DATABASE_THREADS = WORK_WORKERS + LISTENER_WORKERS + 1
# A /credits answer that takes longer than this is announced first ("Looking up …").
FEEDBACK_AFTER = 1.0
# The commands whose answer waits on SendGrid.
SENDGRID_VERBS = frozenset(
    {
        Verb.SHOW,
        Verb.OVERVIEW,
        Verb.ADD,
        Verb.REMOVE,
        Verb.SET,
        Verb.RECURRING,
        Verb.UNLIMIT,
        Verb.APPROVE,
    }
)

T = TypeVar("T")

# Set by the WSGI layer in Bolt's context: the request's `ReplayClaim`, decided when
# its work starts. (No claim, as in Socket Mode: Slack's own connection, checked.)
REPLAY_CLAIM = "credits_replay_claim"
# A header of this name is dropped at the edge: the mark never comes from outside.
REPLAY_CHECKED = "credits_replay_checked"


class Claim(Protocol):
    def claim(self) -> bool | None: ...


class _Replayed(Exception):
    """The request turned out to be a replay: its reply must not leave."""


class _ReplyGate:
    """The replay claim of a task that ran before it was decided: every reply the task
    posts waits here for the decision, and a replay's never leaves."""

    def __init__(self, decision: Future[bool | None], what: str) -> None:
        self._decision = decision
        self._what = what
        self._warned = False

    def wait(self) -> None:
        first = self._decision.result()
        if first is False:
            raise _Replayed(self._what)
        if first is None and not self._warned:
            self._warned = True
            logger.warning("replay not checked, the database failed: %s", self._what)


_reply_gate: contextvars.ContextVar[_ReplyGate | None] = contextvars.ContextVar(
    "credits_reply_gate", default=None
)


def replay_claim(context: BoltContext) -> Claim | None:
    claim: Claim | None = context.get(REPLAY_CLAIM)
    return claim


logger = logging.getLogger("bot.slack")


class _TokenFromEnvironmentWarning(logging.Filter):
    """Drops Bolt's "As you gave `client` as well, `token` will be unused." warning.

    Bolt reads SLACK_BOT_TOKEN from the environment itself whenever `token` is
    not passed, then warns that the `client` we give it (built from that same
    token, with our base URL and retries) wins. Nothing is wrong, so nothing is
    said; every other Bolt message passes.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != warning_client_prioritized_and_token_skipped()


def create_app(
    services: Services,
    *,
    work: PostAckWork | None = None,
    socket_mode: bool = False,
    verified_upstream: bool = False,
    listener_workers: int = LISTENER_WORKERS,
) -> App:
    """The Bolt app over `services`: it registers the listeners and starts nothing.

    HTTP mode needs SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET; Socket Mode needs
    SLACK_BOT_TOKEN (and SLACK_APP_TOKEN, checked by the socket runner).
    `verified_upstream`: the WSGI app checks every signature, so Bolt does not.
    `work`: the pool that runs what follows each ack (give one to drain it at a stop).
    """
    settings = services.settings
    settings.require("SLACK_BOT_TOKEN")
    if not socket_mode:
        settings.require("SLACK_SIGNING_SECRET")
    assert services.web_client is not None  # built whenever there is a bot token
    signing_secret = settings.slack_signing_secret
    if not any(isinstance(f, _TokenFromEnvironmentWarning) for f in logger.filters):
        logger.addFilter(_TokenFromEnvironmentWarning())
    app = App(
        client=services.web_client,
        signing_secret=signing_secret.reveal() if signing_secret else "",
        request_verification_enabled=not (socket_mode or verified_upstream),
        # Every listener acks and hands its work to the pool at once, so it runs in the
        # request's own thread: Bolt's other mode hands each request to a listener
        # thread and polls for its ack every 10 ms (a burst's ack p50 69 → 49 ms in one
        # run of bench/ack_latency).
        process_before_response=True,
        listener_executor=ContextExecutor(
            max_workers=listener_workers, thread_name_prefix="bolt-listener"
        ),
        logger=logger,
    )
    home = HomePublisher(client=services.web_client, home=services.home)
    register_listeners(
        app,
        services.commands,
        work or post_ack_work(services.metrics),
        home=home,
        names=SubuserNames(services.home.alerts),
    )
    return app


def post_ack_work(metrics: Metrics = NO_METRICS, *, workers: int = WORK_WORKERS) -> PostAckWork:
    """The pool for work after acks (its threads start with the first task)."""
    return PostAckWork(
        ContextExecutor(max_workers=workers, thread_name_prefix="credits-work"),
        metrics,
        threads=workers,
    )


class PostAckWork:
    """The pool that runs what follows an ack, and counts it until it is done."""

    def __init__(
        self,
        pool: Executor,
        metrics: Metrics = NO_METRICS,
        replies: ResponseUrls | None = None,
        *,
        threads: int | None = None,
        acks: AcksInFlight | None = None,
    ) -> None:
        self.threads = threads  # how many tasks run at once (None: the pool's own)
        # The acks this process is making (counted by the WSGI app): a task starts
        # once they are done, briefly (bot/transports/slack/acks.py).
        self.acks = acks or AcksInFlight()
        self._pool = pool
        self._in_flight = 0
        self._idle = threading.Condition()
        self._metrics = metrics
        self._replies = replies or ResponseUrls()
        # Decides the claims of tasks that run early: one thread, as `SeenRequests`
        # records every claim in line in one transaction anyway.
        self._claims = ThreadPoolExecutor(max_workers=1, thread_name_prefix="replay-claims")

    def reply_to(self, respond: Respond) -> Callable[..., Any]:
        """Bolt's `respond`, posting through this process's pooled connections. In a
        task that runs before its replay claim is decided (`submit(early=True)`),
        each reply first waits for the decision (from any thread, e.g. a timer's)."""
        url = respond.response_url
        gate = _reply_gate.get()
        replies = self._replies

        def post(**message: Any) -> Any:
            if gate is not None:
                gate.wait()
            if url is None:
                return respond(**message)
            return replies.post(url, message)

        return post

    def close(self) -> None:
        """Close the pooled reply connections (the pool's threads end with the process)."""
        self._replies.close()
        self._claims.shutdown(wait=False)

    def submit(
        self,
        task: Callable[[bool], object],
        what: str,
        claim: Claim | None = None,
        *,
        answers: bool = True,
        early: bool = False,
    ) -> None:
        """Run `task(replay_checked)` now, in the pool; a failure to deliver the answer
        is logged, never lost silently.

        With a `claim`, the request is first recorded as seen: a replay runs nothing;
        if the database cannot say, `task` runs with `replay_checked=False` (it may
        answer reads, and refuses changes). `early=True`, for a task whose only effect
        is its reply (a read): it runs at once while the claim is recorded beside it,
        and its replies (through `reply_to`) wait for the decision; a replay's reply
        never leaves. `answers=False`: housekeeping that follows an answer (a Home
        redraw), not counted or logged as a reply."""
        with self._idle:
            self._in_flight += 1
        self._pool.submit(self._run, task, what, claim, answers, early)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no task is queued or running (True), or `timeout` seconds (False)."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    def _run(
        self,
        task: Callable[[bool], object],
        what: str,
        claim: Claim | None,
        answers: bool,
        early: bool,
    ) -> None:
        token = None
        self.acks.wait_for_quiet()
        try:
            if claim is not None and early:
                gate = _ReplyGate(self._claims.submit(claim.claim), what)
                token = _reply_gate.set(gate)
                first: bool | None = True  # for a read, moot: its replies wait at the gate
            else:
                first = claim.claim() if claim is not None else True
                if first is False:
                    logger.warning("refused a replayed request: %s", what)
                    return
                if first is None:
                    logger.warning("replay not checked, the database failed: %s", what)
            try:
                task(first is True)
            except _Replayed:
                logger.warning("refused a replayed request: %s", what)
                return
            except (SlackApiError, SlackRequestError, OSError, _ReplyNotTaken):
                logger.exception("could not deliver the answer to %s", what)
                return
            request = current_request()  # the Slack request this answers (copied context)
            if request is not None and answers:
                self._metrics.replied(request.elapsed())
                logger.info("answered %s in %.0f ms", what, request.elapsed() * 1000)
        finally:
            if token is not None:
                _reply_gate.reset(token)
            with self._idle:
                self._in_flight -= 1
                if not self._in_flight:
                    self._idle.notify_all()


class _ReplyNotTaken(Exception):
    """The response_url answered 429 or 5xx."""


def deliver(respond: Respond | Callable[..., Any], **message: Any) -> None:
    """Post a reply to the response_url, retrying transport failures, 429 and 5xx.

    Only the delivery is retried, never the command: a reply posted twice is better
    than one lost, and the change behind it has already been made (or not) once.
    `respond` is Bolt's, or (in the work pool) `PostAckWork.reply_to(respond)`, which
    posts through the process's pooled connections.
    """
    for attempt in Retrying(
        stop=stop_after_attempt(4),
        wait=wait_exponential_jitter(multiplier=0.2, max=2.0, jitter=0.2),
        retry=retry_if_exception_type((SlackRequestError, OSError, _ReplyNotTaken)),
        reraise=True,
    ):
        with attempt:
            response = respond(**message)
            if response.status_code == 429 or response.status_code >= 500:
                raise _ReplyNotTaken(f"response_url answered {response.status_code}")


def credits_command(
    service: CommandService,
    work: PostAckWork,
    client: WebClient | None = None,
    *,
    home: HomePublisher | None = None,
    feedback_after: float = FEEDBACK_AFTER,
) -> Any:
    """`/credits …`: ack at once, then run the command and answer via response_url. A
    command that waits on SendGrid for more than `feedback_after` seconds first says
    "Looking up USER…", then replaces that with the answer; a fast one posts once.
    `history` also uploads its chart to the channel the command was typed in."""

    def handle_credits(
        ack: Ack, command: dict[str, Any], respond: Respond, context: BoltContext
    ) -> None:
        ack()
        actor = Actor(user_id=command["user_id"])
        text = command.get("text") or ""
        parsed = _parsed(text)

        def answer(checked: bool) -> None:
            reply_to = work.reply_to(respond)
            slow = parsed is not None and parsed.verb in SENDGRID_VERBS
            with SlowFeedback(reply_to, parsed, after=feedback_after if slow else None) as shown:
                reply = service.handle(actor, text, replay_checked=checked)
            if isinstance(reply, HistoryReply) and client is not None:
                reply = post_history_chart(client, reply, channel_id=command.get("channel_id"))
            deliver(
                reply_to,
                response_type="ephemeral",
                replace_original=shown.posted,
                **render_message(reply),
            )
            if home is not None and parsed is not None and _changed(parsed, reply):
                work.submit(lambda _c: home.refresh_recent(), "a Home refresh", answers=False)

        # A read (or a usage error) only replies: it runs while its replay is decided.
        early = parsed is None or BY_VERB[parsed.verb].only_replies
        work.submit(answer, f"/credits from {actor.user_id}", replay_claim(context), early=early)

    return handle_credits


def _parsed(text: str) -> Command | None:
    try:
        return parse(text)
    except UserError:
        return None


def _changed(command: Command, reply: Reply) -> bool:
    """Worth redrawing Homes: a change or a decision that was not refused."""
    return not isinstance(reply, ErrorReply) and (
        command.change is not None or command.request_id is not None
    )


class SlowFeedback:
    """Posts "Looking up USER…" to the response_url if the block it guards runs longer
    than `after` seconds (None: never). `posted` says whether it did, so the answer
    replaces it. The answer is never overtaken: it waits while the notice is posted."""

    def __init__(
        self, respond: Callable[..., Any], command: Command | None, *, after: float | None
    ) -> None:
        self._respond = respond
        self._after = after
        user = command.user if command is not None else None
        self._text = messages.LOOKING_UP.format(user=user) if user else messages.LOOKING
        self._lock = threading.Lock()
        self._done = False
        self.posted = False

    def __enter__(self) -> SlowFeedback:
        if self._after is not None:
            _NOTICES.call_later(self._after, self._notice, wanted=lambda: not self._done)
        return self

    def _notice(self) -> None:
        with self._lock:
            if self._done:
                return
            try:
                deliver(self._respond, response_type="ephemeral", text=self._text)
            except _Replayed:
                return  # its work logs the replay
            except (SlackApiError, SlackRequestError, OSError, _ReplyNotTaken):
                logger.warning("the 'looking up' notice was not delivered")
                return
            self.posted = True

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._done = True  # a notice not yet posted never will be


class _Deadlines:
    """One thread for every command's "Looking up…" deadline (a `threading.Timer`
    each started a thread per command). A deadline that passes runs its callback on
    a thread of its own if it is still `wanted` (few are: only commands still waiting
    on SendGrid); the callback itself checks again under its own lock."""

    def __init__(self) -> None:
        self._due: list[tuple[float, int, Callable[[], None], Callable[[], bool]]] = []
        self._order = itertools.count()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def call_later(
        self, seconds: float, callback: Callable[[], None], *, wanted: Callable[[], bool]
    ) -> None:
        with self._changed:
            due = (time.monotonic() + seconds, next(self._order), callback, wanted)
            heapq.heappush(self._due, due)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="credits-deadlines", daemon=True
                )
                self._thread.start()
            self._changed.notify()

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._due or self._due[0][0] > time.monotonic():
                    timeout = self._due[0][0] - time.monotonic() if self._due else None
                    self._changed.wait(timeout)
                _, _, callback, wanted = heapq.heappop(self._due)
            if wanted():
                threading.Thread(target=callback, name="credits-notice", daemon=True).start()


_NOTICES = _Deadlines()


def button_answered_to_clicker(
    work: PostAckWork,
    *,
    parse: Callable[[str], T],
    act: Callable[[Actor, T, bool], Reply],
    what: str,
    replace_original: bool = False,
    client: WebClient | None = None,
    home: HomePublisher | None = None,
) -> Any:
    """A button whose click is answered ephemerally to the clicker: ack, then in the
    work pool parse the button's value (a bad one is refused), act (told whether the
    click's replay was checked), and respond."""

    def handle_click(
        ack: Ack,
        body: dict[str, Any],
        action: dict[str, Any],
        respond: Respond | None,
        context: BoltContext,
    ) -> None:
        ack()
        actor = Actor(user_id=body["user"]["id"])

        def answer(checked: bool) -> None:
            try:
                value = parse(str(action.get("value") or ""))
            except UserError as error:
                reply: Reply = ErrorReply(str(error))
            else:
                reply = act(actor, value, checked)
            if respond is None or _from_home(body):  # the Home has no response_url
                _direct_message(client, actor, reply)
            else:
                deliver(
                    work.reply_to(respond),
                    response_type="ephemeral",
                    replace_original=replace_original,
                    **render_message(reply),
                )
            if home is not None and not isinstance(reply, ErrorReply):
                work.submit(lambda _c: home.refresh_recent(), "a Home refresh", answers=False)

        work.submit(answer, f"{what} by {actor.user_id}", replay_claim(context))

    return handle_click


def _from_home(body: dict[str, Any]) -> bool:
    return (body.get("container") or {}).get("type") == "view" or not body.get("response_url")


def _direct_message(client: WebClient | None, actor: Actor, reply: Reply) -> None:
    if client is not None:
        client.chat_postMessage(channel=actor.user_id, **render_message(reply))


def approve_button(
    service: CommandService,
    work: PostAckWork,
    client: WebClient | None = None,
    home: HomePublisher | None = None,
) -> Any:
    """Approve (after the confirm dialog): execute once, tell the clicker how it went
    (ephemerally under the card; by DM when clicked in the App Home)."""
    return button_answered_to_clicker(
        work,
        parse=request_id_from,
        act=lambda actor, request_id, checked: service.approve(
            actor, request_id, replay_checked=checked
        ),
        what="an Approve click",
        client=client,
        home=home,
    )


def deny_button(service: CommandService, work: PostAckWork, client: WebClient) -> Any:
    """Deny: check the clicker may decide, then ask for an optional reason in a dialog."""

    def handle_deny(
        ack: Ack,
        body: dict[str, Any],
        action: dict[str, Any],
        respond: Respond | None,
        context: BoltContext,
    ) -> None:
        ack()
        actor = Actor(user_id=body["user"]["id"])
        trigger_id = body.get("trigger_id")

        def answer(_checked: bool) -> None:
            try:
                request_id = request_id_from(action.get("value"))
            except UserError as error:
                refusal: ErrorReply | None = ErrorReply(str(error))
            else:
                refusal = service.refusal_to_decide(actor, request_id)
            if refusal is not None:
                if respond is None or _from_home(body):
                    _direct_message(client, actor, refusal)
                    return
                deliver(
                    work.reply_to(respond),
                    response_type="ephemeral",
                    replace_original=False,
                    **render_message(refusal),
                )
                return
            client.views_open(trigger_id=trigger_id, view=deny_dialog(request_id))

        work.submit(answer, f"a Deny click by {actor.user_id}", replay_claim(context))

    return handle_deny


def deny_dialog_submitted(
    service: CommandService,
    work: PostAckWork,
    client: WebClient,
    home: HomePublisher | None = None,
) -> Any:
    """The Deny dialog's submit: refusals show in the dialog; the denial follows the ack."""

    def handle_deny_submission(
        ack: Ack, body: dict[str, Any], view: dict[str, Any], context: BoltContext
    ) -> None:
        actor = Actor(user_id=body["user"]["id"])
        try:
            request_id = request_id_from(view.get("private_metadata"))
        except UserError as error:
            ack(response_action="errors", errors={REASON_BLOCK: str(error)})
            return
        refusal = service.refusal_to_decide(actor, request_id)
        if refusal is not None:
            ack(response_action="errors", errors={REASON_BLOCK: refusal.message[:150]})
            return
        ack()
        reason = reason_from(view)

        def answer(checked: bool) -> None:
            reply = service.deny(actor, request_id, reason, replay_checked=checked)
            if isinstance(reply, ErrorReply):  # lost a race after the dialog was checked
                client.chat_postMessage(channel=actor.user_id, **render_message(reply))
            elif home is not None:
                work.submit(lambda _c: home.refresh_recent(), "a Home refresh", answers=False)

        work.submit(answer, f"a denial by {actor.user_id}", replay_claim(context))

    return handle_deny_submission


def confirm_button(service: CommandService, work: PostAckWork, *, confirm: bool) -> Any:
    """Confirm / Cancel on a held change: run it once (author only); the answer replaces
    the prompt, so its buttons go away."""
    return button_answered_to_clicker(
        work,
        parse=confirmation_id_from,
        act=lambda actor, confirmation_id, checked: service.confirm(
            actor, confirmation_id, confirm=confirm, replay_checked=checked
        ),
        what="a Confirm click" if confirm else "a Cancel click",
        replace_original=True,
    )


def snooze_button(service: CommandService, work: PostAckWork, client: WebClient) -> Any:
    """A digest's "Snooze 24 h": silence that subuser's alerts, tell the clicker, and
    say on the digest line who snoozed it until when."""

    def handle_snooze(
        ack: Ack,
        body: dict[str, Any],
        action: dict[str, Any],
        respond: Respond,
        context: BoltContext,
    ) -> None:
        ack()
        actor = Actor(user_id=body["user"]["id"])

        def answer(checked: bool) -> None:
            try:
                user = parse_user(str(action.get("value") or ""), USAGE[Verb.SHOW])
            except UserError as error:
                reply: Reply = ErrorReply(str(error))
            else:
                reply = service.snooze(actor, user, replay_checked=checked)
                note = digest_note(reply, actor.user_id)
                digest = _digest_of(body)
                if note and digest:
                    edit_digest_line(service, client, digest, user, note, seen=body["message"])
            deliver(
                work.reply_to(respond),
                response_type="ephemeral",
                replace_original=False,
                **render_message(reply),
            )

        work.submit(answer, f"a Snooze click by {actor.user_id}", replay_claim(context))

    return handle_snooze


def _digest_of(body: dict[str, Any]) -> tuple[str, str] | None:
    """The (channel, ts) of the message whose button was clicked, if it came with it."""
    container = body.get("container") or {}
    channel, ts = container.get("channel_id"), container.get("message_ts")
    if channel and ts and isinstance(body.get("message"), dict):
        return str(channel), str(ts)
    return None


def edit_digest_line(
    service: CommandService,
    client: WebClient,
    digest: tuple[str, str],
    user: str,
    note: str,
    *,
    seen: dict[str, Any] | None = None,
) -> None:
    """Edit one line of a digest, building on the last edit (kept in the database, the
    row locked while editing), then show it with chat.update. Failures are logged only:
    the action itself has been done."""
    channel, ts = digest

    def edit(raw: str) -> str:
        return json.dumps(annotate_line(json.loads(raw), user, note))

    snapshot = {"text": (seen or {}).get("text", ""), "blocks": (seen or {}).get("blocks", [])}
    edited = service.edit_digest(channel, ts, seen=json.dumps(snapshot), edit=edit)
    if edited is None:
        return
    message = json.loads(edited)
    if not message.get("blocks"):
        return  # nothing known of that message (the click that opened the dialog was lost)
    try:
        client.chat_update(channel=channel, ts=ts, text=message["text"], blocks=message["blocks"])
    except (SlackApiError, SlackRequestError, OSError) as error:
        logger.warning("digest %s/%s not edited: %r", channel, ts, error)


def add_credits_button(service: CommandService, work: PostAckWork, client: WebClient) -> Any:
    """A digest's "Add credits": ask how many in a dialog (which then runs `add`), saying
    first if someone topped this account up a moment ago."""

    def handle_add(
        ack: Ack,
        body: dict[str, Any],
        action: dict[str, Any],
        respond: Respond,
        context: BoltContext,
    ) -> None:
        ack()
        trigger_id = body.get("trigger_id")
        try:
            user = parse_user(str(action.get("value") or ""), USAGE[Verb.ADD])
        except UserError as error:
            message = render_message(ErrorReply(str(error)))
            work.submit(
                lambda _checked: deliver(
                    work.reply_to(respond),
                    response_type="ephemeral",
                    replace_original=False,
                    **message,
                ),
                "an Add credits click",
                replay_claim(context),
            )
            return
        digest = _digest_of(body)

        def open_dialog() -> None:
            recent = service.recent_top_up(user)
            client.views_open(
                trigger_id=trigger_id,
                view=add_credits_dialog(user, digest=digest, recent=recent),
            )
            if digest is not None:  # keep the message, to edit its line after the add
                service.edit_digest(
                    *digest,
                    seen=json.dumps(
                        {
                            "text": body["message"].get("text", ""),
                            "blocks": body["message"]["blocks"],
                        }
                    ),
                    edit=lambda raw: raw,
                )

        # The dialog must open within 3 s of the click (its trigger_id expires).
        work.submit(lambda _checked: open_dialog(), "an Add credits dialog", replay_claim(context))

    return handle_add


def add_credits_submitted(
    service: CommandService,
    work: PostAckWork,
    client: WebClient,
    home: HomePublisher | None = None,
) -> Any:
    """The Add credits dialog: a bad amount or reason is shown in the dialog; the rest is
    the `add` it describes (built field by field, as the request form's), under the same
    roles and approval rules as the slash command; the answer comes as a DM."""

    def handle_add_submission(
        ack: Ack, body: dict[str, Any], view: dict[str, Any], context: BoltContext
    ) -> None:
        actor = Actor(user_id=body["user"]["id"])
        raw_user, digest = dialog_target(str(view.get("private_metadata") or ""))
        reason = add_reason_from(view)
        try:
            command = command_from_fields(
                action=Verb.ADD.value, user=raw_user, amount=amount_from(view), reason=reason
            )
        except FieldError as error:
            block = ADD_REASON_BLOCK if error.field == "reason" else AMOUNT_BLOCK
            ack(response_action="errors", errors={block: str(error)[:150]})
            return
        ack()
        user = command.user
        assert user is not None

        def answer(checked: bool) -> None:
            reply = service.handle_command(actor, command, replay_checked=checked)
            note = digest_note(reply, actor.user_id)
            if note and digest:
                edit_digest_line(service, client, digest, user, note)
            client.chat_postMessage(channel=actor.user_id, **render_message(reply))
            if home is not None and not isinstance(reply, ErrorReply):
                work.submit(lambda _c: home.refresh_recent(), "a Home refresh", answers=False)

        work.submit(answer, f"Add credits by {actor.user_id}", replay_claim(context))

    return handle_add_submission


def app_home_opened(home: HomePublisher, work: PostAckWork) -> Any:
    """The Home tab opened: draw it for that viewer from stored state (no SendGrid)."""

    def handle_home(event: dict[str, Any], context: BoltContext) -> None:
        if event.get("tab", "home") != "home" or not event.get("user"):
            return
        user_id = str(event["user"])
        work.submit(lambda _c: home.opened(user_id), f"the Home of {user_id}")

    return handle_home


def open_request_modal(work: PostAckWork, client: WebClient) -> Any:
    """The global shortcut, and the Home's "New request…" button: open the empty form.
    (`views.open` must follow within 3 s of the trigger.)"""

    def handle_open(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        trigger_id = body.get("trigger_id")
        work.submit(
            lambda _c: client.views_open(trigger_id=trigger_id, view=request_modal()),
            "a request form",
        )

    return handle_open


def open_request_modal_from_message(work: PostAckWork, client: WebClient) -> Any:
    """The message shortcut: the form, its reason pre-filled with a link to the message
    (`chat.getPermalink`; without it when Slack does not give one)."""

    def handle_open(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        trigger_id = body.get("trigger_id")
        channel = (body.get("channel") or {}).get("id")
        ts = (body.get("message") or {}).get("ts") or body.get("message_ts")

        def open_form(_checked: bool) -> None:
            permalink = None
            if channel and ts:
                try:
                    permalink = client.chat_getPermalink(channel=channel, message_ts=ts).get(
                        "permalink"
                    )
                except (SlackApiError, SlackRequestError, OSError) as error:
                    logger.warning("no permalink for the request form: %r", error)
            client.views_open(
                trigger_id=trigger_id,
                view=request_modal(reason=message_link_reason(permalink)),
            )

        work.submit(open_form, "a request form from a message")

    return handle_open


def suggest_subusers(service: CommandService, names: SubuserNames) -> Any:
    """The form's type-ahead: subusers the sweep read, prefix matches first, ≤ 100; only
    for people with a role (anyone else is offered nothing)."""

    def handle_suggestion(ack: Ack, body: dict[str, Any]) -> None:
        if not service.may_see(Actor(user_id=(body.get("user") or {}).get("id", ""))):
            ack(options=[])
            return
        ack(options=subuser_options(names.suggest(str(body.get("value") or ""))))

    return handle_suggestion


def request_submitted(
    service: CommandService,
    work: PostAckWork,
    client: WebClient,
    home: HomePublisher | None = None,
) -> Any:
    """The form's submit: a bad field or a refusal (role, ceiling, reason) shows beside
    the field and the form stays open; otherwise the change goes through the command
    service as the slash command's would, and the answer comes as a DM."""

    def handle_submission(
        ack: Ack, body: dict[str, Any], view: dict[str, Any], context: BoltContext
    ) -> None:
        actor = Actor(user_id=body["user"]["id"])
        fields = form_fields(view)
        try:
            command = command_from_fields(**fields)
        except FieldError as error:
            ack(response_action="errors", errors=field_errors(error.field, str(error)))
            return
        refusal = service.refusal_to_change(actor, command)
        if refusal is not None:
            ack(response_action="errors", errors=field_errors("action", refusal.message))
            return
        ack()

        def answer(checked: bool) -> None:
            reply = service.handle_command(actor, command, replay_checked=checked)
            client.chat_postMessage(channel=actor.user_id, **render_message(reply))
            if home is not None and not isinstance(reply, ErrorReply):
                work.submit(lambda _c: home.refresh_recent(), "a Home refresh", answers=False)

        work.submit(answer, f"a request form from {actor.user_id}", replay_claim(context))

    return handle_submission


def register_listeners(
    app: App,
    service: CommandService,
    work: PostAckWork,
    client: WebClient | None = None,
    *,
    home: HomePublisher | None = None,
    names: SubuserNames | None = None,
) -> None:
    """Every command, action and event this app answers."""
    client = client or app.client
    app.command("/credits")(credits_command(service, work, client, home=home))
    app.action(APPROVE_ACTION)(approve_button(service, work, client, home))
    app.action(DENY_ACTION)(deny_button(service, work, client))
    app.view(DENY_VIEW)(deny_dialog_submitted(service, work, client, home))
    app.action(CONFIRM_ACTION)(confirm_button(service, work, confirm=True))
    app.action(CANCEL_ACTION)(confirm_button(service, work, confirm=False))
    app.action(SNOOZE_ACTION)(snooze_button(service, work, client))
    app.action(ADD_ACTION)(add_credits_button(service, work, client))
    app.view(ADD_VIEW)(add_credits_submitted(service, work, client, home))
    if home is not None:
        app.event("app_home_opened")(app_home_opened(home, work))
    app.shortcut(REQUEST_SHORTCUT)(open_request_modal(work, client))
    app.action(OPEN_REQUEST_ACTION)(open_request_modal(work, client))
    app.shortcut(MESSAGE_SHORTCUT)(open_request_modal_from_message(work, client))
    app.options(USER_SELECT)(suggest_subusers(service, names or SubuserNames(None)))
    app.view(REQUEST_VIEW)(request_submitted(service, work, client, home))
