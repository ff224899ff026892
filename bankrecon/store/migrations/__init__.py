"""The schema's migrations (Alembic), run by bankrecon.store.schema; one file a revision in versions/."""
