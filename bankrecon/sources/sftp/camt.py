"""ISO 20022 camt.053 (BkToCstmrStmt) statements, read with lxml's iterparse one ``Stmt`` at a time.

Elements are found by local name, so every version of the namespace
``urn:iso:std:iso:20022:tech:xsd:camt.053.001.NN`` reads alike (.001.02 and .001.08 are tested).
Each ``Stmt`` is a page, numbered by ``StmtPgntn`` (``PgNb``, ``LastPgInd``; .001.03 on) where
present. ``ElctrncSeqNb`` and ``LglSeqNb`` are the bank's running numbers of the statements it
sent, not page numbers: they go to the statement's summary. A message that is not the first
page, or says it is not the last (``GrpHdr/MsgPgntn``), is not the whole statement.

Rows: an entry (``Ntry``) is a row. Its ``TxDtls`` become a row each only when they are the
whole batch: more than one, each with an amount in the statement's currency, adding up to the
entry, as many as ``Btch/NbOfTxs`` says. Otherwise (a batch booked as one amount, details
withheld) the entry stays one row, its batch count in its details. A row's key is its
``AcctSvcrRef``, else the entry's ``NtryRef``, else ``entry-N`` (the entry's position in the
file); a ``TxDtls`` row takes its own ``AcctSvcrRef`` when no other ``TxDtls`` of the entry
repeats it, else the entry's key with ``/n`` (its position in the entry).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Literal

from lxml import etree

from bankrecon.sources.sftp.pages import Balance, Page, booking_time, signed, stored_text
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
    return stored_text(found.text.strip())


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


def _fields(element: etree._Element, prefix: str, into: dict[str, str], skip: str = "") -> dict[str, str]:
    """Every text and attribute under ``element`` by its path of local names, but ``skip``'s.

    The n-th of repeated siblings (from the second) is ``name[n]``, so each path names one element.
    """
    seen: dict[str, int] = {}
    for child in element:
        if not isinstance(child.tag, str) or _local(child) == skip:
            continue
        local = _local(child)
        seen[local] = seen.get(local, 0) + 1
        step = local if seen[local] == 1 else f"{local}[{seen[local]}]"
        name = f"{prefix}/{step}" if prefix else step
        if child.text and child.text.strip():
            into[name] = stored_text(child.text.strip())
        for attribute, value in child.attrib.items():
            into[f"{name}@{attribute}"] = stored_text(value)
        _fields(child, name, into, skip)
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
            if name == "MsgPgntn":
                _check_message_page(element)
            if name != "Stmt":
                continue
            pages += 1
            page = _page(element, pages, entries)
            entries += len(element.findall(_path("Ntry")))
            element.clear(keep_tail=False)
            yield page
    except etree.XMLSyntaxError as exc:
        raise StatementDamaged("xml", str(exc)) from None


def _check_message_page(pagination: etree._Element) -> None:
    """A statement split over several messages (files) is not whole in one of them."""
    number = _text(pagination, "PgNb")
    if number is not None and number.isdigit() and int(number) != 1:
        raise StatementDamaged(
            "pages", f"the message is page {number} of its statement; the pages before it are in other files"
        )
    if _text(pagination, "LastPgInd") == "false":
        raise StatementDamaged("pages", "the message says more pages follow; the file holds only this one")


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
    page_number = _text(statement, "StmtPgntn/PgNb")
    last_page = _text(statement, "StmtPgntn/LastPgInd")
    return Page(
        where=where,
        sequence=int(page_number) if page_number and page_number.isdigit() else None,
        account=account,
        currency=currency,
        opening=opening,
        closing=closing,
        rows=rows,
        last=None if last_page is None else last_page == "true",
        summary={
            name: value
            for name in ("ElctrncSeqNb", "LglSeqNb")
            if (value := _text(statement, name)) is not None
        },
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
    what = f"{where} entry {key}"
    booked = _booked(entry, what)
    details = _fields(entry, "Ntry", {}, skip="TxDtls")
    transactions = entry.findall(_path("NtryDtls/TxDtls"))
    parts = _batch(entry, transactions, signed(direction, amount), currency, what)
    if parts is None:
        every = dict(details)
        for n, detail in enumerate(transactions, 1):
            _fields(detail, "TxDtls" if n == 1 else f"TxDtls[{n}]", every)
        # Several TxDtls in one row name no one party: the row keeps the entry's own text.
        only = transactions[0] if len(transactions) == 1 else None
        return [_row(key, booked, direction, amount, entry, only, every)]
    own_keys = [_text(detail, "Refs/AcctSvcrRef") for detail in transactions]
    rows = []
    for n, (detail, own, (part_direction, part_amount)) in enumerate(
        zip(transactions, own_keys, parts, strict=True), 1
    ):
        # A reference the entry's TxDtls repeat keys none of them: their position does.
        part_key = own if own and own_keys.count(own) == 1 else f"{key}/{n}"
        every = _fields(detail, "TxDtls", dict(details))
        rows.append(_row(part_key, booked, part_direction, part_amount, entry, detail, every))
    return rows


def _batch(
    entry: etree._Element, transactions: list[etree._Element], booked: Decimal, currency: str, what: str
) -> list[tuple[Literal["C", "D"], Decimal]] | None:
    """Each TxDtls's direction and amount when they are the entry's whole batch, else None."""
    if len(transactions) < 2:
        return None
    counts = [(count.text or "").strip() for count in entry.findall(_path("NtryDtls/Btch/NbOfTxs"))]
    if counts and sum(int(count) if count.isdigit() else -1 for count in counts) != len(transactions):
        return None
    parts: list[tuple[Literal["C", "D"], Decimal]] = []
    for detail in transactions:
        amount = _transaction_amount(detail)
        if amount is None or amount.get("Ccy") not in (None, currency):
            return None
        direction = _direction(_text(detail, "CdtDbtInd") or _text(entry, "CdtDbtInd"), "a TxDtls")
        parts.append((direction, _amount((amount.text or "").strip(), f"{what} TxDtls/Amt")))
    if sum((signed(direction, amount) for direction, amount in parts), Decimal(0)) != booked:
        return None
    return parts


def _transaction_amount(detail: etree._Element) -> etree._Element | None:
    for path in ("Amt", "AmtDtls/TxAmt/Amt"):
        found = detail.find(_path(path))
        if found is not None:
            return found
    return None


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
