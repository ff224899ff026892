"""Alembic's environment: run by bankrecon.store.schema, on the connection it holds the schema lock with.

The migrations run inside that connection's transaction (PostgreSQL's DDL is transactional; SQLite's
too, in the exclusive transaction it opens), so an upgrade applies whole or not at all.
"""

from alembic import context
from sqlalchemy import Connection

from bankrecon.store.db import metadata

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("bankrecon's migrations run through `bankrecon db upgrade`, on a live connection")
# render_as_batch: autogenerate writes SQLite-ready batch blocks for the next migration.
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
