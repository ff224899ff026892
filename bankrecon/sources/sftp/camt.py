"""ISO 20022 camt.053 (BkToCstmrStmt) statements, read with lxml's iterparse one ``Stmt`` at a time.

Elements are found by local name, so every version of the namespace
``urn:iso:std:iso:20022:tech:xsd:camt.053.001.NN`` reads alike (.001.02 and .001.08 are tested).
Each ``Stmt`` is a page: several in a file are joined in ``ElctrncSeqNb`` order, which must
count from 1 when present. A message that says it is not the last page (``MsgPgntn``
``LastPgInd`` false) is not the whole statement.

Rows: an entry (``Ntry``) is a row; an entry with several ``TxDtls`` that carry amounts (a
batch) is a row per ``TxDtls``, whose amounts must add up to the entry's. A row's key is its
``AcctSvcrRef``, else the entry's ``NtryRef``, else ``entry-N`` (the entry's position in the
file); a batch row appends ``/n`` to the entry's key when the ``TxDtls`` has no ``AcctSvcrRef``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Literal

from lxml import etree

from bankrecon.sources.sftp.pages import Balance, Page, booking_time, signed
from bankrecon.statements.canonical import CanonicalRow
from bankrecon.statements.common import StatementDamaged

_NAMESPACE = re.compile(r"urn:iso:std:iso:20022:tech:xsd:camt\.053\.001\.[0-9]{2}")
_AMOUNT = re.compile(r"[0-9]{1,18}(\.[0-9]{1,5})?")
_OPENING = {"OPBD": True, "PRCD": True, "ITBD": False}
_CLOSING = {"CLBD": True, "ITBD": False}
_NO_REFERENCE = {"", "NOTPROVIDED", "NONREF"}


def _path(path: str) -> str:
    return "/".join(f"{{*}}{step}" for step in path.split("/"))


def _text(element: etree._Element, path: str) -> str | None:
    found = element.find(_path(path))
    if found is None or found.text is None:
        return None
    return found.text.strip()


def _first(element: etree._Element, *paths: str) -> str | None:
    for path in paths:
        value = _text(element, path)
        if value:
            return value
    return None


def _amount(text: str | None, what: str) -> Decimal:
    if text is None or not _AMOUNT.fullmatch(text):
        raise StatementDamaged("amount", f"{what} is not an amount: {text!s:.40}")
    return Decimal(text)


def _direction(text: str | None, what: str) -> Literal["C", "D"]:
    if text == "CRDT":
        return "C"
    if text == "DBIT":
        return "D"
    raise StatementDamaged("camt.053", f"{what}'s CdtDbtInd is {text!s:.10}, not CRDT or DBIT")


def _day(element: etree._Element, path: str, what: str) -> date:
    text = _first(element, f"{path}/Dt", f"{path}/DtTm")
    try:
        if text is None:
            raise ValueError
        return date.fromisoformat(text[:10])
    except ValueError:
        raise StatementDamaged("camt.053", f"{what} has no date") from None


def _booked(entry: etree._Element, what: str) -> datetime:
    """The entry's booking time when the bank gives one with its offset, else the start of its day."""
    moment = _text(entry, "BookgDt/DtTm")
    if moment is not None:
        try:
            parsed = datetime.fromisoformat(moment)
        except ValueError:
            raise StatementDamaged("camt.053", f"{what}'s BookgDt/DtTm is not a time") from None
        if parsed.tzinfo is not None:
            return parsed
    return booking_time(_day(entry, "BookgDt", what))


def _local(element: etree._Element) -> str:
    return etree.QName(element).localname


def _fields(
    element: etree._Element, prefix: str, into: dict[str, str], skip: str | None = None
) -> dict[str, str]:
    """Every text and attribute under ``element`` by its path of local names; a repeated path gets ``[n]``."""
    for child in element:
        if not isinstance(child.tag, str) or _local(child) == skip:
            continue
        name = f"{prefix}/{_local(child)}" if prefix else _local(child)
        unique, n = name, 2
        while unique in into or f"{unique}/" in into:
            unique, n = f"{name}[{n}]", n + 1
        if child.text and child.text.strip():
            into[unique] = child.text.strip()
        for attribute, value in child.attrib.items():
            into[f"{unique}@{attribute}"] = value
        _fields(child, unique, into)
    return into


