"""The nightly run's one activity: what to start, a page at a time, from the configuration and database."""

from __future__ import annotations

from temporalio import activity

from bankrecon.accounts import AccountDirectory
from bankrecon.config import Settings
from bankrecon.models import NightlyPlan, NightlyPlanRequest
from bankrecon.store.catch_up import missing_statements
from bankrecon.store.db import make_engine
from bankrecon.store.schema import prepare_schema


class NightlyActivities:
    def __init__(self, settings: Settings):
        self._directory = AccountDirectory.from_settings(settings)
        self._engine = make_engine(settings.resolved_database_url())
        prepare_schema(self._engine)

    def close(self) -> None:
        self._engine.dispose()

    @activity.defn(name="plan_nightly_statements")
    def plan_nightly_statements(self, request: NightlyPlanRequest) -> NightlyPlan:
        accounts = self._directory.nightly_accounts()
        if not accounts:
            activity.logger.warning(
                "no accounts to collect: list them in BANK_ACCOUNTS_FILE, or in BANK_ACCOUNTS "
                "(comma-separated) for the single merchant"
            )
        # One more than the page holds says whether there are more.
        missing = missing_statements(
            self._engine,
            accounts,
            request.first_date,
            request.last_date,
            after=request.after,
            limit=request.limit + 1,
        )
        return NightlyPlan(
            accounts=len(accounts),
            missing=missing[: request.limit],
            more=len(missing) > request.limit,
        )
