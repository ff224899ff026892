"""Statements larger than every buffer: a read chunk, a records block, an insert batch; both databases."""

from __future__ import annotations

import hashlib
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bankrecon.models import ArchiveRef, PersistRequest, StatementKey
from bankrecon.sources.refbank.decoding import decode_archive
from bankrecon.sources.refbank.format import _CHUNK_BYTES
from bankrecon.sources.refbank.simulator.generator import generate_statement
from bankrecon.statements.common import CHINA_STANDARD_TIME, ArchiveLimits, StatementDamaged
from bankrecon.store.archive import archive_path
from bankrecon.store.db import make_engine
from bankrecon.store.persistence import LOAD_BLOCK_CHARS, load_statement, save_statement
from bankrecon.store.schema import prepare_schema
from tests.harness import ACCOUNT, BILL_DATE

# Two parts of ~1.2 MB of text each (over a read chunk), and records over four load blocks
# (each a COPY write or an insert batch).
LINES = 24_000
PARTS = 2
KEY = StatementKey(account_no=ACCOUNT, bill_date=BILL_DATE)


def _store(data_dir: Path, data: bytes) -> ArchiveRef:
    sha256 = hashlib.sha256(data).hexdigest()
    path = archive_path(data_dir, sha256)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return ArchiveRef(sha256=sha256, size=len(data), file_name="big.zip")


def test_the_sizes_really_exceed_the_buffers() -> None:
    statement = generate_statement(ACCOUNT, BILL_DATE, seed=5, lines=LINES, parts=PARTS)
    part_bytes = [len(text.encode("gb18030")) for text in statement.part_texts("\r\n")]
    assert min(part_bytes) > _CHUNK_BYTES
    # The records file holds about as many characters as the statement's text has bytes.
    assert sum(part_bytes) > 4 * LOAD_BLOCK_CHARS


def test_a_large_statement_loads_exactly(tmp_path: Path, database_url: str) -> None:
    statement = generate_statement(ACCOUNT, BILL_DATE, seed=5, lines=LINES, parts=PARTS)
    archive = _store(tmp_path, statement.to_zip_bytes(line_ending="\r\n"))
    engine = make_engine(database_url)
    prepare_schema(engine)

    decoded = decode_archive(tmp_path, KEY, archive, ArchiveLimits(), "CNY")
    request = PersistRequest(
        statement=KEY,
        bank_code="0000",
        totals=decoded.totals,
        records_file=decoded.records_file,
        source_sha256=archive.sha256,
        fetched_at=datetime.now(UTC),
    )
    result = save_statement(engine, tmp_path, request)
    stored, rows = load_statement(engine, KEY)

    assert result.written and result.transaction_count == LINES
    assert not (tmp_path / decoded.records_file).exists()
    assert stored is not None
    assert (stored.transaction_count, stored.opening_balance, stored.closing_balance) == (
        LINES,
        statement.opening_balance,
        statement.closing_balance,
    )
    expected = [
        (
            seq,
            t.serial_no,
            datetime.combine(
                BILL_DATE,
                datetime.strptime(t.trade_time, "%H%M%S").time(),
                CHINA_STANDARD_TIME,
            ),
            t.direction,
            str(t.amount),
            str(t.balance_after),
            t.counterparty_account or None,
            t.counterparty_name or None,
            t.memo or None,
        )
        for seq, t in enumerate(statement.transactions(), start=1)
    ]
    assert [
        (
            r.seq,
            r.serial_no,
            r.traded_at,
            r.direction,
            str(r.amount),
            str(r.balance_after),
            r.counterparty_account,
            r.counterparty_name,
            r.memo,
        )
        for r in rows
    ] == expected
    engine.dispose()


@pytest.mark.parametrize("where", [2, LINES // PARTS - 5_000, LINES // PARTS])
def test_a_serial_repeated_far_away_is_found_at_its_line(tmp_path: Path, where: int) -> None:
    statement = generate_statement(ACCOUNT, BILL_DATE, seed=6, lines=LINES, parts=PARTS)
    first, second = (text.split("\n") for text in statement.part_texts())
    serial = first[1].split("|")[3]  # part 1's first detail line
    fields = second[where - 1].split("|")
    fields[3] = serial
    second[where - 1] = "|".join(fields)
    path = tmp_path / "dup.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a_001.txt", "\n".join(first).encode("gb18030"))
        archive.writestr("a_002.txt", "\n".join(second).encode("gb18030"))
    archive_ref = _store(tmp_path, path.read_bytes())

    with pytest.raises(StatementDamaged) as caught:
        decode_archive(tmp_path, KEY, archive_ref, ArchiveLimits(), "CNY")

    assert (caught.value.rule, caught.value.part, caught.value.line) == (
        "rule 6 (serial_no unique)",
        "2 (a_002.txt)",
        where,
    )
    assert sorted((tmp_path / "records").iterdir()) == []
