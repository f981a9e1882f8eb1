"""Log records are scrubbed where they are born: every handler sees them clean."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from bot.logs import ScrubbingRecordFactory, configure_logging
from bot.scrubbing import REDACTED
from tests.leaks import leaked

KEY = 'SG.Rk+7/q&W<2"xZ=pL9+mT/aB&c<Y"d'


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def records() -> Iterator[Records]:
    """Logging configured with KEY as a secret; the process's logging restored after."""
    root = logging.getLogger()
    saved = (logging.getLogRecordFactory(), root.handlers[:], root.level)
    configure_logging("DEBUG", [KEY])
    handler = Records()
    root.addHandler(handler)  # stands in for any handler: pytest's, an error tracker's
    yield handler
    factory, handlers, level = saved
    logging.setLogRecordFactory(factory)
    root.handlers[:] = handlers
    root.setLevel(level)


def test_a_secret_in_the_arguments_never_reaches_a_handler(records: Records):
    logging.getLogger("some.library").debug("POST body: api_key=%s&user=%s", quote(KEY), "acme")
    (record,) = records.records
    assert record.getMessage() == f"POST body: api_key={REDACTED}&user=acme"
    assert record.args == ()
    assert not leaked(KEY, repr(record.__dict__))


def test_a_secret_in_a_traceback_or_stack_is_scrubbed(records: Records):
    try:
        raise RuntimeError(f"refused {KEY[3:20]}")
    except RuntimeError:
        logging.getLogger("some.library").exception("failed", stack_info=True)
    (record,) = records.records
    assert record.exc_text is not None
    assert "RuntimeError: refused ********" in record.exc_text
    assert not leaked(KEY, record.exc_text + (record.stack_info or ""))
    line = logging.getLogger().handlers[0].format(record)
    assert not leaked(KEY, line)


def test_records_without_secrets_keep_their_arguments(records: Records):
    logging.getLogger("bot").info("sweep of %d subusers", 12)
    (record,) = records.records
    assert record.args == (12,)


def test_configuring_twice_wraps_the_original_factory_once(records: Records):
    configure_logging("DEBUG", ["another-secret-value"])
    factory = logging.getLogRecordFactory()
    assert isinstance(factory, ScrubbingRecordFactory)
    assert not isinstance(factory._base, ScrubbingRecordFactory)
