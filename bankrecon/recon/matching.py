"""Matching one channel account's day: the ledger staged, then one SQL statement writes every item.

The same statement runs on PostgreSQL and SQLite (window functions): the lines never pass
through the worker, whose memory stays flat however long the day is. Both sides' lines go
through one sort by (reference, direction), and each line gets its pair's sums by window,
rather than summing each side apart and joining the sums back to the lines.

The rules, per (reference, direction) -- a payment and its refunds are matched apart:
- the ledger's lines and the channel's lines are summed; equal sums match every line, so
  one order paid in several lines and a partial refund in several lines match as a whole;
- unequal sums where the surplus on one side is exactly its repeated lines (same
  reference, direction and amount; the later ones) make those lines ``duplicate`` and
  the rest ``matched``;
- otherwise every line of both sides is ``amount_differs``; a reference on one side only
  is ``ledger_only`` or ``channel_only``;
- where the ledger records fees, the two sides' fees (of the lines that matched) may
  differ by the fee tolerance; beyond it the lines are ``amount_differs``.

Across midnight: a ledger line within the cut-off before its day's end whose
(reference, direction) the channel has not booked that day belongs to the next day's
run, which matches it against the next day's bill. Each pair is thus reported once: by
the run of the day the channel booked it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import date
from decimal import Decimal
from itertools import islice

import psycopg
from sqlalchemy import BigInteger, Connection, Date, String, bindparam, insert, select, text

from bankrecon.recon.fingerprint import LinesFingerprint, sql_fingerprint
from bankrecon.recon.ledger import FEE_QUANTUM, LedgerLine, day_start
from bankrecon.recon.tables import ledger_stage
from bankrecon.statements.common import stored_utc_text
from bankrecon.store.db import transactions

STAGE_BATCH = 10_000
# Fees are compared in hundred-thousandths, the finest the channels write.
FEE_UNITS = 100_000
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
COPY_NULL = "\\N"
_COPY = (
    "COPY recon_ledger_stage "
    "(line_no, ledger_day, late, reference, direction, amount, fee, occurred_at, channel) FROM STDIN"
)
# The fingerprinted text of a line, in SQL (PostgreSQL) as in Python (SQLite): the same for the same line.
_UTC_TEXT_SQL = "to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00:00'"
_LEDGER_LINE_SQL = (
    "CAST(ledger_day AS TEXT) || '|' || reference || '|' || direction || '|' || CAST(amount AS TEXT) || '|' "
    "|| COALESCE(CAST(ROUND(fee, 5) AS TEXT), '') || '|' || "
    + _UTC_TEXT_SQL.format("occurred_at")
    + " || '|' || channel"
)
_CHANNEL_LINE_SQL = (
    "serial_no || '|' || COALESCE(reference, '') || '|' || direction || '|' || CAST(amount AS TEXT) || '|' "
    "|| COALESCE(CAST(ROUND(fee, 5) AS TEXT), '') || '|' || " + _UTC_TEXT_SQL.format("traded_at")
)


def fee_units_sql(column: str, dialect: str) -> str:
    """An exact fee as whole hundred-thousandths: PostgreSQL's NUMERIC, SQLite's decimal text."""
    if dialect == "postgresql":
        return f"CAST(ROUND({column} * {FEE_UNITS}) AS BIGINT)"
    unsigned = f"ltrim({column}, '-')"
    point = f"instr({unsigned}, '.')"
    return (
        f"((CASE WHEN substr({column}, 1, 1) = '-' THEN -1 ELSE 1 END) * ("
        f"CAST(CASE WHEN {point} > 0 THEN substr({unsigned}, 1, {point} - 1) ELSE {unsigned} END AS INTEGER)"
        f" * {FEE_UNITS} + CASE WHEN {point} > 0 THEN "
        f"CAST(substr(substr({unsigned}, {point} + 1) || '00000', 1, 5) AS INTEGER) ELSE 0 END))"
    )


def stage_ledger(
    conn: Connection, day: date, cutoff_seconds: int, sources: Iterable[tuple[date, Iterable[LedgerLine]]]
) -> LinesFingerprint:
    """Copy the ledger lines into this connection's staging table; their fingerprint.

    ``sources`` gives each ledger day with its lines: the previous day's tail and the day itself.
    """
    ledger_stage.drop(conn, checkfirst=True)
    ledger_stage.create(conn)
    day_end_tail = day_start(day).timestamp() + 86_400 - cutoff_seconds
    fingerprint = LinesFingerprint()
    postgresql = conn.dialect.name == "postgresql"

    def staged() -> Iterator[tuple[int, date, bool, LedgerLine]]:
        number = 0
        for ledger_day, lines in sources:
            for line in lines:
                number += 1
                if not postgresql:
                    fee = "" if line.fee is None else line.fee
                    fingerprint.add(
                        f"{ledger_day}|{line.reference}|{line.direction}|{line.amount}|{fee}|"
                        f"{stored_utc_text(line.occurred_at)}|{line.channel}"
                    )
                # The previous day's lines are all its tail (read from the cut-off on).
                late = ledger_day != day or line.occurred_at.timestamp() >= day_end_tail
                yield number, ledger_day, late, line

    if not postgresql:
        _insert_stage(conn, staged())
        return fingerprint
    _copy_stage(conn, staged())
    return sql_fingerprint(conn, _LEDGER_LINE_SQL, "recon_ledger_stage", {})


def _copy_stage(conn: Connection, rows: Iterator[tuple[int, date, bool, LedgerLine]]) -> None:
    raw = conn.connection.driver_connection
    assert isinstance(raw, psycopg.Connection)
    with raw.cursor() as cursor, cursor.copy(_COPY) as copy:
        while block := list(islice(rows, STAGE_BATCH)):
            copy.write(
                "".join(
                    f"{number}\t{ledger_day}\t{'t' if late else 'f'}\t"
                    f"{line.reference.translate(_COPY_ESCAPES)}\t{line.direction}\t{line.amount}\t"
                    f"{COPY_NULL if line.fee is None else line.fee}\t{stored_utc_text(line.occurred_at)}\t"
                    f"{line.channel.translate(_COPY_ESCAPES)}\n"
                    for number, ledger_day, late, line in block
                )
            )


def _insert_stage(conn: Connection, rows: Iterator[tuple[int, date, bool, LedgerLine]]) -> None:
    while block := list(islice(rows, STAGE_BATCH)):
        conn.execute(
            insert(ledger_stage),
            [
                {
                    "line_no": number,
                    "ledger_day": ledger_day,
                    "late": late,
                    "reference": line.reference,
                    "direction": line.direction,
                    "amount": line.amount,
                    "fee": line.fee,
                    "occurred_at": line.occurred_at,
                    "channel": line.channel,
                }
                for number, ledger_day, late, line in block
            ],
        )


def statement_fingerprint(conn: Connection, account_no: str, day: date) -> LinesFingerprint:
    """The fingerprint of the channel's lines of the day: in SQL, or streamed through SQLite."""
    if conn.dialect.name == "postgresql":
        return sql_fingerprint(
            conn,
            _CHANNEL_LINE_SQL,
            "transactions WHERE account_no = :account_no AND bill_date = :day",
            {"account_no": account_no, "day": day},
        )
    fingerprint = LinesFingerprint()
    t = transactions.c
    # Per statement: Connection.execution_options would stream every later statement of the run too.
    result = conn.execute(
        select(t.serial_no, t.reference, t.direction, t.amount, t.fee, t.traded_at).where(
            t.account_no == account_no, t.bill_date == day
        ),
        execution_options={"stream_results": True, "yield_per": STAGE_BATCH},
    )
    for serial_no, reference, direction, amount, fee, traded_at in result:
        exact_fee = "" if fee is None else Decimal(str(fee)).quantize(FEE_QUANTUM)
        fingerprint.add(
            f"{serial_no}|{reference or ''}|{direction}|{amount}|{exact_fee}|{stored_utc_text(traded_at)}"
        )
    return fingerprint


