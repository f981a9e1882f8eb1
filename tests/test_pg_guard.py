"""Benches and tests touch only PostgreSQL databases they created (issue 16: the soak
used to default to the shared `test` database and drop its tables)."""

from __future__ import annotations

import pytest

from tests.pg import drop_database, recreate_database, reset_postgres


@pytest.mark.parametrize("name", ["test", "postgres", "credits_test_not_made_by_this_run"])
def test_a_database_this_run_did_not_create_is_never_emptied_or_dropped(name: str):
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    with pytest.raises(RuntimeError, match="did not create it"):
        reset_postgres(url)
    with pytest.raises(RuntimeError, match="did not create it"):
        drop_database(url)


def test_only_a_test_database_name_is_ever_created_again():
    with pytest.raises(RuntimeError, match="not a test database name"):
        recreate_database("postgresql+psycopg://postgres@127.0.0.1:5432/test")
