"""A proxy's credentials (SENDGRID_PROXY=http://user:password@host:port) are secrets:
they never reach a log line or a reply, however the proxy echoes them."""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bot.config import load_settings
from bot.logs import configure_logging
from tests.leaks import leaked
from tests.scenarios.conftest import BotFactory

PASSWORD = "Pr0xy-pa55word-7Hq2vX"
USER = "ops-proxy"


class EchoingProxy:
    """A forward proxy that refuses every request with an error page quoting what it
    was sent: the credentials in its Proxy-Authorization header, encoded and decoded."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.do_GET()

            def do_GET(self) -> None:
                header = self.headers.get("Proxy-Authorization") or ""
                decoded = base64.b64decode(header.removeprefix("Basic ") or b"").decode()
                page = (
                    f"<html><body>502 upstream failed for {self.path}; "
                    f"Proxy-Authorization: {header} ({decoded})</body></html>"
                ).encode()
                self.send_response(502)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self._server.server_address[1])

    def __enter__(self) -> EchoingProxy:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def proxy() -> Iterator[EchoingProxy]:
    with EchoingProxy() as running:
        yield running


@pytest.fixture
def records() -> Iterator[Records]:
    root = logging.getLogger()
    saved = (logging.getLogRecordFactory(), root.handlers[:], root.level)
    handler = Records()
    yield handler
    factory, handlers, level = saved
    logging.setLogRecordFactory(factory)
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SENDGRID_PROXY", f"http://{USER}:{PASSWORD}@proxy.internal:3128"),
        ("DATABASE_URL", f"postgresql://credits:{PASSWORD}@db.internal/credits"),
        ("SLACK_API_URL", f"https://{USER}:{PASSWORD}@slack-gateway.internal/api/"),
    ],
)
def test_a_password_in_a_configured_url_is_a_secret(name: str, value: str):
    secrets = load_settings({name: value}).secrets()
    assert PASSWORD in secrets
    assert f"{USER}:{PASSWORD}" in secrets or name == "DATABASE_URL"
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert token in secrets or name == "DATABASE_URL"  # as a Proxy-Authorization header


def test_a_proxy_password_never_reaches_a_log_line_or_a_reply(
    start_bot: BotFactory, proxy: EchoingProxy, records: Records
):
    bot = start_bot(SENDGRID_PROXY=f"http://{USER}:{PASSWORD}@127.0.0.1:{proxy.port}")
    configure_logging("DEBUG", bot.settings.secrets())
    logging.getLogger().addHandler(records)  # stands in for any handler
    logging.getLogger("some.library").debug("proxies: %s", bot.settings.sendgrid_proxy)
    reply = bot.command("show acme-us")
    assert "SendGrid" in reply.text
    said = "\n".join([reply.text, str(reply.message), *records.lines])
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert any("upstream" in line or "502" in line for line in records.lines)
    assert not leaked(PASSWORD, said)
    assert token not in said
