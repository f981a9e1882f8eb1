"""The audit trail reads like a ledger, exports, and is chained by hash so that
`credits-bot audit verify` finds an edited or deleted row (SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from threading import Barrier, Thread

import pytest
from sqlalchemy import create_engine, text

from bot.adapters.store import SqlStore
from bot.domain.approvals import AuditAction, AuditEvent
from tests import pg
from tests.fakes.processes import clean_env
from tests.scenarios.conftest import USERS, BotFactory

OPERATOR, APPROVER, VIEWER = USERS["operator"], USERS["approver"], USERS["viewer"]


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    if pg.server_url() is None:
        pytest.skip("needs TEST_DATABASE_URL (PostgreSQL)")
    return pg.create_database()


def audit_cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", "audit", *args],
        env=clean_env(DATABASE_URL=database_url),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def some_history(start_bot: BotFactory, database_url: str) -> None:
    bot = start_bot(DATABASE_URL=database_url, CREDITS_AUTO_APPROVE_MAX="100")
    assert "Add done" in bot.command("add initech 50", user=OPERATOR).text
    assert "as request *#1*" in bot.command("add initech 500", user=OPERATOR).text
    assert "approved and applied" in bot.command("approve 1", user=APPROVER).text
    assert "as request *#2*" in bot.command("remove initech 300", user=OPERATOR).text
    assert "Only the person who asked" in bot.command("cancel 2", user=APPROVER).text
    assert "denied" in bot.command("deny 2 ZD-4411 paid already", user=APPROVER).text
    audit = bot.command("audit initech", user=VIEWER).text
    # kind, amount, before → after, requester, approver and outcome in words
    assert f"<@{APPROVER}> *applied* #1 *initech* add 500 (asked by <@{OPERATOR}>)" in audit
    assert "— applied · 950 credits → 1,450 credits" in audit
    assert f"<@{OPERATOR}> *changed* *initech* add 50 — applied without approval" in audit
    assert f"<@{APPROVER}> *denied* #2 *initech* remove 300 (asked by <@{OPERATOR}>)" in audit
    assert "ZD-4411 paid already" in audit
    for jargon in ("auto_approved=", "credits=", "not_an_approver", "UserError"):
        assert jargon not in audit


def test_audit_export_reads_like_a_ledger(start_bot: BotFactory, database_url: str):
    some_history(start_bot, database_url)
    exported = audit_cli(database_url, "export", "--since", "2000-01-01", "--format", "csv")
    assert exported.returncode == 0, exported.stderr
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    applied = next(r for r in rows if r["event"] == "applied")
    assert {k: applied[k] for k in ("kind", "amount", "before", "after", "outcome")} == {
        "kind": "add",
        "amount": "500",
        "before": "950 credits",
        "after": "1,450 credits",
        "outcome": "applied",
    }
    assert (applied["requester"], applied["approvers"], applied["request"]) == (
        OPERATOR,
        APPROVER,
        "1",
    )
    denied = next(r for r in rows if r["event"] == "denied")
    assert (denied["reason"], denied["approvers"]) == ("ZD-4411 paid already", "")
    refused = next(r for r in rows if r["event"] == "was refused")
    assert refused["outcome"] == "refused: only the requester may cancel"
    as_json = json.loads(audit_cli(database_url, "export", "--format", "json").stdout)
    assert [r["id"] for r in as_json] == [r["id"] for r in rows]
    later = audit_cli(database_url, "export", "--since", "2999-01-01")
    assert later.stdout.strip().splitlines() == [",".join(rows[0].keys())]


def test_verify_finds_an_edited_or_deleted_audit_row(start_bot: BotFactory, database_url: str):
    some_history(start_bot, database_url)
    clean = audit_cli(database_url, "verify")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "intact" in clean.stdout
    engine = create_engine(database_url)
    with engine.begin() as connection:
        applied = connection.execute(
            text("SELECT id FROM audit_events WHERE action = 'executed'")
        ).scalar_one()
        connection.execute(
            text("UPDATE audit_events SET after_balance = NULL WHERE id = :id"), {"id": applied}
        )
    edited = audit_cli(database_url, "verify")
    assert edited.returncode == 1
    assert f"audit row {applied} was edited after it was recorded" in edited.stdout
    with engine.begin() as connection:
        denied = connection.execute(
            text("SELECT id FROM audit_events WHERE action = 'denied'")
        ).scalar_one()
        connection.execute(text("DELETE FROM audit_events WHERE id = :id"), {"id": denied})
    deleted = audit_cli(database_url, "verify")
    assert f"audit row {denied} was deleted" in deleted.stdout
    engine.dispose()


def test_verify_finds_a_rewritten_ledger_entry_or_a_cut_tail(
    start_bot: BotFactory, database_url: str
):
    some_history(start_bot, database_url)
    engine = create_engine(database_url)
    with engine.begin() as connection:
        # Someone rewrites an audit row *and* its ledger entry to match: the chain breaks.
        connection.execute(text("UPDATE audit_events SET outcome = 'ok' WHERE id = 1"))
        connection.execute(
            text(
                "UPDATE ledger_entries SET entry = REPLACE(entry, 'sending', 'ok') "
                "WHERE event_id = 1 AND entry LIKE '%sending%'"
            )
        )
    rewritten = audit_cli(database_url, "verify")
    assert rewritten.returncode == 1
    assert "was edited (its hash is wrong)" in rewritten.stdout
    with engine.begin() as connection:
        last = connection.execute(text("SELECT MAX(seq) FROM ledger_entries")).scalar_one()
        connection.execute(text("DELETE FROM ledger_entries WHERE seq = :s"), {"s": last})
    cut = audit_cli(database_url, "verify")
    assert "entries were removed from the end" in cut.stdout
    engine.dispose()


def test_concurrent_appends_from_two_instances_keep_one_unbroken_chain(database_url: str):
    """Two stores (two instances' engines) recording at once: the head's lock serialises
    appends, so the chain never forks and verify finds it intact."""
    stores = [SqlStore.from_url(database_url) for _ in range(2)]
    gate = Barrier(8)

    def record(store: SqlStore, n: int) -> None:
        gate.wait()
        for i in range(15):
            store.record(
                AuditEvent(
                    at=datetime.now(UTC),
                    actor_id=f"U{n}",
                    action=AuditAction.SNOOZED,
                    target="initech",
                    outcome=f"until {i}",
                )
            )

    threads = [Thread(target=record, args=(stores[n % 2], n)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    report = stores[0].verify_ledger()
    assert (report.rows, report.entries, report.problems) == (120, 120, [])
    for store in stores:
        store.close()