def read_camt053(path: Path) -> Iterator[Page]:
    events = etree.iterparse(
        str(path),
        events=("start", "end"),
        resolve_entities=False,
        no_network=True,
        huge_tree=False,
        remove_comments=True,
    )
    entries = 0
    pages = 0
    try:
        for event, element in events:
            if event == "start":
                if element.getparent() is None and not _NAMESPACE.fullmatch(
                    etree.QName(element).namespace or ""
                ):
                    raise StatementDamaged(
                        "camt.053", f"not a camt.053 document ({etree.QName(element).namespace})"
                    )
                continue
            name = _local(element)
            if name == "MsgPgntn" and _text(element, "LastPgInd") == "false":
                raise StatementDamaged(
                    "pages", "the message says more pages follow; the file holds only this one"
                )
            if name != "Stmt":
                continue
            pages += 1
            page = _page(element, pages, entries)
            entries += len(element.findall(_path("Ntry")))
            element.clear(keep_tail=False)
            yield page
    except etree.XMLSyntaxError as exc:
        raise StatementDamaged("xml", str(exc)) from None


def _page(statement: etree._Element, number: int, entries_before: int) -> Page:
    where = f"Stmt {number}"
    account = _first(statement, "Acct/Id/IBAN", "Acct/Id/Othr/Id")
    if account is None:
        raise StatementDamaged("camt.053", f"{where} names no account")
    opening = closing = None
    currency = None
    for balance in statement.findall(_path("Bal")):
        code = _text(balance, "Tp/CdOrPrtry/Cd")
        amount_element = balance.find(_path("Amt"))
        if amount_element is None:
            raise StatementDamaged("camt.053", f"{where}: a balance without Amt")
        amount = signed(
            _direction(_text(balance, "CdtDbtInd"), f"{where} {code}"),
            _amount(amount_element.text, f"{where} {code}"),
        )
        currency = currency or amount_element.get("Ccy")
        on = _day(balance, "Dt", f"{where} {code}")
        if code in _OPENING and (opening is None or (code != "ITBD" and not opening.final)):
            opening = Balance(amount, on, _OPENING[code])
        if code in _CLOSING and (closing is None or not closing.final):
            closing = Balance(amount, on, _CLOSING[code])
    if opening is None or closing is None or currency is None:
        raise StatementDamaged("balance", f"{where} lacks an opening (OPBD/PRCD) or closing (CLBD) balance")
    entries = statement.findall(_path("Ntry"))
    rows: list[CanonicalRow] = []
    for position, entry in enumerate(entries, entries_before + 1):
        rows.extend(_rows(entry, f"entry-{position}", where, currency))
    _check_summary(statement, entries, where)
    sequence = _text(statement, "ElctrncSeqNb")
    return Page(
        where=where,
        sequence=int(sequence) if sequence and sequence.isdigit() else None,
        account=account,
        currency=currency,
        opening=opening,
        closing=closing,
        rows=rows,
    )


def _check_summary(statement: etree._Element, entries: list[etree._Element], where: str) -> None:
    """TxsSummry's counts and sums, where the statement carries them, against its entries."""
    amounts = {"C": [], "D": []}  # type: dict[str, list[Decimal]]
    for entry in entries:
        amounts[_direction(_text(entry, "CdtDbtInd"), "an entry")].append(
            _amount(_text(entry, "Amt"), "Ntry/Amt")
        )
    every = amounts["C"] + amounts["D"]
    net = sum(amounts["C"], Decimal(0)) - sum(amounts["D"], Decimal(0))
    said_net = _text(statement, "TxsSummry/TtlNtries/TtlNetNtry/Amt") or _text(
        statement, "TxsSummry/TtlNtries/TtlNetNtryAmt"
    )
    checks = [
        ("TtlNtries", every),
        ("TtlCdtNtries", amounts["C"]),
        ("TtlDbtNtries", amounts["D"]),
    ]
    for group, found in checks:
        count = _text(statement, f"TxsSummry/{group}/NbOfNtries")
        if count is not None and count != str(len(found)):
            raise StatementDamaged(
                "summary", f"{where}: {group}/NbOfNtries says {count}, the entries are {len(found)}"
            )
        total = _text(statement, f"TxsSummry/{group}/Sum")
        if total is not None and _amount(total, f"{group}/Sum") != sum(found, Decimal(0)):
            raise StatementDamaged(
                "summary",
                f"{where}: {group}/Sum says {total}, the entries add up to {sum(found, Decimal(0))}",
            )
    if said_net is not None:
        indicator = (
            _first(statement, "TxsSummry/TtlNtries/TtlNetNtry/CdtDbtInd", "TxsSummry/TtlNtries/CdtDbtInd")
            or "CRDT"
        )
        if signed(_direction(indicator, "TtlNtries"), _amount(said_net, "TtlNetNtry")) != net:
            raise StatementDamaged(
                "summary", f"{where}: the net total says {said_net} {indicator}, the entries make {net}"
            )


