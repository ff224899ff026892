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
from datetime import date, timedelta
from decimal import Decimal
from itertools import islice
from typing import cast

import psycopg
from sqlalchemy import BigInteger, Connection, Date, String, bindparam, insert, select, text

from bankrecon.recon.config import SqlLedger
from bankrecon.recon.fingerprint import LinesFingerprint, sql_fingerprint
from bankrecon.recon.ledger import (
    DIRECTIONS,
    FEE_QUANTUM,
    LedgerError,
    LedgerLine,
    day_start,
    previous_day_tail_start,
)
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


# The ledger query's columns, by PostgreSQL type, that the database stages as they are.
_TEXT_TYPES = {"text", "varchar", "bpchar"}
_NUMBER_TYPES = {"numeric", "int2", "int4", "int8"}
# A time without a zone is China Standard Time, the channels' own (as ledger._moment says).
_TIMES = {"timestamptz": "q.occurred_at", "timestamp": "q.occurred_at AT TIME ZONE INTERVAL '+08:00'"}


def _query_line_sql(query: str, types: dict[str, str]) -> str:
    """The query's rows as ledger lines, still unchecked: ``direction`` NULL where it is no direction."""
    direction = " ".join(f"WHEN '{word}' THEN '{letter}'" for word, letter in DIRECTIONS.items())
    fee = "q.fee" if "fee" in types else "CAST(NULL AS NUMERIC)"
    return f"""
    SELECT ROW_NUMBER() OVER () AS row_no, btrim(q.reference) AS reference, q.direction AS direction_given,
           CASE lower(btrim(q.direction)) {direction} END AS direction, q.amount, {fee} AS fee,
           {_TIMES[types["occurred_at"]]} AS occurred_at, btrim(q.channel) AS channel
    FROM ({query}) q"""


def stage_ledger_query(
    conn: Connection,
    day: date,
    cutoff_seconds: int,
    source: SqlLedger,
    account_no: str,
    ledger_channel: str | None,
) -> LinesFingerprint | None:
    """Stage a ledger query of this same PostgreSQL database inside it, no line passing through
    the worker; None (nothing staged) when its columns are of types only ``ledger_lines`` reads."""
    params = {"account_no": account_no, "day": day}
    described = conn.execute(text(f"SELECT * FROM ({source.query}) q LIMIT 0"), params).cursor.description
    # psycopg describes each column's type by its oid.
    oids: dict[str, int] = {name: cast(int, type_code) for name, type_code, *_ in described}
    names: dict[int, str] = dict(
        conn.execute(
            text("SELECT oid, typname FROM pg_type WHERE oid = ANY(:oids)"), {"oids": list(oids.values())}
        ).all()
    )
    types = {column: names.get(oid, "") for column, oid in oids.items()}
    expected = {
        "reference": _TEXT_TYPES,
        "direction": _TEXT_TYPES,
        "channel": _TEXT_TYPES,
        "amount": _NUMBER_TYPES,
        "occurred_at": set(_TIMES),
    }
    if (
        any(types.get(column) not in kinds for column, kinds in expected.items())
        or types.get("fee", "numeric") not in _NUMBER_TYPES
    ):
        return None
    ledger_stage.drop(conn, checkfirst=True)
    ledger_stage.create(conn)
    previous = date.fromordinal(day.toordinal() - 1)
    tail_start = previous_day_tail_start(day, cutoff_seconds)
    staged = 0
    for ledger_day, since, late_from in [
        (previous, tail_start, tail_start),
        (day, None, day_start(day) + timedelta(seconds=86_400 - cutoff_seconds)),
    ]:
        lines = _query_line_sql(source.query, types)
        day_params = {"account_no": account_no, "day": ledger_day}
        bad = conn.execute(
            text(f"""
            SELECT row_no, CASE
                WHEN reference IS NULL OR reference = '' THEN 'no reference'
                WHEN direction IS NULL THEN 'direction ' || COALESCE(quote_literal(direction_given), 'None')
                                            || ' is none of C, D, payment, refund'
                WHEN amount IS NULL THEN 'amount None is not a number'
                WHEN amount <> ROUND(amount, 2)
                     THEN 'amount ' || quote_literal(CAST(amount AS TEXT)) || ' has more than 2 decimals'
                WHEN amount <= 0
                     THEN 'amount ' || amount || ' is not positive (a refund says so in its direction)'
                WHEN fee <> ROUND(fee, 5)
                     THEN 'fee ' || quote_literal(CAST(fee AS TEXT)) || ' has more than 5 decimals'
                WHEN occurred_at IS NULL THEN 'occurred_at None is not a time (YYYY-MM-DD HH:MM:SS)'
                END AS problem
            FROM ({lines}) x
            WHERE reference IS NULL OR reference = '' OR direction IS NULL OR amount IS NULL
               OR amount <> ROUND(amount, 2) OR amount <= 0 OR fee <> ROUND(fee, 5) OR occurred_at IS NULL
            LIMIT 1"""),
            day_params,
        ).first()
        if bad is not None:
            raise LedgerError(f"the ledger query's row {bad.row_no}: {bad.problem}")
        inserted = conn.execute(
            text(f"""
            INSERT INTO recon_ledger_stage
                (line_no, ledger_day, late, reference, direction, amount, fee, occurred_at, channel)
            SELECT :staged + ROW_NUMBER() OVER (), CAST(:day AS DATE), occurred_at >= :late_from,
                   reference, direction, ROUND(amount, 2), ROUND(fee, 5), occurred_at, channel
            FROM ({lines}) x
            WHERE (CAST(:since AS TIMESTAMPTZ) IS NULL OR occurred_at >= :since AND occurred_at < :day_end)
              AND (CAST(:ledger_channel AS TEXT) IS NULL OR channel = :ledger_channel)"""),
            day_params
            | {
                "staged": staged,
                "late_from": late_from,
                "since": since,
                "day_end": day_start(day),
                "ledger_channel": ledger_channel,
            },
        )
        staged += inserted.rowcount
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
