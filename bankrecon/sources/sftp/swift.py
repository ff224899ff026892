"""SWIFT MT940 statements: balances and ``:61:`` lines read with the ``mt-940`` package (imported as
``mt940``), the ``:86:`` narratives read here from the file's own lines.

A file may hold several messages (``:20:`` ... ``-``): the pages of one statement, numbered
by ``:28C:`` (statement/sequence), opening with ``:60F:`` or ``:60M:`` and closing with
``:62M:`` or ``:62F:``.

German banks' structured ``:86:`` (DFÜ-Abkommen: a three-digit transaction code, then ``?NN``
subfields: ``?00`` posting text, ``?10`` prima nota, ``?20``-``?29`` and ``?60``-``?63``
remittance information, ``?30`` BIC, ``?31`` account, ``?32``/``?33`` name, ``?34`` return
reason) wraps at 65 characters anywhere, even inside a ``?NN`` mark, so its lines are joined
with nothing before it is split. Within the remittance information a subfield that starts
with a keyword (``EREF+`` end-to-end id, ``KREF+`` customer reference, ``SVWZ+`` purpose, ...)
starts that part; the next subfields continue it. The package's own reading of ``:86:`` is
switched off: it joins wrapped lines with line breaks and merges ``KREF+`` into the ``:61:``
customer reference.

The package reads a file whole; a day's statement of one account is small enough for that
(the client refuses files over MAX_STATEMENT_BYTES).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import mt940

from bankrecon.sources.sftp.pages import Balance, Page, booking_time, stored_text
from bankrecon.statements.canonical import CanonicalRow
from bankrecon.statements.common import StatementDamaged

# A :61: mark's direction on the account: reversing a credit (RC) is a debit, a debit (RD) a credit.
_DIRECTIONS: dict[str, Literal["C", "D"]] = {"C": "C", "D": "D", "RC": "D", "RD": "C"}
_NO_REFERENCE = {"", "NONREF", "NOTPROVIDED"}
_TAG = re.compile(r":([0-9]{2}[A-Z]?):")
_STRUCTURED = re.compile(r"([0-9]{3})\?[0-9]{2}")
_SUBFIELD = re.compile(r"\?([0-9]{2})")
_REMITTANCE = {f"{n:02}" for n in (*range(20, 30), *range(60, 64))}
# The DFÜ-Abkommen's keywords, and MTLG: (a message of the bank's own, seen in Dresdner Bank's files),
# which would otherwise run on inside the end-to-end id or customer reference before it.
_KEYWORDS = (
    "EREF+",
    "KREF+",
    "MREF+",
    "CRED+",
    "DEBT+",
    "COAM+",
    "OAMT+",
    "SVWZ+",
    "ABWA+",
    "ABWE+",
    "MTLG:",
)
# The package's fields of a :61: line that a row keeps in its details; its amount is signed its own way.
_SKIPPED = {"transaction_details", "guessed_entry_date", "amount"}


def read_mt940(path: Path) -> Iterator[Page]:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        # German banks write MT940 in ISO 8859-1 when not in UTF-8.
        text = raw.decode("latin-1")
    text = text.removeprefix("\ufeff")
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    statement_lines = _statement_lines(lines)
    try:
        messages = mt940.parse_statements(
            io.BytesIO(text.encode("utf-8")),
            encoding="utf-8",
            processors={"post_transaction_details": []},
        )
    except (ValueError, RuntimeError, KeyError, TypeError, AttributeError) as exc:
        raise StatementDamaged(
            "mt940", f"not an MT940 statement: {' '.join(str(exc).split())[:200]}"
        ) from None
    if sum(len(message) for message in messages) != len(statement_lines):
        raise StatementDamaged("mt940", "a :61: statement line was not read as a transaction")
    narratives = iter(statement_lines)
    for index, message in enumerate(messages, 1):
        yield _page(message, index, narratives)


def _statement_lines(lines: list[str]) -> list[tuple[int, str | None]]:
    """Each :61: line's number in the file, and the :86: right after it, its lines joined with nothing."""
    numbers: list[int] = []
    narratives: dict[int, list[str]] = {}  # by the :61: line's position in numbers
    tag = None
    into: list[str] | None = None  # the narrative whose continuation lines come next
    for number, line in enumerate(lines, 1):
        mark = _TAG.match(line)
        if mark is not None:
            previous, tag, into = tag, mark.group(1), None
            if tag == "61":
                numbers.append(number)
            elif tag == "86" and previous == "61":
                into = narratives[len(numbers) - 1] = [line[mark.end() :]]
        elif line == "-" or line.startswith("-}"):
            tag = into = None
        elif into is not None:
            into.append(line)
    return [(number, "".join(narratives[n]) if n in narratives else None) for n, number in enumerate(numbers)]


