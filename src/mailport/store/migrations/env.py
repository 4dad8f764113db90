"""Alembic environment: runs on the connection handed in by :mod:`mailport.store.migrate`."""

from __future__ import annotations

from alembic import context

from mailport.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reached through `alembic` directly
    raise RuntimeError("run migrations with `mailport db upgrade`")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
