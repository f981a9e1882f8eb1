"""PostgreSQL for tests: databases this test run creates, and drops, itself.

`TEST_DATABASE_URL` names a server (and a database to connect to for admin
statements). Nothing here touches a table in that database: every test that
needs PostgreSQL gets a database created for this run, `credits_test_<random>`,
and only databases with that prefix can be emptied or dropped.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import uuid

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bot.config import normalize_database_url

PREFIX = "credits_test_"
_created: list[str] = []
_session_database: str | None = None


def server_url() -> str | None:
    raw = os.environ.get("TEST_DATABASE_URL")
    return normalize_database_url(raw) if raw else None


def create_database(prefix: str = PREFIX) -> str:
    """A new, empty database on the test server; dropped when the test run ends."""
    admin = server_url()
    if admin is None:
        raise RuntimeError("TEST_DATABASE_URL is not set")
    name = f"{prefix}{uuid.uuid4().hex[:12]}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    _created.append(name)
    return make_url(admin).set(database=name).render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    """Drop a database this run created (refuses any other)."""
    name = make_url(url).database or ""
    if name not in _created:
        raise RuntimeError(f"refusing to drop {name!r}: this test run did not create it")
    admin = server_url()
    assert admin is not None
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()
    _created.remove(name)


def recreate_database(url: str) -> None:
    """Create again, empty, a database this run created and then dropped."""
    name = make_url(url).database or ""
    if not name.startswith(PREFIX):
        raise RuntimeError(f"refusing to create {name!r}: not a test database name")
    admin = server_url()
    assert admin is not None
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    _created.append(name)


def postgres_url() -> str | None:
    """This run's own PostgreSQL database (created on first use), or None if not configured."""
    global _session_database  # noqa: PLW0603 (one database per test run)
    if server_url() is None:
        return None
    if _session_database is None:
        _session_database = create_database()
    return _session_database


def reset_postgres(url: str) -> None:
    """Empty a database this run created: every table of the schema, and Alembic's own."""
    from bot.adapters.store.tables import metadata

    name = make_url(url).database or ""
    if name not in _created:
        raise RuntimeError(f"refusing to drop tables in {name!r}: this test run did not create it")
    engine = create_engine(url)
    with engine.begin() as connection:
        for table in [*(t.name for t in metadata.sorted_tables), "alembic_version"]:
            connection.execute(text(f"DROP TABLE IF EXISTS {table} CASCADE"))
    engine.dispose()


@atexit.register
def _drop_created() -> None:
    for name in list(_created):
        admin = server_url()
        if admin is None:
            return
        with contextlib.suppress(Exception):  # best effort at exit
            drop_database(make_url(admin).set(database=name).render_as_string(False))