def _page(
    message: mt940.models.Transactions, index: int, narratives: Iterator[tuple[int, str | None]]
) -> Page:
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
    statement_number = data.get("statement_number")
    return Page(
        where=where,
        sequence=int(sequence) if sequence and str(sequence).isdigit() else None,
        account=str(account),
        currency=currency,
        opening=opening[0],
        closing=closing[0],
        rows=[_row(transaction.data, *next(narratives), where, currency) for transaction in message],
        summary={} if not statement_number else {"statement_number": str(statement_number)},
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


def _subfields(narrative: str) -> dict[str, str]:
    """A :86: narrative by its parts: a structured one's code, ``?NN`` subfields and keyword parts."""
    structured = _STRUCTURED.match(narrative)
    if structured is None:
        return {"transaction_details": narrative}
    fields = {"transaction_code": structured.group(1)}
    pieces = _SUBFIELD.split(narrative[3:])
    remittance: list[str] = []
    for number, value in zip(pieces[1::2], pieces[2::2], strict=True):
        name, n = f"?{number}", 2
        while name in fields:
            name, n = f"?{number}[{n}]", n + 1
        fields[name] = value
        if number in _REMITTANCE:
            remittance.append(value)
    part = None
    for value in remittance:
        keyword = next((keyword for keyword in _KEYWORDS if value.startswith(keyword)), None)
        if keyword is not None:
            part = keyword
            value = value[len(keyword) :]
        if part is not None:
            fields[part] = fields.get(part, "") + value
    return fields


def _reference(customer_reference: str, parts: dict[str, str]) -> str | None:
    """The end-to-end id, else the customer reference (which ``KREF+`` on the :61: line leaves to :86:)."""
    end_to_end = parts.get("EREF+", "").strip()
    if end_to_end not in _NO_REFERENCE:
        return end_to_end
    if customer_reference.startswith("KREF+"):
        customer_reference = parts.get("KREF+", "").strip() or customer_reference.removeprefix("KREF+")
    return None if customer_reference in _NO_REFERENCE else customer_reference


def _row(data: dict[str, Any], line: int, narrative: str | None, where: str, currency: str) -> CanonicalRow:
    status = data.get("status")
    direction = _DIRECTIONS.get(str(status))
    if direction is None:
        raise StatementDamaged("mt940", f"{where}: mark {status} is none of C, D, RC, RD", line=line)
    if data.get("currency") not in (None, currency):
        raise StatementDamaged(
            "currency", f"{where}: a line in {data.get('currency')}, not {currency}", line=line
        )
    bank_reference = stored_text(data.get("bank_reference") or "").strip()
    parts = {} if narrative is None else _subfields(stored_text(narrative))
    party = (parts.get("?32", "") + parts.get("?33", "")).strip()
    remittance = "".join(
        value for name, value in parts.items() if name[:1] == "?" and name[1:3] in _REMITTANCE
    )
    memo = parts.get("SVWZ+") or remittance or parts.get("transaction_details")
    day = data.get("entry_date") or data["date"]
    details = {
        name: stored_text(str(value))
        for name, value in data.items()
        if name not in _SKIPPED and value not in (None, "")
    }
    details["amount"] = str(abs(data["amount"].amount))
    return CanonicalRow(
        serial_no=bank_reference if bank_reference not in _NO_REFERENCE else f"line-{line}",
        traded_at=booking_time(day),
        direction=direction,
        amount=abs(data["amount"].amount),
        reference=_reference(stored_text(data.get("customer_reference") or "").strip(), parts),
        counterparty_account=parts.get("?31", "").strip() or None,
        counterparty_name=party or None,
        memo=memo.strip() if memo and memo.strip() else None,
        details=details | {name: value for name, value in parts.items() if value},
    )