def _rows(entry: etree._Element, position_key: str, where: str, currency: str) -> list[CanonicalRow]:
    direction = _direction(_text(entry, "CdtDbtInd"), "an entry")
    amount_element = entry.find(_path("Amt"))
    amount = _amount(None if amount_element is None else amount_element.text, f"{where} Ntry/Amt")
    if amount_element is not None and amount_element.get("Ccy") not in (None, currency):
        raise StatementDamaged(
            "currency", f"{where}: an entry in {amount_element.get('Ccy')}, not {currency}"
        )
    key = _first(entry, "AcctSvcrRef", "NtryRef") or position_key
    booked = _booked(entry, f"{where} entry {key}")
    details = _fields(entry, "Ntry", {}, skip="NtryDtls")
    transactions = entry.findall(_path("NtryDtls/TxDtls"))
    batch_count = _text(entry, "NtryDtls/Btch/NbOfTxs")
    if batch_count is not None and transactions and batch_count != str(len(transactions)):
        raise StatementDamaged(
            "batch", f"{where} entry {key}: Btch/NbOfTxs says {batch_count}, TxDtls are {len(transactions)}"
        )
    split = len(transactions) > 1 and all(_transaction_amount(detail) is not None for detail in transactions)
    if not split:
        detail = transactions[0] if transactions else None
        every = details if detail is None else _fields(detail, "TxDtls", dict(details))
        return [_row(key, booked, direction, amount, entry, detail, every)]
    rows = []
    total = Decimal(0)
    for n, detail in enumerate(transactions, 1):
        own = _text(detail, "Refs/AcctSvcrRef")
        detail_direction = _direction(_text(detail, "CdtDbtInd") or _text(entry, "CdtDbtInd"), "a TxDtls")
        detail_amount = _amount(_transaction_amount(detail), f"{where} entry {key} TxDtls/Amt")
        total += signed(detail_direction, detail_amount)
        every = _fields(detail, "TxDtls", dict(details))
        rows.append(_row(own or f"{key}/{n}", booked, detail_direction, detail_amount, entry, detail, every))
    if total != signed(direction, amount):
        raise StatementDamaged(
            "batch",
            f"{where} entry {key}: its TxDtls add up to {total}, the entry is {signed(direction, amount)}",
        )
    return rows


def _transaction_amount(detail: etree._Element) -> str | None:
    return _first(detail, "Amt", "AmtDtls/TxAmt/Amt")


def _row(
    key: str,
    booked: datetime,
    direction: Literal["C", "D"],
    amount: Decimal,
    entry: etree._Element,
    detail: etree._Element | None,
    details: dict[str, str],
) -> CanonicalRow:
    # The other party: the debtor of money received, the creditor of money paid.
    party = "Dbtr" if direction == "C" else "Cdtr"
    reference = None if detail is None else _text(detail, "Refs/EndToEndId")
    name = account = memo = None
    if detail is not None:
        name = _first(detail, f"RltdPties/{party}/Nm", f"RltdPties/{party}/Pty/Nm")
        account = _first(detail, f"RltdPties/{party}Acct/Id/IBAN", f"RltdPties/{party}Acct/Id/Othr/Id")
        remittance = [
            line.text.strip()
            for line in detail.findall(_path("RmtInf/Ustrd"))
            if line.text and line.text.strip()
        ]
        memo = " ".join(remittance) or _first(detail, "RmtInf/Strd/CdtrRefInf/Ref", "AddtlTxInf")
    return CanonicalRow(
        serial_no=key,
        traded_at=booked,
        direction=direction,
        amount=amount,
        reference=None if reference in _NO_REFERENCE else reference,
        counterparty_account=account,
        counterparty_name=name,
        memo=memo or _text(entry, "AddtlNtryInf"),
        details=details,
    )
