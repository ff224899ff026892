"""SWIFT MT940 statements, read with the ``mt-940`` package (imported as ``mt940``).

A file may hold several messages (``:20:`` ... ``-``): the pages of one statement, numbered
by ``:28C:`` (statement/sequence), opening with ``:60F:`` or ``:60M:`` and closing with
``:62M:`` or ``:62F:``. German banks' ``:86:`` structured subfields (``?00`` posting text,
``?20``-``?29`` remittance information with ``EREF+``/``SVWZ+``, ``?30`` BIC, ``?31`` account,
``?32``/``?33`` name) are read by the package's default processors.

The package reads a file whole; a day's statement of one account is small enough for that
(the client refuses files over MAX_STATEMENT_BYTES).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import mt940
from mt940.options import Options

from bankrecon.sources.sftp.pages import Balance, Page, booking_time
from bankrecon.statements.canonical import CanonicalRow
from bankrecon.statements.common import StatementDamaged

# A :61: mark's direction on the account: reversing a credit (RC) is a debit, a debit (RD) a credit.
_DIRECTIONS: dict[str, Literal["C", "D"]] = {"C": "C", "D": "D", "RC": "D", "RD": "C"}
_NO_REFERENCE = {"", "NONREF"}


def read_mt940(path: Path) -> Iterator[Page]:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        # German banks write MT940 in ISO 8859-1 when not in UTF-8.
        text = raw.decode("latin-1")
    text = text.removeprefix("\ufeff")
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    statement_lines = [number for number, line in enumerate(lines, 1) if line.startswith(":61:")]
    try:
        messages = mt940.parse_statements(
            io.BytesIO(text.encode("utf-8")),
            encoding="utf-8",
            options=Options(applicant_iban=True, merge_keeps_values=True),
        )
    except (ValueError, RuntimeError, KeyError, TypeError, AttributeError) as exc:
        raise StatementDamaged(
            "mt940", f"not an MT940 statement: {' '.join(str(exc).split())[:200]}"
        ) from None
    if sum(len(message) for message in messages) != len(statement_lines):
        raise StatementDamaged("mt940", "a :61: statement line was not read as a transaction")
    line_numbers = iter(statement_lines)
    for index, message in enumerate(messages, 1):
        yield _page(message, index, line_numbers)


def _page(message: mt940.models.Transactions, index: int, line_numbers: Iterator[int]) -> Page:
    data = message.data
    where = f"message {index}"
    opening = _balance(data, where, "opening", ":60F:", ":60M:")
    closing = _balance(data, where, "closing", ":62F:", ":62M:")
    account = data.get("account_identification")
    if not account:
        raise StatementDamaged("mt940", f"{where} has no :25: account")
    sequence = data.get("sequence_number")
    currency = opening[1]
    if closing[1] != currency:
        raise StatementDamaged("currency", f"{where} opens in {currency} and closes in {closing[1]}")
    return Page(
        where=where,
        sequence=int(sequence) if sequence and str(sequence).isdigit() else None,
        account=str(account),
        currency=currency,
        opening=opening[0],
        closing=closing[0],
        rows=[_row(transaction.data, next(line_numbers), where, currency) for transaction in message],
    )


def _balance(
    data: dict[str, Any], where: str, which: str, final_tag: str, intermediate_tag: str
) -> tuple[Balance, str]:
    final = data.get(f"final_{which}_balance")
    balance = final if final is not None else data.get(f"intermediate_{which}_balance")
    if balance is None:
        raise StatementDamaged("mt940", f"{where} has no {final_tag} or {intermediate_tag} balance")
    return Balance(
        amount=balance.amount.amount, on=balance.date, final=final is not None
    ), balance.amount.currency


def _row(data: dict[str, Any], line: int, where: str, currency: str) -> CanonicalRow:
    status = data.get("status")
    direction = _DIRECTIONS.get(str(status))
    if direction is None:
        raise StatementDamaged("mt940", f"{where}: mark {status} is none of C, D, RC, RD", line=line)
    if data.get("currency") not in (None, currency):
        raise StatementDamaged(
            "currency", f"{where}: a line in {data.get('currency')}, not {currency}", line=line
        )
    bank_reference = (data.get("bank_reference") or "").strip()
    customer_reference = (data.get("customer_reference") or "").strip()
    day = data.get("entry_date") or data["date"]
    return CanonicalRow(
        serial_no=bank_reference if bank_reference not in _NO_REFERENCE else f"line-{line}",
        traded_at=booking_time(day),
        direction=direction,
        amount=abs(data["amount"].amount),
        reference=(
            customer_reference
            if customer_reference not in _NO_REFERENCE
            else data.get("end_to_end_reference")
        ),
        counterparty_account=data.get("applicant_iban"),
        counterparty_name=data.get("applicant_name"),
        memo=data.get("purpose"),
        details={name: str(value) for name, value in data.items() if value not in (None, "")},
    )
