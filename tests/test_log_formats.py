"""Log formats: text and JSON lines, secrets redacted from both."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from bot.logs import JsonFormatter, RedactingFormatter, configure_logging
from bot.observability.context import ContextExecutor, request_scope
from bot.scrubbing import Scrubber

SECRET = 'sg-key-with-"quote"-and-\\backslash'


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(Scrubber([SECRET])))
    logger = logging.getLogger("test.json-logs")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    yield logger, stream
    logger.handlers[:] = []


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_each_record_is_one_json_line_with_the_request_id(captured):
    logger, stream = captured
    logger.info("outside any request")
    with request_scope("abc123"):
        logger.warning("two\nlines in one record")
    first, second = lines(stream)
    assert "request_id" not in first
    assert second["request_id"] == "abc123"
    assert second["message"] == "two\nlines in one record"
    assert (second["level"], second["logger"]) == ("WARNING", "test.json-logs")


def test_secrets_are_redacted_even_where_json_would_escape_them(captured):
    logger, stream = captured
    try:
        raise ValueError(f"rejected key {SECRET}")
    except ValueError:
        logger.exception("SendGrid said %s", SECRET)
    [line] = lines(stream)
    raw = stream.getvalue()
    assert SECRET not in raw
    assert json.dumps(SECRET)[1:-1] not in raw  # nor in its escaped form
    assert line["message"] == "SendGrid said ********"
    assert "rejected key ********" in line["exception"]


def test_tasks_of_a_context_executor_keep_the_submitters_request_id(captured):
    logger, stream = captured
    with ContextExecutor(max_workers=2) as pool, request_scope("req-1"):
        pool.submit(logger.info, "from a worker thread").result()
    [line] = lines(stream)
    assert line["request_id"] == "req-1"


def test_text_stays_the_default_and_redacts_too():
    stream = io.StringIO()
    formatter = RedactingFormatter("%(levelname)s %(message)s", Scrubber([SECRET]))
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "key=%s", (SECRET,), None)
    stream.write(formatter.format(record))
    assert stream.getvalue() == "INFO key=********"
    configure_logging("INFO", [SECRET], log_format="json")
    assert isinstance(logging.getLogger().handlers[0].formatter, JsonFormatter)
    configure_logging("INFO", [SECRET])
    assert not isinstance(logging.getLogger().handlers[0].formatter, JsonFormatter)
