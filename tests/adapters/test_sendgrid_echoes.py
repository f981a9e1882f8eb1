"""SendGrid (or a proxy in front of it) echoes the credential back: raw, URL-encoded,
HTML-escaped in an error page 100 characters in. Nothing of it may reach an error, its
messages or a log record, on v2 or v3, for a read or a write."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from bot.adapters.sendgrid import SendGridV2Client, SendGridV3Client
from bot.adapters.sendgrid.ratelimit import NoLimit
from bot.errors import OutcomeUnknown, SendGridError
from bot.scrubbing import REDACTED
from bot.simulator import DEMO_API_USER, SimulatorServer, SimulatorState, sample_state
from tests.conftest import FAST_RETRY
from tests.leaks import leaked

KEY = 'SG.Rk+7/q&W<2"xZ=pL9+mT/aB&c<Y"d'


CALLS = {
    "read": lambda client: client.get_balance("acme-eu"),
    "write": lambda client: client.increment_credits("acme-eu", 5),
}


@pytest.fixture
def sim_state() -> SimulatorState:
    return sample_state(api_key=KEY, rate_limit=None)


@pytest.fixture(params=["v2", "v3"])
def make(
    request: pytest.FixtureRequest, simulator: SimulatorServer
) -> Iterator[type[SendGridV2Client] | type[SendGridV3Client]]:
    clients: list[SendGridV2Client | SendGridV3Client] = []

    def build(faults: str, **options: object) -> SendGridV2Client | SendGridV3Client:
        common = {
            "api_key": f"{KEY}~{faults}",
            "limiter": NoLimit(),
            "retry": FAST_RETRY,
            "timeout": 2.0,
            "logger": logging.getLogger("test.sendgrid"),
            **options,
        }
        client: SendGridV2Client | SendGridV3Client
        if request.param == "v3":
            client = SendGridV3Client(base_url=simulator.base_url, **common)  # type: ignore[arg-type]
        else:
            client = SendGridV2Client(api_user=DEMO_API_USER, base_url=simulator.url, **common)  # type: ignore[arg-type]
        clients.append(client)
        return client

    yield build  # type: ignore[misc]
    for client in clients:
        client.close()


@pytest.mark.parametrize(
    "fault", ["error200:echo", "error200:echo-url", "html-echo", "html-echo:400"]
)
@pytest.mark.parametrize("call", ["read", "write"])
def test_an_echoed_key_leaves_no_fragment(make, fault: str, call: str, caplog):
    caplog.set_level(logging.DEBUG)
    client = make(fault)
    with pytest.raises(SendGridError) as caught:
        CALLS[call](client)
    error = caught.value
    if fault.startswith("html") and call == "write":
        assert isinstance(error, OutcomeUnknown)  # an unreadable answer to a change
    assert f"api_key={REDACTED}" in str(error)  # the echo reached the message, scrubbed
    texts = [str(error), *error.messages, caplog.text]
    assert not [text for text in texts if leaked(KEY, text)]


def test_the_preview_of_an_html_page_is_cut_after_scrubbing(make):
    """The issue's page: the key starts 100 characters in; the preview stops at 120."""
    with pytest.raises(SendGridError) as caught:
        make("html-echo").get_balance("acme-eu")
    assert str(caught.value).endswith(f"<p>Rejected: bad api_key={REDACTED} in the requ")
