"""Telling operators that a statement is late, and later that it arrived; or that it failed for good."""

from __future__ import annotations

import logging

import httpx
from temporalio import activity

from bankrecon.bankrec.models import BankReconciliationNotice
from bankrecon.config import Settings
from bankrecon.models import OperatorNotice
from bankrecon.recon.models import ReconciliationNotice
from bankrecon.telemetry.logs import statement_fields

log = logging.getLogger("bankrecon.alerts")

_SAID = {
    "late": "statement not stored by its deadline; still trying",
    "recovered": "late statement now stored",
    "failed": "statement failed for good; not retried until an operator starts it again",
}


class NotificationActivities:
    def __init__(self, settings: Settings):
        self._webhook_url = settings.alert_webhook_url
        self._timeout = settings.alert_webhook_timeout_seconds

    @activity.defn(name="notify_operators")
    async def notify_operators(self, notice: OperatorNotice) -> None:
        """One log record per notice, and a POST to the webhook when there is one (retried by Temporal)."""
        if activity.info().attempt == 1:
            log.warning(
                "%s: %s %s (deadline %s, %d bank requests, last answer %s)%s",
                _SAID[notice.kind],
                notice.statement.account_no,
                notice.statement.bill_date,
                notice.deadline.isoformat(),
                notice.fetch_attempts,
                f"{notice.last_answer.code} {notice.last_answer.message}" if notice.last_answer else "none",
                f": {notice.reason}" if notice.reason else "",
                extra={
                    "notice": notice.model_dump(mode="json"),
                    "workflow_id": notice.workflow_id,
                    **statement_fields(notice.statement),
                },
            )
        await self._post(
            {"event": f"statement_{notice.kind}", "summary": _SAID[notice.kind]}
            | notice.model_dump(mode="json"),
            # A retry after a lost response repeats the POST; receivers drop repeats by this key.
            # The run id is in it: a new run of the date (after a failure) is a new alert.
            idempotency_key=f"{notice.workflow_id}/{notice.run_id}/{notice.kind}",
        )

    @activity.defn(name="notify_reconciliation")
    async def notify_reconciliation(self, notice: ReconciliationNotice) -> None:
        """A run's exceptions, counted and summed per state: one log record and one POST per run."""
        if activity.info().attempt == 1:
            log.warning(
                "reconciliation exceptions: %s %s: %s; still open: %s",
                notice.day.account_no,
                notice.day.recon_date,
                ", ".join(
                    f"{total.lines} {total.side} {total.state} ({total.amount})"
                    for total in notice.exceptions
                ),
                ", ".join(
                    f"{total.lines} {total.state} {total.band} ({total.amount})"
                    for total in notice.open_by_age
                ),
                extra={"notice": notice.model_dump(mode="json"), "workflow_id": notice.workflow_id},
            )
        found = (
            "reconciliation found exceptions" if notice.subject == "run" else "the settlement is not right"
        )
        await self._post(
            {"event": "reconciliation_exceptions", "summary": found} | notice.model_dump(mode="json"),
            # A run alerts once for what it found, and once more if its pending settlement fails.
            idempotency_key=(
                f"{notice.workflow_id}/{notice.run_id}/"
                f"{'reconciliation' if notice.subject == 'run' else 'settlement'}"
            ),
        )

    @activity.defn(name="notify_bank_reconciliation")
    async def notify_bank_reconciliation(self, notice: BankReconciliationNotice) -> None:
        """A bank run's open items per state and whether its 余额调节表 balances: one log record and
        one POST per run."""
        balanced = notice.difference == 0
        if activity.info().attempt == 1:
            log.warning(
                "bank reconciliation: %s %s: %s; %s",
                notice.day.account_no,
                notice.day.recon_date,
                ", ".join(f"{total.lines} {total.state} ({total.amount})" for total in notice.open_items)
                or "no open items",
                "the balance statement balances"
                if balanced
                else f"unexplained difference {notice.difference}",
                extra={"notice": notice.model_dump(mode="json"), "workflow_id": notice.workflow_id},
            )
        summary = (
            "open items, the balance statement balances"
            if balanced
            else "the balance statement does not balance"
        )
        await self._post(
            {"event": "bank_reconciliation", "summary": summary, "balanced": balanced}
            | notice.model_dump(mode="json"),
            idempotency_key=f"{notice.workflow_id}/{notice.run_id}/bank_reconciliation",
        )

    async def _post(self, body: dict[str, object], idempotency_key: str) -> None:
        """POST to the webhook when there is one (retried by Temporal)."""
        if self._webhook_url is None:
            return
        try:
            async with httpx.AsyncClient(timeout=self._timeout) as http:
                response = await http.post(
                    self._webhook_url.get_secret_value(),
                    json=body,
                    headers={"Idempotency-Key": idempotency_key},
                )
        except httpx.HTTPError as exc:
            # The URL may carry a token: name the failure, not the address.
            raise RuntimeError(f"alert webhook unreachable: {type(exc).__name__}") from None
        if response.is_error:
            raise RuntimeError(f"alert webhook answered HTTP {response.status_code}")
