"""Durable state: approval requests and the audit trail (SQLAlchemy; SQLite or PostgreSQL)."""

from bot.adapters.store.sql import SqlStore, create_store_engine, migrate

__all__ = ["SqlStore", "create_store_engine", "migrate"]
