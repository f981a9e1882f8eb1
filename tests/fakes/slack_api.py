"""A fake Slack Web API on 127.0.0.1, in the style of bolt-python's mock server.

Serves `{url}/api/<method>` (GET query, form or JSON bodies) and records every
call; `{url}/response/<id>` stands in for a command's `response_url`. Scenarios
are chosen per test: `groups` maps user-group IDs to members, or to an error
code string (`"plan_upgrade_required"`) that `usergroups.users.list` returns.

File uploads follow Slack's three steps (what `files_upload_v2` does):
`files.getUploadURLExternal` (filename, length; needs `files:write`) answers a
`file_id` and an `upload_url` on this server; a POST of the bytes to that URL
answers `OK - <size>`; `files.completeUploadExternal` (`files` as a JSON array of
`{"id", "title"}`, `channel_id`) shares it: `not_in_channel` where the bot is not
a member, `channel_not_found` for a missing channel, `file_not_found` for an id
it never handed out or whose bytes never arrived. Uploaded files are kept in
`state.files` (id → `UploadedFile`).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

VALID_TOKEN_PREFIX = "xoxb-"
APP_TOKEN_PREFIX = "xapp-"
# What auth.test reports as granted (`x-oauth-scopes`): manifest.yml's bot scopes.
MANIFEST_SCOPES = (
    "commands",
    "chat:write",
    "chat:write.public",
    "usergroups:read",
    "channels:read",
    "groups:read",
    "files:write",
)


@dataclass(frozen=True)
class SlackCall:
    method: str
    payload: dict[str, Any]
    token: str | None
    result: dict[str, Any] = field(default_factory=dict)


@dataclass
class UploadedFile:
    """A file as the fake received it: what getUploadURLExternal was told, the bytes,
    and where completeUploadExternal shared it."""

    file_id: str
    filename: str
    length: int
    alt_txt: str | None = None
    data: bytes | None = None
    title: str | None = None
    channel_id: str | None = None
    completed: bool = False


@dataclass
class FakeSlackState:
    groups: dict[str, list[str] | str] = field(default_factory=dict)
    missing_channels: set[str] = field(default_factory=set)
    outside_channels: set[str] = field(default_factory=set)  # the bot is not a member
    private_channels: set[str] = field(default_factory=set)
    scopes: tuple[str, ...] = MANIFEST_SCOPES  # granted to the token (auth.test header)
    failing_responses: int = 0  # response_url posts to answer with HTTP 500 first
    # method → answers to give before the normal one: (HTTP status, body, headers)
    scripted: dict[str, list[tuple[int, dict[str, Any], dict[str, str]]]] = field(
        default_factory=dict
    )
    calls: list[SlackCall] = field(default_factory=list)
    responses: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, UploadedFile] = field(default_factory=dict)
    # Each response_url post's TCP connection (the client's address and port): how
    # many connections the bot opened to deliver its replies.
    response_connections: list[tuple[str, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    condition: threading.Condition = field(init=False)
    ts: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self.condition = threading.Condition(self.lock)

    def record(self, call: SlackCall | None = None, response: dict[str, Any] | None = None) -> None:
        with self.condition:
            if call is not None:
                self.calls.append(call)
            if response is not None:
                self.responses.append(response)
            self.condition.notify_all()

    def wait_for_responses(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        with self.condition:
            if not self.condition.wait_for(lambda: len(self.responses) >= count, timeout):
                raise AssertionError(
                    f"expected {count} response_url posts within {timeout} s, got "
                    f"{len(self.responses)}"
                )
            return list(self.responses)

    def calls_to(self, method: str) -> list[SlackCall]:
        with self.lock:
            return [c for c in self.calls if c.method == method]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # see bot/simulator/server.py
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if url.path.startswith("/upload/"):  # step 2: the bytes, to the URL of step 1
            self._upload(url.path.removeprefix("/upload/"), raw)
            return
        payload: dict[str, Any] = dict(parse_qsl(url.query))
        if raw:
            if "json" in (self.headers.get("Content-Type") or ""):
                payload.update(json.loads(raw))
            else:
                payload.update(parse_qsl(raw.decode()))
        state = self.server.state
        if url.path == "/_fake/responses":
            with state.lock:
                answer: dict[str, Any] = {"count": len(state.responses)}
                if "full" in url.query:
                    answer["responses"] = list(state.responses)
            self._send(200, json.dumps(answer), "application/json")
            return
        if url.path.startswith("/response/"):
            with state.lock:
                failing = state.failing_responses > 0
                state.failing_responses -= failing
            if failing:
                self._send(500, "internal_error", "text/plain")
                return
            with state.lock:
                state.response_connections.append(self.client_address[:2])
            state.record(response={**payload, "_path": url.path, "_received_at": time.time()})
            self._send(200, "ok", "text/plain")
            return
        if not url.path.startswith("/api/"):
            self._send(404, "not found", "text/plain")
            return
        method = url.path.removeprefix("/api/")
        auth = self.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else payload.get("token")
        with state.lock:
            queue = state.scripted.get(method)
            scripted = queue.pop(0) if queue else None
        if scripted is not None:
            status, body, headers = scripted
            state.record(call=SlackCall(method, payload, token, body))
            self._send(status, json.dumps(body), "application/json", headers)
            return
        # Socket Mode's apps.connections.open takes the app-level token (xapp-…).
        prefix = APP_TOKEN_PREFIX if method == "apps.connections.open" else VALID_TOKEN_PREFIX
        if not token or not token.startswith(prefix) or token.endswith("-invalid"):
            answer: dict[str, Any] = {"ok": False, "error": "invalid_auth"}
        else:
            answer = self._answer(method, payload)
        state.record(call=SlackCall(method, payload, token, answer))
        headers = {"x-oauth-scopes": ",".join(state.scopes)} if answer.get("ok") else {}
        self._send(200, json.dumps(answer), "application/json; charset=utf-8", headers)

    def _answer(self, method: str, payload: dict[str, Any]) -> dict[str, Any]:
        state = self.server.state
        if method == "auth.test":
            return {
                "ok": True,
                "url": "https://example.slack.com/",
                "team": "Example",
                "user": "credits-bot",
                "team_id": "T0EXAMPLE",
                "user_id": "UBOT",
                "bot_id": "BBOT",
            }
        if method == "apps.connections.open":
            return {"ok": True, "url": f"ws://127.0.0.1:{self.server.server_address[1]}/socket"}
        if method == "usergroups.users.list":
            members = state.groups.get(payload.get("usergroup", ""))
            if members is None:
                return {"ok": False, "error": "no_such_subteam"}
            if isinstance(members, str):
                return {"ok": False, "error": members}
            return {"ok": True, "users": members}
        if method == "files.getUploadURLExternal":
            return self._upload_url(payload)
        if method == "files.completeUploadExternal":
            return self._complete_upload(payload)
        if payload.get("channel") in state.missing_channels:
            return {"ok": False, "error": "channel_not_found"}
        if method == "conversations.info":
            channel = str(payload.get("channel"))
            private = channel in state.private_channels
            if private and channel in state.outside_channels:
                return {"ok": False, "error": "channel_not_found"}  # as Slack hides it
            return {
                "ok": True,
                "channel": {
                    "id": channel,
                    "name": f"channel-{channel.lower()}",
                    "is_private": private,
                    "is_member": channel not in state.outside_channels,
                },
            }
        if method == "chat.getPermalink":
            channel, ts = str(payload.get("channel")), str(payload.get("message_ts", ""))
            return {
                "ok": True,
                "channel": channel,
                "permalink": f"https://example.slack.com/archives/{channel}/p{ts.replace('.', '')}",
            }
        if method in ("chat.postMessage", "chat.update", "chat.postEphemeral"):
            return {
                "ok": True,
                "channel": payload.get("channel"),
                "ts": f"1700000000.{next(state.ts):06d}",
            }
        return {"ok": True}

    def _upload_url(self, payload: dict[str, Any]) -> dict[str, Any]:
        state = self.server.state
        if "files:write" not in state.scopes:
            return {"ok": False, "error": "missing_scope", "needed": "files:write"}
        filename, length = payload.get("filename"), str(payload.get("length") or "")
        if not filename or not length.isdigit():
            return {"ok": False, "error": "invalid_arguments"}
        with state.lock:
            file_id = f"F{next(state.ts):08d}"
            state.files[file_id] = UploadedFile(
                file_id, str(filename), int(length), alt_txt=payload.get("alt_txt")
            )
        port = self.server.server_address[1]
        return {
            "ok": True,
            "upload_url": f"http://127.0.0.1:{port}/upload/{file_id}",
            "file_id": file_id,
        }

    def _upload(self, file_id: str, data: bytes) -> None:
        state = self.server.state
        with state.lock:
            uploaded = state.files.get(file_id)
            if uploaded is not None:
                uploaded.data = data
        if uploaded is None:
            self._send(404, "not found", "text/plain")
            return
        self._send(200, f"OK - {len(data)}", "text/plain")

    def _complete_upload(self, payload: dict[str, Any]) -> dict[str, Any]:
        state = self.server.state
        try:
            files = json.loads(payload.get("files") or "[]")
        except json.JSONDecodeError:
            return {"ok": False, "error": "invalid_arguments"}
        channel = payload.get("channel_id")
        if channel in state.missing_channels:
            return {"ok": False, "error": "channel_not_found"}
        if channel in state.outside_channels:
            return {"ok": False, "error": "not_in_channel"}
        shared = []
        with state.lock:
            for entry in files:
                uploaded = state.files.get(str(entry.get("id")))
                if uploaded is None or uploaded.data is None or uploaded.completed:
                    return {"ok": False, "error": "file_not_found"}
            for entry in files:
                uploaded = state.files[str(entry["id"])]
                uploaded.title = entry.get("title") or uploaded.filename
                uploaded.channel_id = channel
                uploaded.completed = True
                shared.append({"id": uploaded.file_id, "title": uploaded.title})
        return {"ok": True, "files": shared}

    def _send(
        self, status: int, body: str, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128  # socketserver's default of 5 refuses connections under bursts

    def __init__(self, state: FakeSlackState) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state


class FakeSlack:
    """The fake Web API on a background thread."""

    def __init__(self, state: FakeSlackState | None = None) -> None:
        self.state = state or FakeSlackState()
        self._server = _Server(self.state)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def response_url(self, name: str = "cmd") -> str:
        return f"http://127.0.0.1:{self.port}/response/{name}"

    @contextmanager
    def running(self) -> Iterator[FakeSlack]:
        self._thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()


def main() -> None:
    """Run the fake on its own (benchmarks): prints its base URL, serves until killed.

    `GET /_fake/responses` answers with the number of response_url posts so far.
    """
    slack = FakeSlack()
    print(f"http://127.0.0.1:{slack.port}", flush=True)
    slack._server.serve_forever(poll_interval=0.05)


if __name__ == "__main__":
    main()
