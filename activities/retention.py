"""The retention run's one activity: delete what has expired, heartbeating after every batch."""

from __future__ import annotations

from datetime import UTC, datetime

from temporalio import activity

from bankrecon.config import Settings
from bankrecon.models import RetentionResult
from bankrecon.store.archives import archive_store
from bankrecon.store.db import make_engine
from bankrecon.store.retention import RetentionPolicy, expire_everything
from bankrecon.store.schema import prepare_schema


class RetentionActivities:
    def __init__(self, settings: Settings):
        self._engine = make_engine(settings.resolved_database_url())
        prepare_schema(self._engine)
        self._store = archive_store(settings.archive_store_url, self._engine)
        self._data_dir = settings.data_dir.resolve()
        self._policy = RetentionPolicy.from_settings(settings)

    def close(self) -> None:
        self._engine.dispose()

    @activity.defn(name="expire_retained")
    def expire_retained(self) -> RetentionResult:
        deleted = expire_everything(
            self._engine, self._store, self._data_dir, self._policy, datetime.now(UTC), activity.heartbeat
        )
        activity.logger.info(
            "retention: deleted %s", ", ".join(f"{count} {name}" for name, count in deleted.items())
        )
        return RetentionResult(deleted=deleted)
