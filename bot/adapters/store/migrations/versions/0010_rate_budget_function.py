"""The rate budget's take in one round trip on PostgreSQL (issue 16).

`credits_take_grants` does, inside the server, what `SqlRateBudget.take_many` did
in five statements: lock the budget's row, only then read the clock, count the
grants in the window, insert as many as fit (or say how long to wait). A PL/pgSQL
function runs each statement with a fresh snapshot (READ COMMITTED), so a read made
after the lock sees every grant committed before it, as before. SQLite keeps the
statements (one process host, no round trips).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TAKE_GRANTS = """
CREATE OR REPLACE FUNCTION credits_take_grants(
    p_budget varchar, p_count integer, p_limit integer, p_window double precision,
    p_now double precision DEFAULT NULL
) RETURNS TABLE (granted integer, delay double precision)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_paused double precision;
    v_now double precision;
    v_used integer;
    v_oldest double precision;
    v_granted integer;
BEGIN
    -- A grant need not survive a server crash (the window would forget the last few).
    PERFORM set_config('synchronous_commit', 'off', true);
    SELECT paused_until INTO v_paused FROM rate_budgets WHERE name = p_budget FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO rate_budgets (name, paused_until) VALUES (p_budget, 0)
            ON CONFLICT DO NOTHING;
        SELECT paused_until INTO v_paused FROM rate_budgets WHERE name = p_budget FOR UPDATE;
    END IF;
    -- The clock is read after the lock: a time read before waiting for it could be stale.
    v_now := coalesce(p_now, extract(epoch FROM clock_timestamp()));
    IF v_now < v_paused THEN
        RETURN QUERY SELECT 0, v_paused - v_now;
        RETURN;
    END IF;
    SELECT count(*), min(recent.at) INTO v_used, v_oldest FROM (
        SELECT rate_grants.at FROM rate_grants
        WHERE rate_grants.budget = p_budget AND rate_grants.at > v_now - p_window
        ORDER BY rate_grants.at DESC LIMIT p_limit
    ) AS recent;
    v_granted := least(p_count, p_limit - v_used);
    IF v_granted <= 0 THEN
        -- The `limit`-th latest grant must leave the window before another enters.
        RETURN QUERY SELECT 0, v_oldest + p_window - v_now;
        RETURN;
    END IF;
    INSERT INTO rate_grants (budget, at) SELECT p_budget, v_now FROM generate_series(1, v_granted);
    RETURN QUERY SELECT v_granted, 0.0::double precision;
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(TAKE_GRANTS)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "DROP FUNCTION IF EXISTS credits_take_grants("
            "varchar, integer, integer, double precision, double precision)"
        )
