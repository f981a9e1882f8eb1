"""The console's line reader: history across sessions, failing quietly."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from bot.commands.replies import NoticeReply
from bot.config import console_history_file
from bot.transports.console import LineReader, render_text

readline = pytest.importorskip("readline")


def test_the_history_file_is_under_xdg_state_or_home():
    assert console_history_file({"XDG_STATE_HOME": "/s", "HOME": "/h"}) == Path(
        "/s/credits-bot/console_history"
    )
    assert console_history_file({"HOME": "/h"}) == Path(
        "/h/.local/state/credits-bot/console_history"
    )
    assert console_history_file({"XDG_STATE_HOME": "relative", "HOME": "/h"}) == Path(
        "/h/.local/state/credits-bot/console_history"
    )
    assert console_history_file({}) is None


def test_history_is_read_at_start_and_written_at_close(tmp_path: Path):
    history = tmp_path / "state" / "credits-bot" / "console_history"
    history.parent.mkdir(parents=True)
    history.write_text("show acme-eu\nlow\n")
    readline.clear_history()
    reader = LineReader(io.StringIO(), io.StringIO(), interactive=True, history_file=history)
    assert readline.get_history_item(readline.get_current_history_length()) == "low"
    readline.add_history("history acme-eu")
    reader.close()
    assert history.read_text().splitlines()[-1] == "history acme-eu"
    readline.clear_history()


def test_an_unwritable_history_file_fails_quietly(tmp_path: Path):
    blocked = tmp_path / "file"
    blocked.write_text("")
    reader = LineReader(
        io.StringIO(), io.StringIO(), interactive=True, history_file=blocked / "sub" / "history"
    )
    reader.close()  # no exception: just no history
    readline.clear_history()


def test_without_a_terminal_lines_come_from_stdin_with_no_prompt():
    out = io.StringIO()
    reader = LineReader(io.StringIO("show acme-eu\n"), out)
    assert reader.read("credits> ") == "show acme-eu"
    assert reader.read("credits> ") is None
    assert out.getvalue() == ""


def test_slack_dates_and_status_marks_read_as_plain_text():
    text = render_text(
        NoticeReply(":red_circle: empty <!date^1795435200^{time}|2026-11-24 12:00 UTC>")
    )
    assert ":red_circle:" not in text
    assert "<!date" not in text
    assert "(!!) empty " in text
