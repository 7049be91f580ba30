"""Alembic's environment for the state store's schema (agent/state/revisions; run by agent.state.sql).

The store hands its own connection over in ``config.attributes["connection"]``; each revision runs in
its own transaction, so a crash between two leaves the schema at the last completed one.
"""

from __future__ import annotations

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, transaction_per_migration=True, render_as_batch=False)
with context.begin_transaction():
    context.run_migrations()
