"""Every real bank statement of ../shared/corpus/sftp/ (MT940, camt.053) collected end to end: served by
a real SFTP server, fetched and decoded by the worker, stored, and checked against the file's own
balances and entries (read here, apart from bankrecon's readers) and against its golden text.

The damaged ones are refused naming the rule, and store nothing. Each file runs on SQLite; one
MT940 and one camt.053 file run on PostgreSQL too, against the same golden text. As the corpus's
README.txt has them, one file appears only after two polls, and one is first served behind a
changed host key (refused, nothing stored) and then behind the right one.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree
from temporalio.testing import WorkflowEnvironment

from bankrecon.config import Settings
from bankrecon.models import DailyStatementInput, DailyStatementResult
from bankrecon.sources.sftp.simulator import FilePlan
from tests.corpus import check_golden, corpus_path, corpus_samples, golden_text
from tests.harness import count_rows, fails_with, settings_for, stored_rows
from tests.sftp_setup import PASSWORD, PASSWORD_ENV, accounts_file, changed_host_key, sftp_server
from worker import running_worker
from workflows.daily_statement import DailyStatementWorkflow, statement_workflow_id

# How many rows each stored file makes: an entry each, but a camt.053 batch whose TxDtls add up
# to it makes one per TxDtls.
ROWS = {
    "camt053v02_camt_parser_valid_example.xml": 5,  # 4 entries, the last a batch of 2 with amounts
    "camt053v02_iso20022_mdr_finpetrol.xml": 3,  # the batch of 20 without TxDtls is one row
    "camt053v02_fffs_finland_sample.xml": 13,  # 10 entries; batches of 3 and 2 listed in full
    "mt940_betterplace_DE04508800500194781300_2pages.sta": 8,
    "mt940_betterplace_DE06508800500194780100_reversal.sta": 5,
    "mt940_betterplace_DE95508800500194784900_2pages.sta": 9,
}
# The files documented as damaged (corpus/sftp/README.txt), and the rule each breaks.
DAMAGED = {
    "camt053v02_oca_test-camt053_unbalanced.xml": "balance",
    "mt940_betterplace_DE96508800500194774600_damaged.sta": "balance",
}
ABSENT_FOR = {"mt940_betterplace_DE95508800500194784900_2pages.sta": 2}
BEHIND_A_CHANGED_HOST_KEY = {"mt940_betterplace_DE04508800500194781300_2pages.sta"}
ON_POSTGRESQL = {
    "camt053v02_fffs_finland_sample.xml",
    "mt940_betterplace_DE95508800500194784900_2pages.sta",
}
SAMPLES = [name for name in corpus_samples("sftp") if name != "README.txt"]
CASES = [pytest.param(name, "sqlite", id=f"sqlite-{name}") for name in SAMPLES] + [
    pytest.param(name, "postgresql", id=f"postgresql-{name}") for name in sorted(ON_POSTGRESQL)
]
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MT940_BALANCE = re.compile(r"([CD])([0-9]{6})([A-Z]{3})([0-9]+,[0-9]*)")
# :61: value date, entry date, mark (C, D, RC, RD), funds code, amount.
_MT940_ENTRY = re.compile(r":61:[0-9]{6}(?:[0-9]{4})?(R?[CD])[A-Z]?([0-9]+,[0-9]*)")


@dataclass(frozen=True)
class OwnFigures:
    """What a statement file says of itself: its account, day, balances and entries."""

    format: str
    account_no: str
    bill_date: date
    opening: Decimal
    closing: Decimal
    credits: list[Decimal]
    debits: list[Decimal]


def _mt940_amount(text: str) -> Decimal:
    return Decimal(text.replace(",", "."))


def _mt940_figures(path: Path) -> OwnFigures:
    lines = path.read_text(encoding="latin-1").splitlines()

    def balances(tag: str) -> list[re.Match[str]]:
        found = [_MT940_BALANCE.fullmatch(line[len(tag) :]) for line in lines if line.startswith(tag)]
        assert found and all(found), f"{path.name}: its {tag} lines"
        return [match for match in found if match is not None]

    def signed(match: re.Match[str]) -> Decimal:
        amount = _mt940_amount(match.group(4))
        return amount if match.group(1) == "C" else -amount

    entries = [_MT940_ENTRY.match(line) for line in lines if line.startswith(":61:")]
    assert all(entries), f"{path.name}: its :61: lines"
    marks = [(match.group(1), _mt940_amount(match.group(2))) for match in entries if match is not None]
    closing = balances(":62F:")[-1]
    return OwnFigures(
        format="mt940",
        account_no=next(line[4:] for line in lines if line.startswith(":25:")),
        bill_date=datetime.strptime(closing.group(2), "%y%m%d").date(),
        opening=signed(balances(":60F:")[0]),
        closing=signed(closing),
        # Reversing a credit (RC) takes money off the account; reversing a debit (RD) puts it back.
        credits=[amount for mark, amount in marks if mark in ("C", "RD")],
        debits=[amount for mark, amount in marks if mark in ("D", "RC")],
    )


def _camt_figures(path: Path) -> OwnFigures:
    statement = etree.parse(str(path)).getroot().find("{*}BkToCstmrStmt/{*}Stmt")
    assert statement is not None

    def text(element: etree._Element, steps: str) -> str:
        found = element.findtext("/".join(f"{{*}}{step}" for step in steps.split("/")))
        assert found is not None, f"{path.name}: no {steps}"
        return found.strip()

    def signed(element: etree._Element) -> Decimal:
        amount = Decimal(text(element, "Amt"))
        return amount if text(element, "CdtDbtInd") == "CRDT" else -amount

    balances = {text(b, "Tp/CdOrPrtry/Cd"): b for b in reversed(statement.findall("{*}Bal"))}
    opening = balances.get("OPBD", balances.get("PRCD"))
    assert opening is not None
    entries = [signed(entry) for entry in statement.findall("{*}Ntry")]
    account = statement.find("{*}Acct/{*}Id")
    assert account is not None
    return OwnFigures(
        format="camt053",
        account_no="".join(account.itertext()).strip(),
        bill_date=date.fromisoformat(text(balances["CLBD"], "Dt/Dt")),
        opening=signed(opening),
        closing=signed(balances["CLBD"]),
        credits=[amount for amount in entries if amount > 0],
        debits=[-amount for amount in entries if amount < 0],
    )


def own_figures(path: Path) -> OwnFigures:
    return _mt940_figures(path) if path.suffix == ".sta" else _camt_figures(path)


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)


@pytest.mark.parametrize(("sample", "database_url"), CASES, indirect=["database_url"])
async def test_a_real_statement_file_is_stored_exactly_or_refused_naming_the_rule(
    dev_env: WorkflowEnvironment,
    task_queue: str,
    tmp_path: Path,
    database_url: str,
    sample: str,
    request: pytest.FixtureRequest,
) -> None:
    path = corpus_path("sftp", sample)
    if sample not in ROWS and sample not in DAMAGED:
        pytest.fail(f"corpus/sftp/{sample} is new: say in ROWS or DAMAGED what it must store")
    own = own_figures(path)
    adds_up = own.opening + sum(own.credits) - sum(own.debits) == own.closing
    assert adds_up == (sample not in DAMAGED), (sample, own)
    remote = f"/outbox/{own.account_no}/{own.bill_date:%Y%m%d}.dat"
    absent_for = ABSENT_FOR.get(sample, 0)
    plan = FilePlan(remote, path.read_bytes(), absent_for=absent_for)
    async with sftp_server(tmp_path, plans=[plan]) as server:

        def settings(known_hosts: Path) -> Settings:
            accounts = accounts_file(tmp_path, server, known_hosts, own.format, own.account_no)
            return settings_for(
                tmp_path / "data",
                database_url,
                "http://unused.invalid",
                task_queue,
                bank_accounts_file=accounts,
            )

        def run() -> Awaitable[DailyStatementResult]:
            return dev_env.client.execute_workflow(
                DailyStatementWorkflow.run,
                DailyStatementInput(
                    account_no=own.account_no,
                    bill_date=own.bill_date,
                    retry_interval_seconds=0.3,
                    alert_when_late=False,
                    max_damaged_downloads=1,
                ),
                id=statement_workflow_id(own.account_no, own.bill_date),
                task_queue=task_queue,
            )

        if sample in BEHIND_A_CHANGED_HOST_KEY:
            async with running_worker(dev_env.client, settings(changed_host_key(tmp_path, server))):
                refused = await asyncio.wait_for(fails_with(run(), "BankRejected"), timeout=60)
            assert "HOST_KEY" in refused and count_rows(database_url) == 0
        async with running_worker(dev_env.client, settings(server.known_hosts_file)):
            if sample in DAMAGED:
                message = await asyncio.wait_for(fails_with(run(), "StatementDamaged"), timeout=60)
            else:
                result = await asyncio.wait_for(run(), timeout=60)
    if sample in DAMAGED:
        assert f"{DAMAGED[sample]}: " in message, message
        assert count_rows(database_url) == 0
        return
    assert (result.status, result.fetch_attempts) == ("persisted", absent_for + 1)
    statement, rows = stored_rows(database_url, own.account_no, own.bill_date)
    assert statement is not None and statement.source_kind == "sftp"
    assert (statement.opening_balance, statement.closing_balance) == (own.opening, own.closing)
    assert (statement.credit_total, statement.debit_total) == (sum(own.credits), sum(own.debits))
    assert statement.transaction_count == statement.credit_count + statement.debit_count == len(rows)
    assert len(rows) == ROWS[sample] >= len(own.credits) + len(own.debits)
    assert sum(row.amount for row in rows if row.direction == "C") == sum(own.credits)
    assert sum(row.amount for row in rows if row.direction == "D") == sum(own.debits)
    texts = ("serial_no", "reference", "counterparty_account", "counterparty_name", "memo")
    for row in rows:
        stored = [getattr(row, name) for name in texts] + list((row.details or {}).values())
        assert not any(_CONTROL.search(text) for text in stored if text is not None), row
    check_golden(request, f"sftp/{sample}.txt", golden_text(statement, rows))
