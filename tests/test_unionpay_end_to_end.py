"""UnionPay end to end on the Temporal dev server: not ready twice, then stored, on both databases."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from bankrecon.models import DailyStatementInput
from bankrecon.sources.unionpay.simulator.generator import SettlementShape
from bankrecon.sources.unionpay.simulator.pki import make_pki
from bankrecon.sources.unionpay.simulator.server import FilePlan, UnionPaySimulator
from tests.harness import count_rows, fails_with, settings_for, stored_rows
from tests.unionpay_setup import MER_ID, PASSWORD, PASSWORD_ENV, Keys, make_keys, simulator, yesterday
from worker import running_worker
from workflows.daily_statement import DailyStatementWorkflow, statement_workflow_id

ACCOUNT_NO = "up-main"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    return make_keys(tmp_path_factory.mktemp("pki"))


def accounts_file(tmp_path: Path, keys: Keys, base_url: str) -> Path:
    path = tmp_path / "accounts.toml"
    path.write_text(
        "[[merchant]]\n"
        'id = "up-main"\n'
        'kind = "unionpay"\n'
        f'mer_id = "{MER_ID}"\n'
        f'base_url = "{base_url}"\n'
        f'signing_pfx_file = "{keys.files.pfx}"\n'
        f'signing_pfx_password_env = "{PASSWORD_ENV}"\n'
        f'root_cert_file = "{keys.files.root}"\n'
        f'middle_cert_file = "{keys.files.middle}"\n'
        "min_interval_seconds = 0.5\n"
        "[[account]]\n"
        f'account_no = "{ACCOUNT_NO}"\n'
        'merchant = "up-main"\n'
    )
    return path


async def collect(
    env: WorkflowEnvironment, sim: UnionPaySimulator, keys: Keys, tmp_path: Path, database_url: str, day: date
) -> None:
    task_queue = f"unionpay-{tmp_path.name}"
    settings = settings_for(
        tmp_path / "data",
        database_url,
        "http://unused.invalid",
        task_queue,
        bank_accounts_file=accounts_file(tmp_path, keys, sim.url),
    )
    async with running_worker(env.client, settings):
        await env.client.execute_workflow(
            DailyStatementWorkflow.run,
            DailyStatementInput(
                account_no=ACCOUNT_NO, bill_date=day, retry_interval_seconds=0.5, alert_when_late=False
            ),
            id=statement_workflow_id(ACCOUNT_NO, day),
            task_queue=task_queue,
        )


async def test_not_ready_twice_then_stored_exactly(
    dev_env: WorkflowEnvironment,
    keys: Keys,
    tmp_path: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    day = yesterday() - timedelta(days=2)
    with simulator(
        keys, FilePlan(ready_after=2, shape=SettlementShape(rows=30, gbk_member_names=True))
    ) as sim:
        await collect(dev_env, sim, keys, tmp_path, database_url, day)
        codes = [r.resp_code for r in sim.requests]

    assert codes == ["98", "98", "00"]
    statement, rows = stored_rows(database_url, ACCOUNT_NO, day)
    assert statement is not None and statement.source_kind == "unionpay"
    assert len(rows) == 30 == statement.transaction_count
    credits = [r for r in rows if r.direction == "C"]
    debits = [r for r in rows if r.direction == "D"]
    assert (statement.credit_count, statement.debit_count) == (len(credits), len(debits)) == (20, 10)
    assert statement.credit_total == sum((Decimal(r.amount) for r in credits), Decimal("0.00"))
    assert statement.debit_total == sum((Decimal(r.amount) for r in debits), Decimal("0.00"))
    first = rows[0]
    assert first.serial_no == f"{day:%m%d}001{0:014d}" and first.reference == f"ORD{day:%Y%m%d}{0:09d}"


@pytest.mark.parametrize(
    ("plan", "error_type"),
    [
        (FilePlan(faults=["corrupt_zip"] * 3), "StatementDamaged"),
        (FilePlan(shape=SettlementShape(net_mismatch=True)), "StatementDamaged"),
        (FilePlan(shape=SettlementShape(wrong_length=True)), "StatementDamaged"),
        (FilePlan(refuse=("99", "商户未开通此交易")), "BankRejected"),
    ],
    ids=["corrupt_zip", "net_mismatch", "wrong_length", "rejected"],
)
async def test_an_injected_fault_stores_nothing(
    dev_env: WorkflowEnvironment,
    keys: Keys,
    tmp_path: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    plan: FilePlan,
    error_type: str,
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    day = yesterday() - timedelta(days=3)
    with simulator(keys, plan) as sim:
        await fails_with(collect(dev_env, sim, keys, tmp_path, database_url, day), error_type)

    assert count_rows(database_url) == 0


async def test_answers_from_a_certificate_outside_the_configured_chain_fail_for_good_after_three(
    dev_env: WorkflowEnvironment,
    keys: Keys,
    tmp_path: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As when root_cert_file and middle_cert_file are another environment's: nothing would ever verify.
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    day = yesterday() - timedelta(days=4)
    with simulator(keys, FilePlan(), unionpay=make_pki().unionpay) as sim:
        message = await fails_with(
            collect(dev_env, sim, keys, tmp_path, database_url, day), "AnswerNotBelieved"
        )
        codes = [r.resp_code for r in sim.requests]

    assert codes == ["00", "00", "00"]
    assert message.startswith("3 unbelieved answer(s) in a row") and "middle_cert_file" in message
    assert count_rows(database_url) == 0
