"""Warehouses and the state database as SQLAlchemy engines: the one engine factory with deadlines, the
read-only checks, and what a URL needs (drivers, SQLite paths)."""
