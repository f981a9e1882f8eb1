"""SendGrid's HTTP session: the environment's proxies are ignored, SENDGRID_PROXY is used."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from bot.adapters.sendgrid import build_backend
from bot.config import load_settings
from bot.errors import ConfigError
from bot.simulator import DEMO_API_KEY, DEMO_API_USER, SimulatorServer


class ForwardingProxy:
    """A plain-HTTP forward proxy on port 0 that records every URL it carries."""

    def __init__(self) -> None:
        self.carried: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                proxy.carried.append(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with requests.Session() as upstream:
                    upstream.trust_env = False
                    answer = upstream.post(
                        self.path,
                        data=body,
                        headers={"Content-Type": self.headers["Content-Type"]},
                        timeout=5,
                    )
                self.send_response(answer.status_code)
                self.send_header("Content-Type", answer.headers["Content-Type"])
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> ForwardingProxy:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def dead_port() -> int:
    """A port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def proxy() -> Iterator[ForwardingProxy]:
    with ForwardingProxy() as running:
        yield running


def settings_for(simulator: SimulatorServer, **extra: str):  # type: ignore[no-untyped-def]
    return load_settings(
        {
            "SENDGRID_API_USER": DEMO_API_USER,
            "SENDGRID_API_KEY": DEMO_API_KEY,
            "SENDGRID_API_URL": simulator.url,
            **extra,
        }
    )


def test_proxy_variables_in_the_environment_are_not_used(
    simulator: SimulatorServer, dead_port: int, monkeypatch: pytest.MonkeyPatch
):
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{dead_port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    client = build_backend(settings_for(simulator))
    try:
        client.get_balance("acme-eu")  # answered by the simulator, not the dead proxy
    finally:
        client.close()


def test_sendgrid_proxy_carries_every_call(
    simulator: SimulatorServer,
    proxy: ForwardingProxy,
    dead_port: int,
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{dead_port}")  # not this one
    client = build_backend(settings_for(simulator, SENDGRID_PROXY=proxy.url))
    try:
        client.get_balance("acme-eu")
    finally:
        client.close()
    assert proxy.carried
    assert all(url.startswith(simulator.url) for url in proxy.carried)


@pytest.mark.parametrize("value", ["127.0.0.1:3128", "ftp://proxy:21", "http://"])
def test_a_proxy_that_is_not_a_url_is_refused(value: str):
    with pytest.raises(ConfigError, match="SENDGRID_PROXY"):
        load_settings({"SENDGRID_PROXY": value})
