"""An HTTP server that answers like SendGrid's v2 Web API, for the console, tests and demos.

Serves `POST|GET /apiv2/{customer.limit,customer.profile,reseller.manage,
reseller.account}.{json,xml}` with SendGrid's real-traffic quirks: errors with
HTTP 200, array-wrapped `retrieve`, `[]` for unlimited, numbers as strings,
the last duplicate parameter wins (as PHP parses them).

Faults are chosen per request, like slack-sdk's test server picks scenarios by
token: append them to the API key (`secret~latency:500`, `secret~slow-write:2000`)
or add `FaultRule`s to the state (in-process, or `POST /_sim/faults` with JSON).
`GET /_sim/calls` returns the call log; `DELETE /_sim/faults` clears rules.
"""

from __future__ import annotations

import contextlib
import html
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote_plus, urlsplit
from xml.etree import ElementTree as ET

from bot.simulator.state import (
    CallRecord,
    FaultRule,
    SimulatedError,
    SimulatorState,
    parse_key_faults,
    v3_params,
)

logger = logging.getLogger(__name__)

MODULES = ("customer.limit", "customer.profile", "reseller.manage", "reseller.account")
_ERROR_SHAPES: dict[str, Any] = {
    "1": {"message": "error", "errors": ["Internal error, please try again"]},
    "2": {"error": {"code": 500, "message": "Internal error, please try again"}},
    "3": {"error": "Internal error, please try again"},
}
_MAX_BODY = 64 * 1024
_PHRASES = {s.value: s.phrase for s in HTTPStatus}


