"""Statement archives (statement-format.md; bank-api.md, "The archive"): rules, field forms, hostile zips."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bankrecon.sources.refbank.format import (
    ExpectedStatement,
    StatementSummary,
    Transaction,
    read_statement_archive,
)
from bankrecon.statements.common import CHINA_STANDARD_TIME, ArchiveLimits, StatementDamaged

ACCOUNT = "6222020000000001"
BILL_DATE = date(2026, 11, 24)
EXPECTED = ExpectedStatement(ACCOUNT, BILL_DATE, "CNY")
LIMITS = ArchiveLimits()
NAME_1 = f"{ACCOUNT}_20261124_001.txt"
NAME_2 = f"{ACCOUNT}_20261124_002.txt"

# The example of statement-format.md, line for line.
EXAMPLE = [
    "H|6222020000000001|20261124|CNY|100000.00|1|1",
    "D|20261124|093015|20261124000001|C|1500.00|101500.00|6217000000000001|上海某某科技有限公司|货款",
    "D|20261124|101200|20261124000002|D|300.50|101199.50|6217000000000002|张三|报销",
    "D|20261124|235959|20261124000003|D|2.00|101197.50|||手续费",
    "T|3|1|2|1500.00|302.50|101197.50",
]
EXAMPLE_TRANSACTIONS = [
    Transaction(
        "20261124000001",
        datetime(2026, 11, 24, 9, 30, 15, tzinfo=CHINA_STANDARD_TIME),
        "C",
        Decimal("1500.00"),
        Decimal("101500.00"),
        "6217000000000001",
        "上海某某科技有限公司",
        "货款",
    ),
    Transaction(
        "20261124000002",
        datetime(2026, 11, 24, 10, 12, 0, tzinfo=CHINA_STANDARD_TIME),
        "D",
        Decimal("300.50"),
        Decimal("101199.50"),
        "6217000000000002",
        "张三",
        "报销",
    ),
    Transaction(
        "20261124000003",
        datetime(2026, 11, 24, 23, 59, 59, tzinfo=CHINA_STANDARD_TIME),
        "D",
        Decimal("2.00"),
        Decimal("101197.50"),
        None,
        None,
        "手续费",
    ),
]
EXAMPLE_SUMMARY = StatementSummary(
    account_no=ACCOUNT,
    bill_date=BILL_DATE,
    currency="CNY",
    opening_balance=Decimal("100000.00"),
    closing_balance=Decimal("101197.50"),
    credit_count=1,
    debit_count=2,
    credit_total=Decimal("1500.00"),
    debit_total=Decimal("302.50"),
    transaction_count=3,
    part_count=1,
)
# 𠀀 and 㐀 take GB18030's four-byte form; Python's codec maps 䶮 to the two-byte FE9F.
RARE_NAME = "䶮𠀀㐀 Ltd"


# --- building archives -------------------------------------------------------------------------


@dataclass(frozen=True)
class Detail:
    serial_no: str
    time: str
    direction: str
    cents: int
    account: str = ""
    name: str = ""
    memo: str = ""


def money(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"


def part_lines(
    details: list[Detail], opening: int, part_no: int = 1, part_count: int = 1, currency: str = "CNY"
) -> tuple[list[str], int]:
    """A valid part and its closing balance in cents."""
    lines = [f"H|{ACCOUNT}|20261124|{currency}|{money(opening)}|{part_no}|{part_count}"]
    balance = opening
    for d in details:
        balance += d.cents if d.direction == "C" else -d.cents
        lines.append(
            f"D|20261124|{d.time}|{d.serial_no}|{d.direction}|{money(d.cents)}|{money(balance)}"
            f"|{d.account}|{d.name}|{d.memo}"
        )
    credits = [d.cents for d in details if d.direction == "C"]
    debits = [d.cents for d in details if d.direction == "D"]
    lines.append(
        f"T|{len(details)}|{len(credits)}|{len(debits)}|{money(sum(credits))}|{money(sum(debits))}|{money(balance)}"
    )
    return lines, balance


def text(lines: list[str], eol: str = "\n", final: bool = True) -> bytes:
    return (eol.join(lines) + (eol if final else "")).encode("gb18030")


def write_zip(path: Path, members: list[tuple[str, bytes]], compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return path


def write_zip_raw_names(path: Path, members: list[tuple[bytes, bytes]]) -> Path:
    """Members named by raw bytes without the UTF-8 flag, as Chinese bank software writes GB18030 names.

    zipfile encodes every non-ASCII name as UTF-8 and sets flag 0x800 (a cp437-decoded name included),
    so the members are written under ASCII placeholders of the same length and the raw names patched
    into the local headers and the central directory afterwards.
    """
    placeholders = []
    for index, (raw, _) in enumerate(members):
        placeholder = f"#{index}#".ljust(len(raw), "@").encode("ascii")
        assert len(placeholder) == len(raw)
        placeholders.append(placeholder)
    write_zip(path, [(p.decode("ascii"), data) for p, (_, data) in zip(placeholders, members, strict=True)])
    blob = path.read_bytes()
    for placeholder, (raw, _) in zip(placeholders, members, strict=True):
        assert blob.count(placeholder) == 2  # local header and central directory
        blob = blob.replace(placeholder, raw)
    path.write_bytes(blob)
    return path


def example_zip(tmp_path: Path, lines: list[str] | None = None, eol: str = "\n", final: bool = True) -> Path:
    data = text(EXAMPLE if lines is None else lines, eol, final)
    return write_zip(tmp_path / "statement.zip", [(NAME_1, data)])


def with_field(lines: list[str], line: int, field: int, value: str) -> list[str]:
    """``lines`` with field ``field`` of 0-based line ``line`` replaced."""
    fields = lines[line].split("|")
    fields[field] = value
    return [*lines[:line], "|".join(fields), *lines[line + 1 :]]


def read(
    path: Path, expected: ExpectedStatement = EXPECTED, limits: ArchiveLimits = LIMITS
) -> tuple[StatementSummary, list[Transaction]]:
    seen: list[Transaction] = []
    summary = read_statement_archive(path, expected, limits, seen.append)
    return summary, seen


def damaged(
    path: Path, expected: ExpectedStatement = EXPECTED, limits: ArchiveLimits = LIMITS
) -> StatementDamaged:
    """The error for a damaged archive; pytest.raises also proves no summary was returned as valid."""
    with pytest.raises(StatementDamaged) as caught:
        read_statement_archive(path, expected, limits, lambda _txn: None)
    return caught.value


# --- valid statements ---------------------------------------------------------------------------


def test_spec_example_decodes_to_its_transactions_and_summary(tmp_path):
    summary, seen = read(example_zip(tmp_path))

    assert seen == EXAMPLE_TRANSACTIONS
    assert summary == EXAMPLE_SUMMARY
    # Exact decimals with their two places, never floats.
    assert [str(t.amount) for t in seen] == ["1500.00", "300.50", "2.00"]
    assert (str(summary.credit_total), str(summary.debit_total)) == ("1500.00", "302.50")
    assert str(summary.closing_balance) == "101197.50"
    assert seen[0].traded_at.utcoffset() == CHINA_STANDARD_TIME.utcoffset(None)


@pytest.mark.parametrize(
    ("eol", "final", "trailing"),
    [
        ("\r\n", True, 0),
        ("\n", False, 0),
        ("\r\n", False, 0),
        ("\n", True, 3),
        ("\r\n", True, 2),
    ],
    ids=["crlf", "lf-no-final-newline", "crlf-no-final-newline", "lf-trailing-empty", "crlf-trailing-empty"],
)
def test_line_endings(tmp_path, eol, final, trailing):
    path = example_zip(tmp_path, EXAMPLE + [""] * trailing, eol=eol, final=final)

    assert read(path) == (EXAMPLE_SUMMARY, EXAMPLE_TRANSACTIONS)


def test_stored_members(tmp_path):
    path = write_zip(tmp_path / "s.zip", [(NAME_1, text(EXAMPLE))], compression=zipfile.ZIP_STORED)

    assert read(path) == (EXAMPLE_SUMMARY, EXAMPLE_TRANSACTIONS)


def test_parts_are_ordered_by_header_part_number_not_by_name(tmp_path):
    first, closing = part_lines([Detail("A1", "010203", "C", 500)], opening=-1000, part_no=1, part_count=3)
    empty, closing = part_lines([], opening=closing, part_no=2, part_count=3)
    last, closing = part_lines(
        [Detail("A2", "000000", "D", 1), Detail("A3", "235959", "C", 99)],
        opening=closing,
        part_no=3,
        part_count=3,
    )
    path = write_zip(
        tmp_path / "m.zip",
        [("a.txt", text(last)), ("b.txt", text(first)), ("c.txt", text(empty, eol="\r\n"))],
    )

    summary, seen = read(path)

    assert [t.serial_no for t in seen] == ["A1", "A2", "A3"]
    assert [str(t.balance_after) for t in seen] == ["-5.00", "-5.01", "-4.02"]
    assert summary == StatementSummary(
        ACCOUNT,
        BILL_DATE,
        "CNY",
        Decimal("-10.00"),
        Decimal("-4.02"),
        credit_count=2,
        debit_count=1,
        credit_total=Decimal("5.99"),
        debit_total=Decimal("0.01"),
        transaction_count=3,
        part_count=3,
    )


def test_empty_part_is_a_statement_without_transactions(tmp_path):
    lines, _ = part_lines([], opening=12345)

    summary, seen = read(example_zip(tmp_path, lines))

    assert seen == []
    assert (summary.transaction_count, str(summary.opening_balance), str(summary.closing_balance)) == (
        0,
        "123.45",
        "123.45",
    )
    assert (str(summary.credit_total), str(summary.debit_total)) == ("0.00", "0.00")


def test_four_byte_gb18030_characters_round_trip(tmp_path):
    lines, _ = part_lines([Detail("X1", "120000", "C", 1, "62170001", RARE_NAME, "备注𠀀䶮")], opening=0)
    data = text(lines)
    assert "𠀀".encode("gb18030") in data and len("𠀀".encode("gb18030")) == 4

    _, seen = read(write_zip(tmp_path / "r.zip", [(NAME_1, data)]))

    assert (seen[0].counterparty_name, seen[0].memo) == (RARE_NAME, "备注𠀀䶮")


def test_gb18030_member_names_without_utf8_flag(tmp_path):
    name = f"对账单_{ACCOUNT}_20261124_001.txt"
    path = write_zip_raw_names(tmp_path / "g.zip", [(name.encode("gb18030"), text(EXAMPLE))])
    with zipfile.ZipFile(path) as plain:
        (info,) = plain.infolist()
        assert info.flag_bits & 0x800 == 0
        assert info.filename == name.encode("gb18030").decode("cp437")

    assert read(path) == (EXAMPLE_SUMMARY, EXAMPLE_TRANSACTIONS)

    broken = write_zip_raw_names(
        tmp_path / "h.zip", [(name.encode("gb18030"), text(with_field(EXAMPLE, 4, 6, "0.01")))]
    )
    assert damaged(broken).part == f"1 ({name})"


def test_non_txt_members_and_directories_are_ignored(tmp_path):
    path = tmp_path / "d.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.mkdir("docs")
        zf.mkdir("parts.txt")
        zf.writestr("readme.md", "not a part")
        zf.writestr("docs/manifest.json", b"\xff\xfe{}")
        zf.writestr("part.txt.bak", "H|junk")
        zf.writestr("docs/PART_001.TXT", text(EXAMPLE))

    assert read(path) == (EXAMPLE_SUMMARY, EXAMPLE_TRANSACTIONS)


def test_any_currency_when_none_is_configured(tmp_path):
    lines, _ = part_lines([Detail("U1", "080000", "C", 100)], opening=0, currency="USD")

    summary, _ = read(example_zip(tmp_path, lines), expected=ExpectedStatement(ACCOUNT, BILL_DATE))

    assert summary.currency == "USD"


def test_ratio_is_not_checked_below_the_floor_nor_within_the_limit(tmp_path):
    # 2 MiB of trailing empty lines deflate about 1000:1.
    path = example_zip(tmp_path, EXAMPLE + [""] * (2 * 1024 * 1024))

    assert read(path, limits=ArchiveLimits(max_compression_ratio=5000)) == (
        EXAMPLE_SUMMARY,
        EXAMPLE_TRANSACTIONS,
    )


# --- field forms --------------------------------------------------------------------------------

H, D1, D2, T = 0, 1, 2, 4  # line indexes in EXAMPLE

FIELD_CASES = [
    (H, 1, "622202000", "account_no"),
    (H, 1, "1" * 33, "account_no"),
    (H, 1, "62220200000000O1", "account_no"),
    (H, 1, "６２２２０２００００００００００１", "account_no"),
    (H, 2, "20261131", "bill_date"),
    (H, 2, "2026-11-24", "bill_date"),
    (H, 2, "2026112", "bill_date"),
    (H, 3, "cny", "currency"),
    (H, 3, "CN", "currency"),
    (H, 3, "CNYY", "currency"),
    (H, 4, "100000", "opening_balance"),
    (H, 4, "+100000.00", "opening_balance"),
    (H, 4, "100,000.00", "opening_balance"),
    (H, 4, "-0.00", "opening_balance"),
    (H, 4, "-", "opening_balance"),
    (H, 5, "0", "part_no"),
    (H, 5, "01", "part_no"),
    (H, 5, "+1", "part_no"),
    (H, 5, "2", "part_no"),
    (H, 6, "0", "part_count"),
    (H, 6, "01", "part_count"),
    (H, 6, "", "part_count"),
    (D1, 1, "20261125", "trade_date"),
    (D1, 1, "2026112x", "trade_date"),
    (D1, 2, "240000", "trade_time"),
    (D1, 2, "126000", "trade_time"),
    (D1, 2, "120060", "trade_time"),
    (D1, 2, "12000", "trade_time"),
    (D1, 2, "1200000", "trade_time"),
    (D1, 3, "", "serial_no"),
    (D1, 3, "A" * 33, "serial_no"),
    (D1, 3, "2026-11", "serial_no"),
    (D1, 3, "序号1", "serial_no"),
    (D1, 4, "c", "direction"),
    (D1, 4, "X", "direction"),
    (D1, 4, "", "direction"),
    (D1, 4, "CD", "direction"),
    (D1, 5, "1,000.00", "amount"),
    (D1, 5, "1e3", "amount"),
    (D1, 5, "12.3", "amount"),
    (D1, 5, "-5.00", "amount"),
    (D1, 5, "+5.00", "amount"),
    (D1, 5, "0.00", "amount"),
    (D1, 5, " 5.00", "amount"),
    (D1, 5, "5.000", "amount"),
    (D1, 5, "1500", "amount"),
    (D1, 5, "01500.00", "amount"),
    (D1, 5, "1234567890123456.00", "amount"),
    (D1, 5, "", "amount"),
    (D1, 6, "101500", "balance_after"),
    (D1, 6, "+101500.00", "balance_after"),
    (D1, 6, "101,500.00", "balance_after"),
    (D1, 6, "-0.00", "balance_after"),
    (T, 1, "03", "detail_count"),
    (T, 1, "-3", "detail_count"),
    (T, 2, "1.0", "credit_count"),
    (T, 3, "", "debit_count"),
    (T, 4, "1500", "credit_total"),
    (T, 5, "-302.50", "debit_total"),
    (T, 6, "101197.5", "closing_balance"),
]


@pytest.mark.parametrize(
    ("line", "field", "value", "name"), FIELD_CASES, ids=[f"{c[3]}={c[2]!r}" for c in FIELD_CASES]
)
def test_malformed_field_is_damage(tmp_path, line, field, value, name):
    error = damaged(example_zip(tmp_path, with_field(EXAMPLE, line, field, value)))

    assert (error.rule, error.line) == (f"field {name}", line + 1)
    assert NAME_1 in str(error.part)


# --- records and lines --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "line", "words"),
    [
        ([EXAMPLE[0] + "|", *EXAMPLE[1:]], 1, "8"),
        ([EXAMPLE[0].rsplit("|", 1)[0], *EXAMPLE[1:]], 1, "6"),
        ([*EXAMPLE[:1], EXAMPLE[1] + "|", *EXAMPLE[2:]], 2, "11"),
        ([*EXAMPLE[:1], EXAMPLE[1].rsplit("|", 1)[0], *EXAMPLE[2:]], 2, "9"),
        ([*EXAMPLE[:4], EXAMPLE[4] + "|"], 5, "8"),
        ([*EXAMPLE[:4], EXAMPLE[4].rsplit("|", 1)[0]], 5, "6"),
        ([*EXAMPLE[:2], "", *EXAMPLE[2:]], 3, "empty line"),
        ([*EXAMPLE, "", "D|late"], 7, "after the trailer"),
        ([*EXAMPLE, " "], 6, "after the trailer"),
        (EXAMPLE[:4], 4, "missing trailer"),
        (EXAMPLE[1:], 1, "missing header"),
        (["", *EXAMPLE], 1, "missing header"),
        ([*EXAMPLE[:2], EXAMPLE[0], *EXAMPLE[2:]], 3, "'H'"),
        ([*EXAMPLE[:2], "X|1", *EXAMPLE[2:]], 3, "'X'"),
        ([*EXAMPLE[:2], EXAMPLE[2].replace("报销", "报\r销"), *EXAMPLE[3:]], 3, "CR"),
    ],
    ids=[
        "header-8-fields",
        "header-6-fields",
        "detail-11-fields",
        "detail-9-fields",
        "trailer-8-fields",
        "trailer-6-fields",
        "empty-line-before-trailer",
        "text-after-trailer",
        "blank-after-trailer",
        "missing-trailer",
        "missing-header",
        "empty-first-line",
        "second-header",
        "unknown-record",
        "cr-inside-field",
    ],
)
def test_broken_structure_is_damage(tmp_path, lines, line, words):
    error = damaged(example_zip(tmp_path, lines))

    assert (error.rule, error.line) == ("structure", line)
    assert words in error.detail


def test_empty_member_is_damage(tmp_path):
    error = damaged(write_zip(tmp_path / "e.zip", [(NAME_1, b"")]))

    assert (error.rule, error.part, error.line) == ("structure", NAME_1, 1)


def test_bytes_that_are_not_gb18030_are_damage(tmp_path):
    data = text(EXAMPLE).replace("报销".encode("gb18030"), b"\x81\x20")

    error = damaged(write_zip(tmp_path / "x.zip", [(NAME_1, data)]))

    assert (error.rule, error.line, error.part) == ("encoding", 3, f"1 ({NAME_1})")


@pytest.mark.parametrize(
    "bom", [b"\xef\xbb\xbf", "\ufeff".encode("gb18030")], ids=["utf8-bom", "gb18030-bom"]
)
def test_bom_is_damage(tmp_path, bom):
    error = damaged(write_zip(tmp_path / "b.zip", [(NAME_1, bom + text(EXAMPLE))]))

    assert (error.rule, error.line) == ("encoding", 1)
    assert "BOM" in error.detail


def test_pipe_as_trail_byte_does_not_split_a_field(tmp_path):
    # In GB18030 a two-byte character may end in 0x7C, the byte of "|".
    name = bytes([0x81, 0x7C]).decode("gb18030")
    lines, _ = part_lines([Detail("P1", "120000", "D", 5, "", f"A{name}B", "")], opening=100)

    _, seen = read(example_zip(tmp_path, lines))

    assert seen[0].counterparty_name == f"A{name}B"
    assert seen[0].memo is None


# --- the rules ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "expected_text"),
    [(1, "6222020000000002", ACCOUNT), (2, "20261123", "20261124"), (3, "USD", "CNY")],
    ids=["account_no", "bill_date", "currency"],
)
def test_rule_1_header_must_match_the_request(tmp_path, field, value, expected_text):
    error = damaged(example_zip(tmp_path, with_field(EXAMPLE, H, field, value)))

    assert (error.rule, error.line, error.part) == ("rule 1 (header)", 1, f"1 ({NAME_1})")
    assert value in error.detail and expected_text in error.detail


def test_rule_1_parts_share_one_currency_even_without_a_configured_one(tmp_path):
    one, closing = part_lines([], opening=0, part_no=1, part_count=2, currency="USD")
    two, _ = part_lines([], opening=closing, part_no=2, part_count=2, currency="EUR")
    path = write_zip(tmp_path / "c.zip", [(NAME_1, text(one)), (NAME_2, text(two))])

    error = damaged(path, expected=ExpectedStatement(ACCOUNT, BILL_DATE))

    assert (error.rule, error.part) == ("rule 1 (header)", f"2 ({NAME_2})")


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        (1, "4", "rule 2 (trailer counts)"),
        (1, "2", "rule 2 (trailer counts)"),
        (2, "2", "rule 2 (trailer counts)"),
        (3, "3", "rule 2 (trailer counts)"),
        (4, "1500.01", "rule 2 (trailer totals)"),
        (5, "302.49", "rule 2 (trailer totals)"),
    ],
    ids=[
        "detail_count-too-high",
        "detail_count-too-low",
        "credit_count",
        "debit_count",
        "credit_total",
        "debit_total",
    ],
)
def test_rule_2_trailer_must_add_up(tmp_path, field, value, rule):
    error = damaged(example_zip(tmp_path, with_field(EXAMPLE, T, field, value)))

    assert (error.rule, error.line, error.part) == (rule, 5, f"1 ({NAME_1})")
    assert value in error.detail


def test_rule_2_counts_swapped_between_credit_and_debit(tmp_path):
    lines = with_field(with_field(EXAMPLE, T, 2, "2"), T, 3, "1")

    error = damaged(example_zip(tmp_path, lines))

    assert (error.rule, error.line) == ("rule 2 (trailer counts)", 5)


def test_rule_3_each_balance_follows_from_the_previous(tmp_path):
    error = damaged(example_zip(tmp_path, with_field(EXAMPLE, D2, 6, "101199.49")))

    assert (error.rule, error.line, error.part) == ("rule 3 (balance chain)", 3, f"1 ({NAME_1})")
    assert "101199.49" in error.detail and "101199.50" in error.detail


def test_rule_3_direction_decides_the_sign(tmp_path):
    error = damaged(example_zip(tmp_path, with_field(EXAMPLE, D1, 4, "D")))

    assert (error.rule, error.line) == ("rule 3 (balance chain)", 2)


def test_rule_3_closing_balance_is_the_last_balance(tmp_path):
    error = damaged(example_zip(tmp_path, with_field(EXAMPLE, T, 6, "101197.51")))

    assert (error.rule, error.line) == ("rule 3 (balance chain)", 5)


def test_rule_3_empty_part_closes_at_its_opening_balance(tmp_path):
    lines, _ = part_lines([], opening=100)

    error = damaged(example_zip(tmp_path, with_field(lines, 1, 6, "1.01")))

    assert (error.rule, error.line) == ("rule 3 (balance chain)", 2)


def two_parts(
    opening_2: int | None = None, part_count_2: int = 2, part_no_2: int = 2
) -> list[tuple[str, bytes]]:
    one, closing = part_lines([Detail("S1", "000001", "C", 100)], opening=0, part_no=1, part_count=2)
    two, _ = part_lines(
        [Detail("S2", "000002", "D", 40)],
        opening=closing if opening_2 is None else opening_2,
        part_no=part_no_2,
        part_count=part_count_2,
    )
    return [(NAME_1, text(one)), (NAME_2, text(two))]


def test_two_parts_valid(tmp_path):
    summary, seen = read(write_zip(tmp_path / "p.zip", two_parts()))

    assert [t.serial_no for t in seen] == ["S1", "S2"]
    assert (summary.part_count, str(summary.closing_balance)) == (2, "0.60")


def test_rule_4_duplicated_part(tmp_path):
    error = damaged(write_zip(tmp_path / "p.zip", two_parts(part_no_2=1)))

    assert (error.rule, error.part) == ("rule 4 (part numbers)", f"1 ({NAME_2})")
    assert NAME_1 in error.detail


def test_rule_4_missing_part(tmp_path):
    error = damaged(write_zip(tmp_path / "p.zip", two_parts()[1:]))

    assert error.rule == "rule 4 (part numbers)"
    assert "part 1 of 2 is missing" in error.detail


def test_rule_4_part_count_must_agree(tmp_path):
    error = damaged(write_zip(tmp_path / "p.zip", two_parts(part_count_2=3)))

    assert (error.rule, error.part, error.line) == ("rule 4 (part numbers)", f"2 ({NAME_2})", 1)


def test_rule_5_part_opens_where_the_previous_closed(tmp_path):
    error = damaged(write_zip(tmp_path / "p.zip", two_parts(opening_2=61)))

    assert (error.rule, error.part, error.line) == ("rule 5 (part continuity)", f"2 ({NAME_2})", 1)
    assert "0.61" in error.detail and "1.00" in error.detail


def test_rule_6_serial_unique_within_a_part(tmp_path):
    error = damaged(example_zip(tmp_path, with_field(EXAMPLE, D2, 3, "20261124000001")))

    assert (error.rule, error.line) == ("rule 6 (serial_no unique)", 3)


def test_rule_6_serial_unique_across_parts(tmp_path):
    one, closing = part_lines([Detail("DUP", "000001", "C", 100)], opening=0, part_no=1, part_count=2)
    two, _ = part_lines([Detail("DUP", "000002", "C", 100)], opening=closing, part_no=2, part_count=2)
    # Part 2 comes first by name and in the zip: the duplicate is still found in part 2.
    path = write_zip(tmp_path / "p.zip", [("a.txt", text(two)), ("b.txt", text(one))])

    error = damaged(path)

    assert (error.rule, error.part, error.line) == ("rule 6 (serial_no unique)", "2 (a.txt)", 2)


# --- hostile archives ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "../x.txt",
        "parts/../../x.txt",
        "..\\x.txt",
        "parts\\..\\x.txt",
        "/etc/x.txt",
        "\\x.txt",
        "C:x.txt",
        "c:\\x.txt",
        "../evil.sh",
        "..",
    ],
)
def test_unsafe_member_name_rejects_the_archive(tmp_path, name):
    path = write_zip(tmp_path / "n.zip", [(NAME_1, text(EXAMPLE)), (name, b"x")])

    error = damaged(path)

    assert error.rule == "archive"
    assert repr(name) in error.detail


def test_nul_in_member_name_rejects_the_archive(tmp_path):
    path = write_zip_raw_names(tmp_path / "z.zip", [(b"part.txt\x00.sh", text(EXAMPLE))])

    assert damaged(path).rule == "archive"


def test_member_name_that_is_not_gb18030_rejects_the_archive(tmp_path):
    path = write_zip_raw_names(tmp_path / "z.zip", [(b"\xff\xff_001.txt", text(EXAMPLE))])

    assert damaged(path).rule == "archive"


def test_too_many_members(tmp_path):
    path = write_zip(tmp_path / "n.zip", [(NAME_1, text(EXAMPLE)), ("a.md", b""), ("b.md", b"")])

    assert read(path, limits=ArchiveLimits(max_members=3))[1] == EXAMPLE_TRANSACTIONS
    error = damaged(path, limits=ArchiveLimits(max_members=2))
    assert error.rule == "limits"
    assert "3 members" in error.detail


def test_total_inflated_size_limit(tmp_path):
    error = damaged(example_zip(tmp_path), limits=ArchiveLimits(max_total_uncompressed_bytes=100))

    assert (error.rule, error.part) == ("limits", f"1 ({NAME_1})")


def test_total_inflated_size_limit_counts_all_members(tmp_path):
    members = two_parts()
    size = len(members[0][1])

    error = damaged(
        write_zip(tmp_path / "p.zip", members), limits=ArchiveLimits(max_total_uncompressed_bytes=size + 10)
    )

    assert (error.rule, error.part) == ("limits", f"2 ({NAME_2})")


def test_compression_ratio_limit(tmp_path):
    path = example_zip(tmp_path, EXAMPLE + [""] * (2 * 1024 * 1024))

    error = damaged(path)

    assert (error.rule, error.part) == ("limits", f"1 ({NAME_1})")
    assert "200 times" in error.detail


def test_bad_crc_rejects_the_archive(tmp_path):
    lines, _ = part_lines([Detail("C1", "120000", "C", 100, memo="MEMO-CRC")], opening=0)
    path = write_zip(tmp_path / "c.zip", [(NAME_1, text(lines))], compression=zipfile.ZIP_STORED)
    blob = path.read_bytes()
    assert blob.count(b"MEMO-CRC") == 1
    # Still a valid part, so only the CRC can tell.
    path.write_bytes(blob.replace(b"MEMO-CRC", b"MEMO-CRD"))

    error = damaged(path)

    assert error.rule == "archive"
    assert NAME_1 in str(error.part)
    assert "CRC" in error.detail


def test_broken_deflate_stream_rejects_the_archive(tmp_path):
    details = [Detail(f"Z{i}", "120000", "C", 100 + i, memo=f"m{i * 7919}") for i in range(300)]
    lines, _ = part_lines(details, opening=0)
    path = write_zip(tmp_path / "z.zip", [(NAME_1, text(lines))])
    with zipfile.ZipFile(path) as zf:
        (info,) = zf.infolist()
    blob = bytearray(path.read_bytes())
    start = info.header_offset + 30 + len(NAME_1) + len(info.extra)
    middle = start + info.compress_size // 2
    blob[middle : middle + 16] = b"\xff" * 16
    path.write_bytes(bytes(blob))

    error = damaged(path)

    # Whether the first pass (header) or the second trips over it depends on where zlib fails.
    assert error.rule == "archive"
    assert NAME_1 in str(error.part)


@pytest.mark.parametrize(
    "content",
    [b"", b"H|not a zip\n", b"PK\x03\x04" + b"\x00" * 40, b"PK\x05\x06" + b"\xff" * 18],
    ids=["empty", "text", "local-header-only", "bogus-end-record"],
)
def test_not_a_zip(tmp_path, content):
    path = tmp_path / "n.zip"
    path.write_bytes(content)

    assert damaged(path).rule == "archive"


def test_truncated_zip(tmp_path):
    path = example_zip(tmp_path)
    path.write_bytes(path.read_bytes()[:-30])

    assert damaged(path).rule == "archive"


def test_archive_without_parts(tmp_path):
    error = damaged(write_zip(tmp_path / "e.zip", [("readme.md", b"nothing")]))

    assert error.rule == "structure"


def test_other_compression_methods_are_rejected(tmp_path):
    path = write_zip(tmp_path / "b.zip", [(NAME_1, text(EXAMPLE))], compression=zipfile.ZIP_BZIP2)

    error = damaged(path)

    assert (error.rule, error.part) == ("archive", NAME_1)


def test_encrypted_member_is_rejected(tmp_path):
    path = example_zip(tmp_path)
    blob = bytearray(path.read_bytes())
    blob[6] |= 0x1  # local header flags
    blob[blob.rindex(b"PK\x01\x02") + 8] |= 0x1  # central directory flags
    path.write_bytes(bytes(blob))

    error = damaged(path)

    assert (error.rule, error.detail) == ("archive", "member is encrypted")


def test_overlong_line_is_damage(tmp_path):
    lines = with_field(EXAMPLE, D2, 9, "长" * 40_000)  # 80,000 bytes, in one chunk

    error = damaged(example_zip(tmp_path, lines))

    assert (error.rule, error.line) == ("structure", 3)


def test_member_without_line_breaks_is_cut_short(tmp_path):
    data = text(EXAMPLE[:1]) + b"D" * (3 * 1024 * 1024)
    path = write_zip(tmp_path / "l.zip", [(NAME_1, data)], compression=zipfile.ZIP_STORED)

    error = damaged(path)

    assert (error.rule, error.line) == ("structure", 2)
    assert "longer than" in error.detail


def test_missing_archive_file_is_not_damage(tmp_path):
    with pytest.raises(FileNotFoundError):
        read(tmp_path / "absent.zip")


def test_nothing_is_written_to_disk(tmp_path):
    path = example_zip(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())

    read(path)

    assert sorted(p.name for p in tmp_path.iterdir()) == before


# --- property -----------------------------------------------------------------------------------

FIELD_TEXT = st.text(
    st.one_of(
        st.sampled_from("䶮𠀀㐀𪚥張张三上海 -()"),
        # Any text the format allows but NUL, which is damage (see test_stored_text.py).
        st.characters(exclude_categories=["Cs"], exclude_characters="|\r\n\x00"),
    ),
    max_size=12,
)
TIMES = st.builds(
    "{:02d}{:02d}{:02d}".format,
    st.integers(0, 23),
    st.integers(0, 59),
    st.integers(0, 59),
)


@st.composite
def statements(draw: st.DrawFn) -> tuple[list[list[Detail]], int]:
    part_count = draw(st.integers(1, 4))
    sizes = [draw(st.integers(0, 6)) for _ in range(part_count)]
    serials = draw(
        st.lists(
            st.text(
                "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", min_size=1, max_size=32
            ),
            min_size=sum(sizes),
            max_size=sum(sizes),
            unique=True,
        )
    )
    parts: list[list[Detail]] = []
    for size in sizes:
        parts.append(
            [
                Detail(
                    serials.pop(),
                    draw(TIMES),
                    draw(st.sampled_from("CD")),
                    draw(st.integers(1, 10**12)),
                    draw(st.text("0123456789", max_size=20)),
                    draw(FIELD_TEXT),
                    draw(FIELD_TEXT),
                )
                for _ in range(size)
            ]
        )
    return parts, draw(st.integers(-(10**14), 10**14))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    statement=statements(),
    eols=st.lists(st.sampled_from(["\n", "\r\n"]), min_size=4, max_size=4),
    finals=st.lists(st.booleans(), min_size=4, max_size=4),
    trailing=st.lists(st.integers(0, 2), min_size=4, max_size=4),
    order=st.randoms(use_true_random=False),
    compression=st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]),
)
def test_generated_statements_decode_to_their_records(
    tmp_path, statement, eols, finals, trailing, order, compression
):
    parts, opening = statement
    members = []
    balance = opening
    for index, details in enumerate(parts):
        lines, balance = part_lines(details, opening=balance, part_no=index + 1, part_count=len(parts))
        data = text(lines + [""] * trailing[index], eol=eols[index], final=finals[index])
        members.append((f"对账单_{index + 1:03d}.txt", data))
    order.shuffle(members)
    path = write_zip(tmp_path / "prop.zip", members, compression)

    summary, seen = read(path)

    expected = []
    running = opening
    for detail in (d for details in parts for d in details):
        running += detail.cents if detail.direction == "C" else -detail.cents
        expected.append(
            Transaction(
                detail.serial_no,
                datetime(
                    2026,
                    11,
                    24,
                    int(detail.time[:2]),
                    int(detail.time[2:4]),
                    int(detail.time[4:]),
                    tzinfo=CHINA_STANDARD_TIME,
                ),
                detail.direction,
                Decimal(money(detail.cents)),
                Decimal(money(running)),
                detail.account or None,
                detail.name or None,
                detail.memo or None,
            )
        )
    assert seen == expected
    all_details = [d for details in parts for d in details]
    assert summary == StatementSummary(
        ACCOUNT,
        BILL_DATE,
        "CNY",
        Decimal(money(opening)),
        Decimal(money(running)),
        credit_count=sum(d.direction == "C" for d in all_details),
        debit_count=sum(d.direction == "D" for d in all_details),
        credit_total=Decimal(money(sum(d.cents for d in all_details if d.direction == "C"))),
        debit_total=Decimal(money(sum(d.cents for d in all_details if d.direction == "D"))),
        transaction_count=len(all_details),
        part_count=len(parts),
    )
    assert str(summary.closing_balance) == money(running)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    statement=statements(),
    compression=st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]),
    where=st.floats(0, 1, exclude_max=True),
    flip=st.integers(1, 255),
)
def test_a_single_corrupted_byte_is_rejected_or_changes_nothing(
    tmp_path, statement, compression, where, flip
):
    """Any one byte of a valid archive changed: the same records, or StatementDamaged; never other data."""
    parts, opening = statement
    members = []
    balance = opening
    for index, details in enumerate(parts):
        lines, balance = part_lines(details, opening=balance, part_no=index + 1, part_count=len(parts))
        members.append((f"对账单_{index + 1:03d}.txt", text(lines)))
    path = write_zip(tmp_path / "valid.zip", members, compression)
    original = read(path)

    blob = bytearray(path.read_bytes())
    blob[int(where * len(blob))] ^= flip  # never 0: the byte really changes
    corrupted = tmp_path / "corrupted.zip"
    corrupted.write_bytes(bytes(blob))
    try:
        outcome = read(corrupted)
    except StatementDamaged:
        return
    assert outcome == original
