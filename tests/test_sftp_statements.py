"""MT940 and camt.053 statements read, checked page by page and written as canonical rows; no Temporal."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from bankrecon.models import StatementKey
from bankrecon.sources.sftp.camt import read_camt053
from bankrecon.sources.sftp.pages import write_pages
from bankrecon.sources.sftp.swift import read_mt940
from bankrecon.statements.canonical import CanonicalRow
from bankrecon.statements.common import StatementDamaged
from tests.sftp_setup import BILL_DATE, DATA


def _read(path: Path, account_no: str) -> tuple[list[CanonicalRow], object]:
    rows: list[CanonicalRow] = []
    reader = read_mt940 if path.suffix == ".sta" else read_camt053
    totals = write_pages(
        reader(path), StatementKey(account_no=account_no, bill_date=BILL_DATE), rows.append, print
    )
    return rows, totals


def _changed(tmp_path: Path, sample: str, old: str, new: str) -> Path:
    text = (DATA / sample).read_bytes().decode("utf-8")
    assert old in text
    changed = tmp_path / sample
    changed.write_bytes(text.replace(old, new, 1).encode("utf-8"))
    return changed


def test_a_two_message_mt940_is_joined_with_reversals_and_german_subfields() -> None:
    rows, totals = _read(DATA / "mt940_de.sta", "DE89370400440532013000")
    assert [(r.serial_no, r.direction, r.amount, r.reference) for r in rows] == [
        ("0000000000001", "D", Decimal("120.00"), "INV-2026-1142"),
        ("0000000000002", "C", Decimal("2500.00"), "INV-2026-0099"),
        ("0000000000003", "D", Decimal("100.00"), "INV-2026-0042"),  # RC: a credit reversed
        ("line-17", "D", Decimal("14.90"), None),  # no bank reference: the :61: line's number
    ]
    first = rows[0]
    assert (first.counterparty_account, first.counterparty_name, first.memo) == (
        "DE44500105175407324931",
        "Buerobedarf Schmidt GmbH",
        "Rechnung 1142 Bueromaterial",
    )
    assert first.details is not None and first.details["posting_text"] == "SEPA-UEBERWEISUNG"
    assert totals.model_dump() == {  # type: ignore[attr-defined]
        "currency": "EUR",
        "opening_balance": Decimal("1234.56"),
        "closing_balance": Decimal("3499.66"),
        "credit_count": 1,
        "debit_count": 3,
        "credit_total": Decimal("2500.00"),
        "debit_total": Decimal("234.90"),
        "transaction_count": 4,
        "fee_total": None,
        "summary": {"pages": "2"},
    }


def test_a_camt053_001_02_batch_entry_is_a_row_per_txdtls() -> None:
    rows, totals = _read(DATA / "camt053_001_02.xml", "CH9300762011623852957")
    assert [(r.serial_no, r.direction, r.amount, r.reference, r.counterparty_name) for r in rows] == [
        ("CH-20261124-0001/1", "C", Decimal("500.00"), "ORDER-7001", "Muster AG"),
        ("CH-20261124-0001/2", "C", Decimal("700.00"), "ORDER-7002", "Beispiel GmbH"),
        ("CH-20261124-0001/3", "C", Decimal("300.00"), None, "Hans Meier"),  # NOTPROVIDED
        ("E2", "D", Decimal("250.40"), "PAY-2026-118", "Strom Zuerich AG"),  # no AcctSvcrRef: NtryRef
        ("entry-3", "D", Decimal("12.00"), None, None),  # neither: its position
    ]
    assert rows[1].memo == "Rechnung 7002 Teilzahlung"
    assert rows[2].memo == "RF18539007547034"
    assert rows[4].memo == "Kontofuehrungsgebuehr"
    assert rows[0].details is not None and rows[0].details["Ntry/BkTxCd/Domn/Fmly/SubFmlyCd"] == "ESCT"
    assert (totals.opening_balance, totals.closing_balance) == (Decimal("10000.00"), Decimal("11237.60"))  # type: ignore[attr-defined]


def test_a_camt053_001_08_of_two_pages_is_joined() -> None:
    rows, totals = _read(DATA / "camt053_001_08.xml", "GB29NWBK60161331926819")
    assert [(r.serial_no, r.direction, r.amount, r.counterparty_account) for r in rows] == [
        ("GB-20261124-0001-A", "C", Decimal("300.00"), "GB33BUKB20201555555555"),
        ("GB-20261124-0001-B", "C", Decimal("500.00"), "40308512345678"),
        ("GB-20261124-0002", "D", Decimal("200.00"), None),
        ("GB-20261124-0003", "D", Decimal("99.99"), "GB94BARC10201530093459"),
    ]
    assert rows[2].details is not None and rows[2].details["Ntry/RvslInd"] == "true"
    assert rows[3].traded_at.isoformat() == "2026-11-24T15:04:05+00:00"
    assert (totals.closing_balance, totals.summary) == (Decimal("5500.01"), {"pages": "2"})  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("sample", "old", "new", "rule"),
    [
        ("mt940_de.sta", ":62F:C261124EUR3499,66", ":62F:C261124EUR3499,67", "balance"),
        ("mt940_de.sta", ":28C:00331/002", ":28C:00331/003", "pages"),
        ("mt940_de.sta", ":60M:C261124EUR3614,56", ":60M:C261124EUR3614,50", "balance"),
        ("mt940_de.sta", ":62F:C261124EUR3499,66", ":62F:C261125EUR3499,66", "date"),
        (
            "mt940_de.sta",
            ":25:DE89370400440532013000\r\n:28C:00331/002",
            ":25:DE00000000000000000000\r\n:28C:00331/002",
            "account",
        ),
        ("mt940_de.sta", "EUR", "BHD", "currency"),
        ("camt053_001_02.xml", "<Sum>1762.40</Sum>", "<Sum>1762.41</Sum>", "summary"),
        ("camt053_001_02.xml", "<NbOfNtries>3</NbOfNtries>", "<NbOfNtries>4</NbOfNtries>", "summary"),
        ("camt053_001_02.xml", '<Amt Ccy="CHF">700.00</Amt>', '<Amt Ccy="CHF">701.00</Amt>', "batch"),
        ("camt053_001_02.xml", "<LastPgInd>true</LastPgInd>", "<LastPgInd>false</LastPgInd>", "pages"),
        ("camt053_001_08.xml", "<ElctrncSeqNb>2</ElctrncSeqNb>", "<ElctrncSeqNb>3</ElctrncSeqNb>", "pages"),
        ("camt053_001_08.xml", "<Cd>CLBD</Cd>", "<Cd>ITBD</Cd>", "pages"),
        ("camt053_001_08.xml", "GB-20261124-0003<", "GB-20261124-0002<", "duplicate key"),
        ("camt053_001_08.xml", "camt.053.001.08", "camt.054.001.08", "camt.053"),
        ("camt053_001_08.xml", "</Document>", "", "xml"),
    ],
)
def test_a_statement_that_does_not_add_up_is_damage(
    tmp_path: Path, sample: str, old: str, new: str, rule: str
) -> None:
    account_no = {
        "mt940_de.sta": "DE89370400440532013000",
        "camt053_001_02.xml": "CH9300762011623852957",
    }.get(sample, "GB29NWBK60161331926819")
    with pytest.raises(StatementDamaged) as damage:
        _read(_changed(tmp_path, sample, old, new), account_no)
    assert damage.value.rule == rule, damage.value
