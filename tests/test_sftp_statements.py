"""MT940 and camt.053 statements read, checked page by page and written as canonical rows; no Temporal."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest

from bankrecon.models import StatementKey, StatementTotals
from bankrecon.sources.sftp.camt import read_camt053
from bankrecon.sources.sftp.pages import write_pages
from bankrecon.sources.sftp.simulator import demo_statement
from bankrecon.sources.sftp.swift import read_mt940
from bankrecon.statements.canonical import CanonicalRow
from bankrecon.statements.common import StatementDamaged
from tests.sftp_setup import BILL_DATE, DATA


def _read(path: Path, account_no: str) -> tuple[list[CanonicalRow], StatementTotals]:
    rows: list[CanonicalRow] = []
    reader = read_mt940 if path.suffix == ".sta" else read_camt053
    totals = write_pages(
        reader(path), StatementKey(account_no=account_no, bill_date=BILL_DATE), rows.append, print
    )
    return rows, totals


def _control_free(rows: list[CanonicalRow]) -> bool:
    texts = [
        text
        for row in rows
        for text in (
            row.serial_no,
            row.reference,
            row.counterparty_account,
            row.counterparty_name,
            row.memo,
            *(row.details or {}).values(),
        )
        if text is not None
    ]
    return not any(re.search(r"[\x00-\x1f\x7f]", text) for text in texts)


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
    assert first.details is not None and first.details["?00"] == "SEPA-UEBERWEISUNG"
    assert totals.model_dump() == {
        "currency": "EUR",
        "opening_balance": Decimal("1234.56"),
        "closing_balance": Decimal("3499.66"),
        "credit_count": 1,
        "debit_count": 3,
        "credit_total": Decimal("2500.00"),
        "debit_total": Decimal("234.90"),
        "transaction_count": 4,
        "fee_total": None,
        "summary": {"pages": "2", "statement_number": "00331"},
    }


def test_a_wrapped_german_mt940_takes_references_names_and_purposes_from_its_subfields() -> None:
    """Lines wrapped at 65 characters (even inside a ?NN mark, even after a space), KREF+ standing
    for the :86: customer reference, EREF+NONREF, MTLG:, ?60 continuing ?29, an RC reversal."""
    rows, totals = _read(DATA / "mt940_sepa_wrapped.sta", "DE27100777770209299700")
    read = [(r.serial_no, r.direction, str(r.amount), r.reference) for r in rows]
    parties = [(r.counterparty_account, r.counterparty_name, r.memo) for r in rows]
    assert [key + party for key, party in zip(read, parties, strict=True)] == [
        (
            "0826110400001", "C", "4800.00", "RE-2026-4711 Kunde K00815", "DE44500105175407324931",
            "MUELLER        HANS", "Rechnung 4711 vom 10.11.2026 Kundennr 815",
        ),
        (
            # EREF+NONREF, and the :61: line's KREF+ stands for the :86: KREF+.
            "0826110400002", "D", "310.45", "TFNR 33012 Instruction Id  00001", "DE02120300000000202051",
            "Hausverwaltung Schmidt und Partner GbR Berlin",
            "Miete Dezember 2026 Buero Hauptstrasse 5 Whg 3 links",
        ),
        (
            # A trailing space before the wrap is the text's own.
            "0826110400003", "D", "1500", "TFNr 33012 MSGID", "DE21500500009876543210",
            "Stadtwerke Musterstadt", "Abschlag Strom Nov 2026 Vertragskonto 4471190",
        ),
        ("line-18", "C", "89.90", None, None, None, "2611240001"),  # no bank reference
        ("R826110400005", "D", "89.90", "MSGIDSAMMLER0001", None, None, None),  # RC: a credit reversed
        (
            "0826110400006", "D", "2000", "PayId 2026-11-24 SAMMLER 12", None, None,
            "KREF+PayId 2026-11-24 SAMMLER 12MTLG:SEPA-Ueberweisungsauftrag Datei mit 0000012 Zahlungen",
        ),
        (
            "0826110400007", "D", "75.00", "ORD-88412 Lieferung 11 2026", "FR1420041010050500013M02606",
            "Fournitures Lyon SARL", "Bestellung 88412 Buerobedarf",
        ),
    ]  # fmt: skip
    last = rows[-1].details
    assert last is not None
    assert (last["transaction_code"], last["?29"], last["?60"], last["?30"]) == (
        "116",
        "MTLG:Ggf.Meldevorschriften ",
        "beachten",
        "SOGEFRPPXXX",
    )
    assert (last["KREF+"], last["MTLG:"], last["customer_reference"]) == (
        "ORD-88412",
        "Ggf.Meldevorschriften beachten",
        "KREF+",
    )
    assert _control_free(rows)
    assert (totals.opening_balance, totals.closing_balance, totals.summary) == (
        Decimal("-12500.00"),
        Decimal("-11585.45"),
        {"pages": "2", "statement_number": "00117"},
    )


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
    assert (totals.opening_balance, totals.closing_balance) == (Decimal("10000.00"), Decimal("11237.60"))
    # The bank's running numbers of its statements: not page numbers.
    assert totals.summary == {"pages": "1", "ElctrncSeqNb": "118", "LglSeqNb": "86"}


def test_camt053_batches_are_split_only_where_their_details_add_up() -> None:
    rows, totals = _read(DATA / "camt053_batches.xml", "52000000098760000001")
    assert [
        (r.serial_no, r.direction, str(r.amount), r.reference, r.counterparty_name, r.memo) for r in rows
    ] == [
        ("261124SALA0001", "D", "84250.00", None, None, None),  # salary run, details withheld
        ("261124ACCR0002", "D", "120000", None, None, None),  # a batch of 20, no TxDtls
        ("261124RCDT0003/1", "C", "1000.00", None, "Lindqvist Bygg AB", "Faktura 20461"),
        ("261124RCDT0003/2", "C", "500.00", "OCR 7731002", "Ek Konsult", "Faktura 20462"),
        ("261124CHRG0004/1", "D", "150.00", None, None, None),  # their AcctSvcrRef is repeated
        ("261124CHRG0004/2", "D", "150.00", None, None, None),
        ("261124RCDT0005", "C", "3000.00", None, None, "Inbetalningar bankgiro 3 st"),  # 2 of 3 listed
        ("261124RCDT0006", "C", "75000", "KUND-88-2026-11", "Holm Fastigheter AB", "RF471234"),
    ]
    salary, twenty, *_, partial, remitted = (r.details or {} for r in rows)
    assert (salary["Ntry/NtryDtls/Btch/NbOfTxs"], salary["TxDtls/Purp/Cd"]) == ("4", "SALA")
    assert twenty["Ntry/NtryDtls/Btch/NbOfTxs"] == "20"
    assert rows[4].details is not None and rows[4].details["TxDtls/Refs/AcctSvcrRef"] == "261124CHRG0004-01"
    # Each TxDtls of a row that holds several, and each repeated element, under its own index.
    assert (partial["TxDtls/AmtDtls/TxAmt/Amt"], partial["TxDtls[2]/AmtDtls/TxAmt/Amt"]) == (
        "1000.00",
        "1200.00",
    )
    assert (
        "TxDtls/RltdPties/Dbtr/Nm" not in partial and partial["TxDtls[2]/RltdPties/Dbtr/Nm"] == "Berg och Son"
    )
    assert "TxDtls/RmtInf/Strd/RfrdDocInf/Nb" not in remitted
    assert (
        remitted["TxDtls/RmtInf/Strd[2]/RfrdDocInf/Nb"],
        remitted["TxDtls/RmtInf/Strd[2]/CdtrRefInf/Ref"],
    ) == (
        "F-20455",
        "RF471235",
    )
    assert rows[1].traded_at.isoformat() == "2026-11-24T10:15:00+01:00"
    assert _control_free(rows)
    assert totals.model_dump() == {
        "currency": "SEK",
        "opening_balance": Decimal("250000"),
        "closing_balance": Decimal("124950.00"),
        "credit_count": 4,
        "debit_count": 4,
        "credit_total": Decimal("79500.00"),
        "debit_total": Decimal("204550.00"),
        "transaction_count": 8,
        "fee_total": None,
        "summary": {"pages": "1", "ElctrncSeqNb": "130000328", "LglSeqNb": "228"},
    }


def test_a_batch_whose_details_do_not_add_up_is_one_row(tmp_path: Path) -> None:
    changed = _changed(
        tmp_path, "camt053_001_02.xml", '<Amt Ccy="CHF">700.00</Amt>', '<Amt Ccy="CHF">701.00</Amt>'
    )
    rows, _ = _read(changed, "CH9300762011623852957")
    assert [(r.serial_no, str(r.amount), r.counterparty_name) for r in rows[:2]] == [
        ("CH-20261124-0001", "1500.00", None),
        ("E2", "250.40", "Strom Zuerich AG"),
    ]
    details = rows[0].details or {}
    assert (details["Ntry/NtryDtls/Btch/NbOfTxs"], details["TxDtls[2]/AmtDtls/TxAmt/Amt"]) == ("3", "701.00")


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
    assert (totals.closing_balance, totals.summary) == (
        Decimal("5500.01"),
        {"pages": "2", "ElctrncSeqNb": "122"},
    )


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
        ("camt053_001_02.xml", "<LastPgInd>true</LastPgInd>", "<LastPgInd>false</LastPgInd>", "pages"),
        ("camt053_001_02.xml", "<PgNb>1</PgNb>", "<PgNb>2</PgNb>", "pages"),
        ("camt053_001_08.xml", "<PgNb>2</PgNb>", "<PgNb>3</PgNb>", "pages"),
        ("camt053_001_08.xml", "<PgNb>1</PgNb><LastPgInd>false", "<PgNb>1</PgNb><LastPgInd>true", "pages"),
        ("camt053_001_08.xml", "<PgNb>2</PgNb><LastPgInd>true", "<PgNb>2</PgNb><LastPgInd>false", "pages"),
        ("camt053_batches.xml", "<Sum>79500.00</Sum>", "<Sum>79500.01</Sum>", "summary"),
        ("camt053_batches.xml", "261124SALA0001<", "261124ACCR0002<", "duplicate key"),
        ("mt940_sepa_wrapped.sta", ":28C:00117/00002", ":28C:00117/00003", "pages"),
        ("mt940_sepa_wrapped.sta", ":62F:D261124EUR11585,45", ":62F:D261124EUR11585,54", "balance"),
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
        "mt940_sepa_wrapped.sta": "DE27100777770209299700",
        "camt053_001_02.xml": "CH9300762011623852957",
        "camt053_batches.xml": "52000000098760000001",
    }.get(sample, "GB29NWBK60161331926819")
    with pytest.raises(StatementDamaged) as damage:
        _read(_changed(tmp_path, sample, old, new), account_no)
    assert damage.value.rule == rule, damage.value


@pytest.mark.parametrize(("format", "pages"), [("mt940", 1), ("mt940", 2), ("camt053", 1)])
def test_the_simulators_statement_is_what_banks_send(tmp_path: Path, format: str, pages: int) -> None:
    content = demo_statement("DE89370400440532013000", BILL_DATE, format, pages)
    path = tmp_path / ("statement.sta" if format == "mt940" else "statement.xml")
    path.write_bytes(content)
    rows, totals = _read(path, "DE89370400440532013000")
    assert _control_free(rows)
    if format == "mt940":
        # :86: wrapped at 65 characters, KREF+ on the :61: line, a reversal, a line without a bank reference.
        lines = content.decode().split("\r\n")
        assert max(map(len, lines)) == 69 and b"NTRFKREF+//" in content and b"RCR12,00" in content
        assert [(r.serial_no, r.direction, r.reference) for r in rows] == [
            ("2611240000001", "C", "INV-1001 Kunde 4711"),
            ("2611240000002", "D", "PO-2026-0815 Bueromaterial"),
            ("line-13", "C", None),
            ("R2611240000004", "D", "MSGIDSAMMLER0001"),
            ("2611240000005", "D", "PayId LOHN-11 Sammler"),
        ]
        assert (rows[0].counterparty_name, rows[1].memo) == (
            "Kunde AG Zweigstelle Nord",
            "Bestellung 0815 Bueromaterial und Toner",
        )
        assert totals.summary == {"pages": str(pages), "statement_number": "00117"}
        assert (totals.opening_balance, totals.closing_balance) == (Decimal("3000.00"), Decimal("1709.50"))
        return
    assert [(r.serial_no, str(r.amount)) for r in rows] == [
        ("261124RCDT0001", "250.00"),
        ("261124SALA0002", "1500.00"),  # a salary batch of 4, its details withheld
        ("261124RCDT0003/1", "400.00"),
        ("261124RCDT0003/2", "200.00"),
        ("261124CHRG0004/1", "4.90"),  # both TxDtls say 261124CHRG01
        ("261124CHRG0004/2", "4.90"),
    ]
    assert rows[1].details is not None and rows[1].details["Ntry/NtryDtls/Btch/NbOfTxs"] == "4"
    assert totals.summary == {"pages": "1", "ElctrncSeqNb": "130000328", "LglSeqNb": "328"}
    assert (totals.opening_balance, totals.closing_balance) == (Decimal("3000.00"), Decimal("2340.20"))