class SimulatorHandler(BaseHTTPRequestHandler):
    """One request. The state lives on the server (`self.server.state`)."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out as separate writes; with Nagle's algorithm on, the
    # second waits for the client's delayed ACK (~40 ms on Linux) on every call.
    disable_nagle_algorithm = True
    server: SimulatorHTTPServer
    _api_key_seen = ""

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("simulator %s - " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    # --- routing ---------------------------------------------------------------------

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        body = self._read_body()
        if body is None:
            return
        if url.path.startswith("/_sim/"):
            self._control(url.path, body)
            return
        if url.path.startswith("/v3/"):
            self._v3(url.path, dict(parse_qsl(url.query)), body)
            return
        route = _route(url.path)
        if route is None or self.command == "DELETE":
            self._send(404, b'{"error":"not found"}', "application/json")
            return
        module, fmt = route
        params: dict[str, str] = dict(parse_qsl(url.query, keep_blank_values=True))
        if self.command == "POST":
            params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        self._api(module, fmt, params)

    def _read_body(self) -> bytes | None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_BODY:
            self._send(413, b'{"error":"request too large"}', "application/json")
            return None
        return self.rfile.read(length) if length else b""

    # --- the API ---------------------------------------------------------------------

    def _api(self, module: str, fmt: str, params: dict[str, str]) -> None:
        state = self.server.state
        key = params.get("api_key", "")
        self._api_key_seen = key
        password, _, fault_spec = key.partition("~")
        if params.get("api_user") != state.api_user or password != state.api_key:
            self._record(module, fmt, params, 200, "unauthorized", applied=False)
            error = {"error": {"code": 401, "message": "Permission denied, wrong credentials"}}
            self._reply(fmt, 200, error)
            return

        def refuse(status: int, messages: tuple[str, ...]) -> int:
            self._reply(fmt, 200, {"message": "error", "errors": list(messages)})
            return 200  # v2 reports errors with HTTP 200

        self._serve(
            module=module,
            fmt=fmt,
            params=params,
            fault_spec=fault_spec,
            handle=lambda: state.handle(module, params),
            ok=lambda result: self._reply(fmt, 200, result, root=_xml_root(module, params)),
            refuse=refuse,
            refusal_status=200,
        )

    def _v3(self, path: str, query: dict[str, str], raw: bytes) -> None:
        """SendGrid v3: Bearer API key, JSON, errors as `{"errors":[…]}` with HTTP status."""
        state = self.server.state
        module = "v3." + ".".join(p for p in path.strip("/").split("/")[1:2])
        try:
            body = json.loads(raw) if raw else {}
            params = v3_params(self.command, path, query, body if isinstance(body, dict) else {})
        except (ValueError, SimulatedError) as exc:
            self._v3_error(400, str(exc))
            return
        if params is None:
            self._v3_error(404, "not found")
            return
        auth = self.headers.get("Authorization", "")
        key = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else ""
        password, _, fault_spec = key.partition("~")
        self._api_key_seen = key
        if password != state.api_key:
            self._record(module, "json", params, 401, "unauthorized", applied=False)
            self._v3_error(401, "authorization required")
            return

        def refuse(status: int, messages: tuple[str, ...]) -> int:
            self._v3_error(status, "; ".join(messages))
            return status

        self._serve(
            module=module,
            fmt="json",
            params=params,
            fault_spec=fault_spec,
            handle=lambda: state.handle_v3(params),
            ok=lambda result: self._send(
                200, json.dumps(result).encode(), "application/json", headers=self._limits()
            ),
            refuse=refuse,
        )

    def _serve(
        self,
        *,
        module: str,
        fmt: str,
        params: dict[str, str],
        fault_spec: str,
        handle: Callable[[], tuple[Any, bool]],
        ok: Callable[[Any], None],
        refuse: Callable[[int, tuple[str, ...]], int],
        refusal_status: int | None = None,
    ) -> None:
        """What every authenticated call goes through, v2 or v3: faults, the rate limit,
        the call itself and the call log. `ok` and `refuse` answer in the version's shape;
        a refusal is answered with `refusal_status` (v2: 200) or the error's own status."""
        state = self.server.state
        try:
            faults = parse_key_faults(fault_spec) + state.faults_for(module, params)
        except ValueError as exc:
            refuse(400, (str(exc),))
            return
        if state.limit is not None:
            wait = state.limit.check(state.api_user)
            if wait is not None:
                self._record(module, fmt, params, 429, "rate-limited", applied=False)
                self._rate_limited(wait)
                return
        for fault in faults:
            if fault.kind == "latency":
                time.sleep(float(fault.arg or 500) / 1000)
            elif fault.kind != "slow-write":
                self._record(module, fmt, params, 0, f"fault:{fault.kind}", applied=False)
                self._inject(fault, fmt)
                return
        try:
            result, applied = handle()
        except SimulatedError as exc:
            # Logged before answering: a client holding its answer finds the call in the log.
            status = exc.status if refusal_status is None else refusal_status
            self._record(module, fmt, params, status, "error", applied=False)
            refuse(exc.status, exc.messages)
            return
        self._record(module, fmt, params, 200, "ok", applied=applied)
        for fault in faults:
            if fault.kind == "slow-write":
                time.sleep(float(fault.arg or 2000) / 1000)
        ok(result)

    def _v3_error(self, status: int, message: str) -> None:
        body = json.dumps({"errors": [{"field": None, "message": message}]}).encode()
        self._send(status, body, "application/json", headers=self._limits())

    def _limits(self) -> dict[str, str]:
        state = self.server.state
        if state.limit is None:
            return {}
        return {
            "X-RateLimit-Limit": str(state.limit.limit),
            "X-RateLimit-Remaining": str(state.limit.remaining(state.api_user)),
            "X-RateLimit-Reset": str(int(time.time() + state.limit.window)),
        }

    def _record(
        self,
        module: str,
        fmt: str,
        params: dict[str, str],
        status: int,
        outcome: str,
        *,
        applied: bool,
    ) -> CallRecord:
        return self.server.state.record(
            module=module, fmt=fmt, params=params, status=status, outcome=outcome, applied=applied
        )

    def _rate_limited(self, wait: float) -> None:
        state = self.server.state
        assert state.limit is not None
        retry_after = max(1, int(wait + 0.999))
        body = b'{"errors":[{"field":null,"message":"too many requests"}]}'
        self._send(
            429,
            body,
            "application/json",
            headers={
                "Retry-After": str(retry_after),
                "X-RateLimit-Limit": str(state.limit.limit),
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(int(time.time() + retry_after)),
            },
        )

    def _inject(self, fault: FaultRule, fmt: str) -> None:
        kind = fault.kind
        if kind == "status":
            status = int(fault.arg or 500)
            self._send(status, b"<html><body>Internal Server Error</body></html>", "text/html")
        elif kind == "ratelimit":
            retry_after = fault.arg or "1"
            self._send(
                429,
                b'{"errors":[{"field":null,"message":"too many requests"}]}',
                "application/json",
                headers={"Retry-After": retry_after, "X-RateLimit-Remaining": "0"},
            )
        elif kind == "error200" and fault.arg in ("echo", "echo-url"):
            # A careless server echoing the request back; the client must scrub it.
            key = self._api_key_seen
            echoed = (
                f"Invalid request: api_key={quote_plus(key) if fault.arg == 'echo-url' else key}"
            )
            self._reply(fmt, 200, {"message": "error", "errors": [echoed]})
        elif kind == "html-echo":
            self._send(int(fault.arg or 200), _html_echo(self._api_key_seen), "text/html")
        elif kind == "error200":
            self._reply(fmt, 200, _ERROR_SHAPES.get(fault.arg or "1", _ERROR_SHAPES["1"]))
        elif kind == "xml-error":
            self._reply("xml", 200, {"message": "error", "errors": ["Internal error"]})
        elif kind == "malformed":
            self._send(200, b'{"credit": "20', _content_type(fmt))
        elif kind == "empty":
            self._send(200, b"", _content_type(fmt))
        elif kind == "truncated":
            self._truncated(fmt)
        elif kind == "drop":
            self._drop()

    def _truncated(self, fmt: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", _content_type(fmt))
        self.send_header("Content-Length", "200")
        self.end_headers()
        self.wfile.write(b'[{"credit":"0","cred')
        self.wfile.flush()
        self._drop()

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    # --- control endpoints (tests and tools; not part of SendGrid) -------------------

    def _control(self, path: str, body: bytes) -> None:
        state = self.server.state
        if path == "/_sim/calls" and self.command == "GET":
            calls = [{**c.__dict__} for c in state.calls()]
            self._send(200, json.dumps(calls).encode(), "application/json")
        elif path == "/_sim/faults" and self.command == "POST":
            try:
                rule = state.add_fault(FaultRule(**json.loads(body or b"{}")))
            except (TypeError, ValueError) as exc:
                self._send(400, json.dumps({"error": str(exc)}).encode(), "application/json")
                return
            self._send(200, json.dumps(rule.__dict__).encode(), "application/json")
        elif path == "/_sim/faults" and self.command == "DELETE":
            state.clear_faults()
            self._send(200, b"{}", "application/json")
        elif path == "/_sim/stats" and self.command == "GET":
            outcomes: dict[str, int] = {}
            applied = 0
            for call in state.calls():
                outcomes[call.outcome] = outcomes.get(call.outcome, 0) + 1
                applied += call.applied
            stats = {"calls": sum(outcomes.values()), "outcomes": outcomes, "applied": applied}
            self._send(200, json.dumps(stats).encode(), "application/json")
        elif path == "/_sim/state" and self.command == "GET":
            self._send(200, json.dumps(state.snapshot()).encode(), "application/json")
        else:
            self._send(404, b'{"error":"not found"}', "application/json")

    # --- writing ---------------------------------------------------------------------

    def _reply(self, fmt: str, status: int, result: Any, *, root: str = "result") -> None:
        if fmt == "xml":
            self._send(status, _to_xml(result, root), _content_type("xml"))
        else:
            self._send(status, json.dumps(result).encode(), _content_type("json"))

    def _send(
        self, status: int, body: bytes, content_type: str, *, headers: dict[str, str] | None = None
    ) -> None:
        try:
            self.send_response(status, _PHRASES.get(status, ""))
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (its timeout was shorter than our injected delay).
            self.close_connection = True


class SimulatorHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128  # socketserver's default of 5 refuses connections under bursts

    def __init__(self, address: tuple[str, int], state: SimulatorState) -> None:
        super().__init__(address, SimulatorHandler)
        self.state = state


class SimulatorServer:
    """The simulator on a background thread; `url` is the v2 base URL to give clients."""

    def __init__(self, state: SimulatorState, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.state = state
        self._httpd = SimulatorHTTPServer((host, port), state)
        address = self._httpd.server_address
        self.host, self.port = str(address[0]), int(address[1])
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The v2 base URL (`…/apiv2/`)."""
        return f"http://{self.host}:{self.port}/apiv2/"

    @property
    def base_url(self) -> str:
        """The v3 base URL (the host; paths start with `v3/`)."""
        return f"http://{self.host}:{self.port}/"

    def url_for(self, version: str) -> str:
        return self.base_url if version == "v3" else self.url

    def start(self) -> SimulatorServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="sendgrid-simulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._httpd.serve_forever()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @contextmanager
    def running(self) -> Iterator[SimulatorServer]:
        self.start()
        try:
            yield self
        finally:
            self.stop()


def _route(path: str) -> tuple[str, str] | None:
    prefix = "/apiv2/"
    if not path.startswith(prefix):
        return None
    name, _, fmt = path[len(prefix) :].rpartition(".")
    if name not in MODULES or fmt not in ("json", "xml"):
        return None
    return name, fmt


def _html_echo(key: str) -> bytes:
    """An error page that quotes the credential 100 characters in, past where a short
    preview of a body would begin and across where it would end."""
    head = (
        "<html><head><title>400 Bad Request</title></head>"
        "<body><h1>Bad Request</h1><p>Rejected: bad "
    )
    page = f"{head}api_key={html.escape(key)} in the request.</p></body></html>"
    return page.encode()


def _content_type(fmt: str) -> str:
    return "text/xml; charset=ISO-8859-1" if fmt == "xml" else "application/json"


def _xml_root(module: str, params: dict[str, str]) -> str:
    if params.get("task") == "retrieve":
        return "credits"
    if module == "customer.profile" or params.get("method") == "profile":
        return "users"
    return "result"


def _to_xml(result: Any, root: str) -> bytes:
    if isinstance(result, list) and root == "credits":
        result = result[0] if result else {}
    element = ET.Element(root)
    if root == "users":
        for item in result:
            _fill(ET.SubElement(element, "user"), item)
    elif isinstance(result, dict) and "reputation" in result:
        _fill(ET.SubElement(element, "overview"), result)
    else:
        _fill(element, result)
    xml: bytes = ET.tostring(element, encoding="ISO-8859-1")
    return xml


def _fill(element: ET.Element, value: Any) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _fill(ET.SubElement(element, key), item)
    elif isinstance(value, list):
        for item in value:
            _fill(ET.SubElement(element, "error"), item)
    elif value is not None:
        element.text = str(value)