def _side_sum(side: str, value: str, when: str = "") -> str:
    return f"SUM(CASE WHEN side = '{side}'{when} THEN {value} END) OVER same_pair"


def match_sql(dialect: str) -> str:
    """One pass: both sides' lines in one sort, each with its pair's sums by window."""
    return f"""
WITH booked AS (
    SELECT DISTINCT s.line_no
    FROM recon_ledger_stage s
    JOIN transactions t
      ON t.account_no = :account_no AND t.bill_date IN (:previous_day, :day)
     AND t.bill_date = s.ledger_day AND t.reference = s.reference AND t.direction = s.direction
    WHERE s.late
),
lines AS (
    SELECT 'ledger' AS side, s.reference, s.direction, s.amount, s.fee, s.occurred_at, s.line_no,
           CAST(s.line_no AS VARCHAR(20)) AS line_ref, s.ledger_day AS booked_on
    FROM recon_ledger_stage s LEFT JOIN booked b ON b.line_no = s.line_no
    WHERE CASE WHEN s.ledger_day = :day THEN (NOT s.late OR b.line_no IS NOT NULL)
               ELSE b.line_no IS NULL END
    UNION ALL
    SELECT 'channel', COALESCE(t.reference, ''), t.direction, t.amount, t.fee, t.traded_at, NULL,
           t.serial_no, :day
    FROM transactions t WHERE t.account_no = :account_no AND t.bill_date = :day
),
numbered AS (
    SELECT x.*, {fee_units_sql("x.fee", dialect)} AS fee_units,
           ROW_NUMBER() OVER (
               PARTITION BY x.reference, x.direction, x.side, x.amount
               ORDER BY x.occurred_at, x.line_no, x.line_ref
           ) AS copy_no
    FROM lines x
),
summed AS (
    SELECT n.*,
           {_side_sum("ledger", "amount")} AS ledger_total,
           {_side_sum("channel", "amount")} AS channel_total,
           {_side_sum("ledger", "amount", " AND copy_no > 1")} AS ledger_extra,
           {_side_sum("channel", "amount", " AND copy_no > 1")} AS channel_extra,
           {_side_sum("ledger", "1", " AND fee IS NOT NULL")} AS ledger_fees,
           {_side_sum("ledger", "fee_units")} AS ledger_fee_all,
           {_side_sum("ledger", "fee_units", " AND copy_no = 1")} AS ledger_fee_first,
           COALESCE({_side_sum("channel", "fee_units")}, 0) AS channel_fee_all,
           COALESCE({_side_sum("channel", "fee_units", " AND copy_no = 1")}, 0) AS channel_fee_first
    FROM numbered n
    WINDOW same_pair AS (PARTITION BY n.reference, n.direction)
),
outcomes AS (
    SELECT m.*,
           CASE WHEN m.channel_total IS NULL THEN 'ledger_only'
                WHEN m.ledger_total IS NULL THEN 'channel_only'
                WHEN m.ledger_total = m.channel_total THEN 'same'
                WHEN m.channel_extra > 0 AND m.channel_total - m.channel_extra = m.ledger_total
                     THEN 'channel_extra'
                WHEN m.ledger_extra > 0 AND m.ledger_total - m.ledger_extra = m.channel_total
                     THEN 'ledger_extra'
                ELSE 'differs' END AS outcome
    FROM summed m
),
verdicts AS (
    SELECT o.*,
           CASE WHEN o.ledger_fees > 0 AND o.outcome IN ('same', 'channel_extra', 'ledger_extra') THEN
               ABS(CASE WHEN o.outcome = 'ledger_extra'
                        THEN o.ledger_fee_first ELSE o.ledger_fee_all END
                   - CASE WHEN o.outcome = 'channel_extra'
                          THEN o.channel_fee_first ELSE o.channel_fee_all END)
           END AS fee_gap
    FROM outcomes o
)
INSERT INTO recon_items (
    run_id, account_no, recon_date, state, side, reference, direction, amount, fee, occurred_at,
    line_ref, booked_on, counterpart_total, detail
)
SELECT :run_id, :account_no, :day,
       CASE WHEN v.outcome IN ('ledger_only', 'channel_only') THEN v.outcome
            WHEN v.outcome = v.side || '_extra' AND v.copy_no > 1 THEN 'duplicate'
            WHEN v.outcome = 'differs' OR v.fee_gap > :fee_tolerance THEN 'amount_differs'
            ELSE 'matched' END,
       v.side, v.reference, v.direction, v.amount, v.fee, v.occurred_at, v.line_ref, v.booked_on,
       CASE WHEN v.side = 'ledger' THEN v.channel_total ELSE v.ledger_total END,
       CASE WHEN v.fee_gap > :fee_tolerance THEN 'fee beyond tolerance'
            WHEN v.fee_gap > 0 THEN 'fee within tolerance' END
FROM verdicts v
"""


def match_day(conn: Connection, run_id: str, account_no: str, day: date, fee_tolerance: Decimal) -> None:
    """Write every staged ledger line and every channel line of the day as an item of ``run_id``."""
    dialect = conn.dialect.name
    if dialect == "postgresql":
        # The sorts and hashes of a million-line day fit in memory; for this transaction only.
        conn.execute(text("SET LOCAL work_mem = '256MB'"))
        # Compiling the statement would cost more than it saves on a day's lines.
        conn.execute(text("SET LOCAL jit = off"))
    statement = text(match_sql(dialect)).bindparams(
        bindparam("run_id", type_=String()),
        bindparam("account_no", type_=String()),
        bindparam("day", type_=Date()),
        bindparam("previous_day", type_=Date()),
        bindparam("fee_tolerance", type_=BigInteger()),
    )
    conn.execute(
        statement,
        {
            "run_id": run_id,
            "account_no": account_no,
            "day": day,
            "previous_day": date.fromordinal(day.toordinal() - 1),
            "fee_tolerance": int(fee_tolerance * FEE_UNITS),
        },
    )
