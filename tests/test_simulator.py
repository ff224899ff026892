"""The bank simulator over real HTTP, and the statement generator, checked against the specs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import tracemalloc
import zipfile
from collections.abc import Iterator
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta, timezone
from datetime import time as TimeOfDay
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest

from bankrecon.sources.refbank.simulator.generator import generate_statement
from bankrecon.sources.refbank.simulator.server import (
    DEMO_MERCHANT_ID,
    DEMO_MERCHANT_SECRET,
    BankSimulator,
    RequestRecord,
    StatementPlan,
)

ROOT = Path(__file__).resolve().parent.parent
CHINA = timezone(timedelta(hours=8))
TODAY = date(2026, 11, 25)
BILL_DATE = date(2026, 11, 24)
ACCOUNT = "6222020000000001"
OTHER_ACCOUNT = "6222020000000002"
AMOUNT = re.compile(r"-?(0|[1-9][0-9]*)\.[0-9]{2}")


@pytest.fixture
def bank() -> Iterator[BankSimulator]:
    with BankSimulator(min_interval=0, today=lambda: TODAY) as sim:
        yield sim


def sign(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def ask(
    url: str,
    account_no: str = ACCOUNT,
    bill_date: str = "20261124",
    *,
    merchant_id: str = DEMO_MERCHANT_ID,
    secret: str = DEMO_MERCHANT_SECRET,
    timeout: float = 5.0,
) -> httpx.Response:
    body = json.dumps(
        {"merchant_id": merchant_id, "account_no": account_no, "bill_date": bill_date, "request_id": "t"}
    ).encode()
    return post(url, body, merchant_id, sign(secret, body), timeout=timeout)


def post(
    url: str, body: bytes, merchant_id: str, signature: str | bytes, *, timeout: float = 5.0
) -> httpx.Response:
    if isinstance(signature, str):
        signature = signature.encode()
    headers = [
        (b"Content-Type", b"application/json"),
        (b"X-Merchant-Id", merchant_id.encode()),
        (b"X-Signature", signature),
    ]
    return httpx.post(f"{url}/statement/download", content=body, headers=headers, timeout=timeout)


def code(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    payload = response.json()
    assert set(payload) == {"code", "message", "data"}
    return str(payload["code"])


def codes(url: str, count: int, **kwargs: Any) -> list[str]:
    return [code(ask(url, **kwargs)) for _ in range(count)]


def archive_of(response: httpx.Response) -> bytes:
    data = response.json()["data"]
    content = data["file_content"]
    archive = base64.b64decode(content.replace("\r\n", ""), validate=True)
    assert hashlib.sha256(archive).hexdigest() == data["file_sha256"]
    return archive


# --- signature and window -------------------------------------------------------------------


def test_signature_is_checked_and_bad_ones_do_not_count_toward_the_window() -> None:
    with BankSimulator(min_interval=1.0, today=lambda: TODAY) as sim:
        body = json.dumps(
            {
                "merchant_id": DEMO_MERCHANT_ID,
                "account_no": ACCOUNT,
                "bill_date": "20261124",
                "request_id": "x",
            }
        ).encode()
        good = sign(DEMO_MERCHANT_SECRET, body)
        assert code(post(sim.url, body, DEMO_MERCHANT_ID, good)) == "0000"
        answered = time.monotonic()  # the window opened when the request arrived, before this
        # Every refused request arrives 0.2 s or more into that window, so that a window any of
        # them opened would still be open when it closes, however slowly they go.
        time.sleep(0.2)
        bad = [
            post(sim.url, body, DEMO_MERCHANT_ID, sign("wrong", body)),
            post(sim.url, body, DEMO_MERCHANT_ID, good.upper()),
            post(sim.url, body + b" ", DEMO_MERCHANT_ID, good),
            post(sim.url, body, "M999999", good),
            post(sim.url, body, DEMO_MERCHANT_ID, "é".encode("latin-1")),
            httpx.post(f"{sim.url}/statement/download", content=body),
        ]
        assert [code(r) for r in bad] == ["1001"] * 6
        assert bad[0].json() == {"code": "1001", "message": "签名错误", "data": None}
        time.sleep(max(0.0, answered + 1.05 - time.monotonic()))
        # Had any refused request counted, this one would be inside its window.
        assert code(post(sim.url, body, DEMO_MERCHANT_ID, good)) == "0000"


def test_window_answers_1005_and_restarts_from_the_early_request() -> None:
    # Wide margins: each request is on the side of a window edge it is meant to be, even on a
    # busy machine (0.75 s at the least).
    with BankSimulator(
        min_interval=1.5,
        today=lambda: TODAY,
        merchants={DEMO_MERCHANT_ID: DEMO_MERCHANT_SECRET, "M2": "s2"},
    ) as sim:
        start = time.monotonic()

        def at(offset: float, **kwargs: Any) -> str:
            time.sleep(max(0.0, start + offset - time.monotonic()))
            return code(ask(sim.url, **kwargs))

        assert at(0.0) == "0000"
        # The window is the merchant's, whatever the account, the date or the answer would be.
        assert at(0.75, account_no=OTHER_ACCOUNT, bill_date="20261123") == "1005"
        assert at(0.75, account_no="123") == "1005"
        assert at(0.75, merchant_id="M2", secret="s2") == "0000"
        # 1.75 s after the first request, but only 1 s after the early ones.
        assert at(1.75) == "1005"
        assert at(3.5) == "0000"
        records = sim.requests
    assert [r.code for r in records] == ["0000", "1005", "1005", "0000", "1005", "0000"]
    assert [r.merchant_id for r in records][3] == "M2"
    assert all(later.seq == earlier.seq + 1 for earlier, later in pairwise(records))


def test_malformed_requests_get_http_400_and_count_toward_the_window() -> None:
    with BankSimulator(min_interval=3.0, today=lambda: TODAY) as sim:
        bodies = [
            b"{not json",
            json.dumps({"merchant_id": DEMO_MERCHANT_ID, "account_no": ACCOUNT}).encode(),
            json.dumps(
                {"merchant_id": "M2", "account_no": ACCOUNT, "bill_date": "20261124", "request_id": "r"}
            ).encode(),
        ]
        for body in bodies:
            response = post(sim.url, body, DEMO_MERCHANT_ID, sign(DEMO_MERCHANT_SECRET, body))
            assert response.status_code == 400 and "error" in response.json()
        assert code(ask(sim.url)) == "1005"
        assert [(r.code, r.http_status) for r in sim.requests] == [("", 400)] * 3 + [("1005", 200)]


# --- answers ------------------------------------------------------------------------------------


def test_statement_is_not_ready_for_the_first_ready_after_accepted_requests(bank: BankSimulator) -> None:
    bank.plan(ACCOUNT, BILL_DATE, StatementPlan(ready_after=2, lines=3))
    assert codes(bank.url, 4) == ["9999", "9999", "0000", "0000"]
    assert ask(bank.url).json()["message"] == "成功"
    # Another statement of the same account keeps the default plan, and re-planning restarts the count.
    assert code(ask(bank.url, bill_date="20261123")) == "0000"
    bank.plan(ACCOUNT, BILL_DATE, StatementPlan(ready_after=1))
    assert codes(bank.url, 2) == ["9999", "0000"]
    assert [r.code for r in bank.requests_for(ACCOUNT, BILL_DATE)] == ["9999"] * 2 + ["0000"] * 3 + [
        "9999",
        "0000",
    ]


def test_rate_limited_and_faulted_requests_do_not_bring_readiness_closer() -> None:
    # A window wide enough that the request asked at once is inside it even on a busy machine.
    window = 2.0
    with BankSimulator(min_interval=window, today=lambda: TODAY) as sim:
        sim.plan(ACCOUNT, BILL_DATE, StatementPlan(ready_after=2, faults=["502"]))
        assert ask(sim.url).status_code == 502
        time.sleep(window + 0.05)
        assert code(ask(sim.url)) == "9999"
        assert code(ask(sim.url)) == "1005"
        time.sleep(window + 0.05)
        assert code(ask(sim.url)) == "9999"
        time.sleep(window + 0.05)
        assert code(ask(sim.url)) == "0000"


def test_ready_at_and_ready_time() -> None:
    china_today = datetime.now(CHINA).date()
    yesterday = china_today - timedelta(days=1)
    with BankSimulator(min_interval=0) as sim:
        sim.plan(ACCOUNT, BILL_DATE, StatementPlan())
        sim.plan(ACCOUNT, yesterday, StatementPlan(ready_at=datetime.now(UTC) + timedelta(seconds=0.4)))
        assert code(ask(sim.url, bill_date=f"{yesterday:%Y%m%d}")) == "9999"
        time.sleep(0.45)
        assert code(ask(sim.url, bill_date=f"{yesterday:%Y%m%d}")) == "0000"

        before = yesterday - timedelta(days=1)
        sim.plan(ACCOUNT, before, StatementPlan(ready_time=TimeOfDay(0, 0)))
        assert code(ask(sim.url, bill_date=f"{before:%Y%m%d}")) == "0000"
        # Ready at the very end of today, the day after this bill date.
        sim.plan(ACCOUNT, yesterday, StatementPlan(ready_time=TimeOfDay(23, 59, 59, 999_999)))
        assert code(ask(sim.url, bill_date=f"{yesterday:%Y%m%d}")) == "9999"
        # Today's statement cannot be ready before the day is over.
        assert code(ask(sim.url, bill_date=f"{china_today:%Y%m%d}")) == "9999"


def test_empty_and_forced_outcomes(bank: BankSimulator) -> None:
    bank.plan(ACCOUNT, BILL_DATE, StatementPlan(outcome="empty"))
    assert ask(bank.url).json() == {"code": "2001", "message": "当日无交易", "data": None}
    bank.plan(ACCOUNT, BILL_DATE, StatementPlan(outcome="7777", ready_after=1))
    assert ask(bank.url).json()["code"] == "9999"
    assert ask(bank.url).json() == {"code": "7777", "message": "未知错误", "data": None}
    bank.plan(ACCOUNT, BILL_DATE, StatementPlan(outcome="1002"))
    assert ask(bank.url).json() == {"code": "1002", "message": "账号不存在", "data": None}


def test_unknown_accounts_answer_1002() -> None:
    with BankSimulator(
        min_interval=0,
        today=lambda: TODAY,
        merchants={DEMO_MERCHANT_ID: DEMO_MERCHANT_SECRET, "M2": "s2"},
        accounts={DEMO_MERCHANT_ID: {ACCOUNT}},
    ) as sim:
        assert code(ask(sim.url)) == "0000"
        assert code(ask(sim.url, account_no=OTHER_ACCOUNT)) == "1002"
        assert code(ask(sim.url, merchant_id="M2", secret="s2")) == "1002"
        assert ask(sim.url, account_no=OTHER_ACCOUNT).json()["message"] == "账号不存在"
    with BankSimulator(min_interval=0, today=lambda: TODAY) as sim:
        for account in ("622202000", "6" * 33, "62220200000000O1", "６２２２０２００００００００００１"):
            assert code(ask(sim.url, account_no=account)) == "1002", account
        assert code(ask(sim.url, account_no="1" * 32)) == "0000"


@pytest.mark.parametrize(
    ("bill_date", "expected"),
    [
        ("20261126", "1003"),  # tomorrow
        ("20260826", "1003"),  # 91 days ago
        ("20260827", "0000"),  # 90 days ago: still kept
        ("20261125", "9999"),  # today: not over yet
        ("2026-11-24", "1003"),
        ("20261131", "1003"),
        ("2026112", "1003"),
        ("202611240", "1003"),
        ("", "1003"),
    ],
)
def test_bill_dates(bank: BankSimulator, bill_date: str, expected: str) -> None:
    response = ask(bank.url, bill_date=bill_date)
    assert code(response) == expected
    if expected == "1003":
        assert response.json()["message"] == "日期无效"


def test_faults_apply_in_order_then_the_answers_resume(bank: BankSimulator) -> None:
    bank.plan(
        ACCOUNT,
        BILL_DATE,
        StatementPlan(lines=4, faults=["500", "500html", "502", "reset", "stall:0.6", "stall:0.3"]),
    )
    response = ask(bank.url)
    assert response.status_code == 500 and response.json()["status"] == 500
    response = ask(bank.url)
    assert response.status_code == 500 and response.text.startswith("<html>")
    assert response.headers["content-type"].startswith("text/html")
    response = ask(bank.url)
    assert response.status_code == 502 and "Bad Gateway" in response.text
    with pytest.raises(httpx.TransportError):
        ask(bank.url)
    with pytest.raises(httpx.ReadTimeout):
        ask(bank.url, timeout=0.2)
    started = time.monotonic()
    assert code(ask(bank.url)) == "0000"
    assert time.monotonic() - started >= 0.3
    assert code(ask(bank.url)) == "0000"
    assert [(r.code, r.http_status) for r in bank.requests] == [
        ("", 500),
        ("", 500),
        ("", 502),
        ("", 0),
        ("0000", 200),
        ("0000", 200),
        ("0000", 200),
    ]


def test_fail_every(bank: BankSimulator) -> None:
    bank.plan(ACCOUNT, BILL_DATE, StatementPlan(fail_every=2, faults=["502"]))
    statuses = [ask(bank.url).status_code for _ in range(5)]
    assert statuses == [502, 500, 200, 500, 200]


def test_plans_are_checked() -> None:
    with pytest.raises(ValueError, match="fault"):
        StatementPlan(faults=["stall"])
    with pytest.raises(ValueError, match="aware"):
        StatementPlan(ready_at=datetime(2026, 11, 25, 6, 0))
    with pytest.raises(ValueError, match="outcome"):
        StatementPlan(outcome="ok")


# --- the file ---------------------------------------------------------------------------------


def test_archive_is_the_generated_statement_and_its_digest_matches(bank: BankSimulator) -> None:
    bank.plan(ACCOUNT, BILL_DATE, StatementPlan(lines=50, parts=2))
    response = ask(bank.url)
    data = response.json()["data"]
    assert data["file_name"] == "6222020000000001_20261124.zip"
    assert "\r\n" not in data["file_content"] and len(data["file_content"]) % 4 == 0
    expected = generate_statement(ACCOUNT, BILL_DATE, seed=bank.seed, lines=50, parts=2)
    assert archive_of(response) == expected.to_zip_bytes()
    assert archive_of(ask(bank.url)) == expected.to_zip_bytes()


def test_mime_wrapped_content_decodes(bank: BankSimulator) -> None:
    bank.plan(ACCOUNT, BILL_DATE, StatementPlan(lines=300, mime_wrap=True, line_ending="\r\n"))
    content = ask(bank.url).json()["data"]["file_content"]
    lines = content.split("\r\n")
    assert len(lines) > 3 and all(len(line) == 76 for line in lines[:-1]) and 0 < len(lines[-1]) <= 76
    archive = archive_of(ask(bank.url))
    expected = generate_statement(ACCOUNT, BILL_DATE, seed=bank.seed, lines=300)
    assert archive == expected.to_zip_bytes(line_ending="\r\n")


def test_served_archive_and_digest_can_be_overridden(bank: BankSimulator) -> None:
    bank.plan(ACCOUNT, BILL_DATE, StatementPlan(archive=b"PK\x05\x06 damaged", mime_wrap=True))
    assert archive_of(ask(bank.url)) == b"PK\x05\x06 damaged"
    bank.plan(ACCOUNT, BILL_DATE, StatementPlan(sha256_override="0" * 64))
    data = ask(bank.url).json()["data"]
    assert data["file_sha256"] == "0" * 64
    assert hashlib.sha256(base64.b64decode(data["file_content"])).hexdigest() != "0" * 64


def test_large_statement_is_streamed_from_disk(bank: BankSimulator) -> None:
    lines = 120_000  # over the in-memory limit
    bank.plan(ACCOUNT, BILL_DATE, StatementPlan(lines=lines, parts=2, mime_wrap=True))
    response = ask(bank.url, timeout=30)
    assert len(response.content) == int(response.headers["content-length"])
    # The archive is read in pieces of 16,384 lines; the 76-character lines run on across them.
    wrapped = response.json()["data"]["file_content"].split("\r\n")
    assert len(wrapped) > 2 * 16_384 and {len(line) for line in wrapped[:-1]} == {76}
    with zipfile.ZipFile(io.BytesIO(archive_of(response))) as archive:
        trailers = [
            archive.read(name).decode("gb18030").rstrip("\n").rsplit("\n", 1)[1]
            for name in archive.namelist()
        ]
    assert sum(int(t.split("|")[1]) for t in trailers) == lines


# --- admin routes -------------------------------------------------------------------------------


def test_admin_routes_request_log_and_callback(bank: BankSimulator) -> None:
    seen: list[RequestRecord] = []
    bank.on_request = seen.append
    assert httpx.get(f"{bank.url}/_sim/health").text == "ok"
    ask(bank.url)
    ask(bank.url, account_no=OTHER_ACCOUNT, secret="wrong")
    log = httpx.get(f"{bank.url}/_sim/requests").json()
    assert log == [asdict(r) for r in bank.requests] == [asdict(r) for r in seen]
    assert [(r["account_no"], r["code"]) for r in log] == [(ACCOUNT, "0000"), (OTHER_ACCOUNT, "1001")]
    assert bank.requests_for(OTHER_ACCOUNT, BILL_DATE) == seen[1:]
    assert httpx.get(f"{bank.url}/statement/download").status_code == 404
    assert httpx.post(f"{bank.url}/other", content=b"{}").status_code == 404
    bank.clear_requests()
    assert bank.requests == [] and httpx.get(f"{bank.url}/_sim/requests").json() == []


# --- the generator -----------------------------------------------------------------------------


def parse_part(text: str) -> tuple[list[str], list[list[str]], list[str]]:
    lines = text.replace("\r\n", "\n").rstrip("\n").split("\n")
    header, *details, trailer = (line.split("|") for line in lines)
    assert header[0] == "H" and len(header) == 7
    assert all(d[0] == "D" and len(d) == 10 for d in details)
    assert trailer[0] == "T" and len(trailer) == 7
    return header, details, trailer


def check_statement(texts: list[str], account_no: str, bill_date: date, currency: str = "CNY") -> Decimal:
    """Checks every rule of statement-format.md independently; returns the closing balance."""
    day = f"{bill_date:%Y%m%d}"
    serials: set[str] = set()
    previous_time = "000000"
    closing: Decimal | None = None
    for number, text in enumerate(texts, start=1):
        header, details, trailer = parse_part(text)
        assert header[1:4] == [account_no, day, currency]
        assert header[5:] == [str(number), str(len(texts))]
        assert AMOUNT.fullmatch(header[4])
        balance = Decimal(header[4])
        if closing is not None:
            assert balance == closing
        credits = debits = 0
        credit_total = debit_total = Decimal("0.00")
        for d in details:
            assert d[1] == day
            assert re.fullmatch(r"([01][0-9]|2[0-3])[0-5][0-9][0-5][0-9]", d[2]) and d[2] >= previous_time
            previous_time = d[2]
            assert re.fullmatch(r"[0-9A-Za-z]{1,32}", d[3]) and d[3] not in serials
            serials.add(d[3])
            assert AMOUNT.fullmatch(d[5]) and AMOUNT.fullmatch(d[6]) and Decimal(d[5]) > 0
            if d[4] == "C":
                credits += 1
                credit_total += Decimal(d[5])
                balance += Decimal(d[5])
            else:
                assert d[4] == "D"
                debits += 1
                debit_total += Decimal(d[5])
                balance -= Decimal(d[5])
            assert Decimal(d[6]) == balance
            assert d[7] == "" or re.fullmatch(r"[0-9]+", d[7])
        assert all(AMOUNT.fullmatch(field) for field in trailer[4:])
        assert trailer[1:4] == [str(credits + debits), str(credits), str(debits)]
        assert [Decimal(t) for t in trailer[4:]] == [credit_total, debit_total, balance]
        closing = balance
    assert closing is not None
    return closing


def test_generated_statement_follows_every_rule() -> None:
    statement = generate_statement(ACCOUNT, BILL_DATE, seed=3, lines=2000, parts=3, currency="USD")
    assert statement.part_line_counts == (667, 667, 666)
    texts = statement.part_texts()
    assert check_statement(texts, ACCOUNT, BILL_DATE, "USD") == statement.closing_balance
    details = [d for text in texts for d in parse_part(text)[1]]
    transactions = statement.transactions()
    assert [len(p) for p in statement.parts] == [667, 667, 666]
    assert [
        (t.serial_no, t.trade_time, t.direction, str(t.amount), str(t.balance_after)) for t in transactions
    ] == [(d[3], d[2], d[4], d[5], d[6]) for d in details]
    assert [(t.counterparty_account, t.counterparty_name, t.memo) for t in transactions] == [
        (d[7], d[8], d[9]) for d in details
    ]
    # What a realistic day holds.
    assert {d[4] for d in details} == {"C", "D"}
    assert any(d[7] == "" and d[9] == "手续费" for d in details)
    assert any(d[7] == "" and d[9] == "" for d in details)
    assert any(d[9] == "" and d[7] != "" for d in details)
    assert any(d[9] in ("货款", "报销") for d in details)
    assert any(re.fullmatch(r"[A-Za-z].* .*", d[8]) for d in details)
    assert any(any(len(ch.encode("gb18030")) == 4 for ch in d[8]) for d in details)
    assert any(d[5] == "0.01" for d in details) or any(Decimal(d[5]) < 1 for d in details)
    assert max(Decimal(d[5]) for d in details) > 100_000


def test_negative_balances_and_exact_money() -> None:
    statement = generate_statement(ACCOUNT, BILL_DATE, seed=1, lines=10, opening_balance=Decimal("-0.05"))
    assert statement.part_texts()[0].startswith(f"H|{ACCOUNT}|20261124|CNY|-0.05|1|1\n")
    assert check_statement(statement.part_texts(), ACCOUNT, BILL_DATE) == statement.closing_balance
    with pytest.raises(ValueError):
        generate_statement(ACCOUNT, BILL_DATE, seed=1, lines=1, opening_balance=Decimal("1.005"))


def test_four_byte_characters_are_encoded_in_gb18030() -> None:
    statement = generate_statement(ACCOUNT, BILL_DATE, seed=5, lines=3000)
    with zipfile.ZipFile(io.BytesIO(statement.to_zip_bytes())) as archive:
        raw = archive.read(archive.namelist()[0])
    assert "𠀀".encode("gb18030") == b"\x95\x32\x82\x36"
    assert b"\x95\x32\x82\x36" in raw and "䶮".encode("gb18030") in raw
    assert raw.decode("gb18030") == statement.part_texts()[0]
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")


def test_gb18030_member_names_without_the_utf8_flag() -> None:
    statement = generate_statement(ACCOUNT, BILL_DATE, seed=1, lines=5, parts=2, gb18030_names=True)
    assert statement.member_names == [f"对账单_{ACCOUNT}_20261124_00{n}.txt" for n in (1, 2)]
    data = statement.to_zip_bytes()
    assert "对账单".encode("gb18030") in data and "对账单".encode() not in data
    with zipfile.ZipFile(io.BytesIO(data), metadata_encoding="gb18030") as archive:
        assert archive.namelist() == statement.member_names
        assert all(info.flag_bits & 0x800 == 0 for info in archive.infolist())
        assert archive.testzip() is None
        assert [archive.read(n).decode("gb18030") for n in archive.namelist()] == statement.part_texts()
    plain = generate_statement(ACCOUNT, BILL_DATE, seed=1, lines=5, parts=2)
    assert plain.member_names == [f"{ACCOUNT}_20261124_00{n}.txt" for n in (1, 2)]
    with zipfile.ZipFile(io.BytesIO(plain.to_zip_bytes())) as archive:
        assert archive.namelist() == plain.member_names


def test_statements_are_determined_by_seed_account_and_date() -> None:
    def zipped(seed: int = 1, account: str = ACCOUNT, day: date = BILL_DATE) -> bytes:
        return generate_statement(account, day, seed=seed, lines=40, parts=2).to_zip_bytes()

    assert zipped() == zipped()
    assert len({zipped(), zipped(seed=2), zipped(account=OTHER_ACCOUNT), zipped(day=date(2026, 11, 23))}) == 4
    # How a day is cut into parts does not change the day.
    one = generate_statement(ACCOUNT, BILL_DATE, seed=1, lines=40, parts=1)
    three = generate_statement(ACCOUNT, BILL_DATE, seed=1, lines=40, parts=3)
    assert one.transactions() == three.transactions()
    assert one.closing_balance == three.closing_balance


def test_line_endings_and_final_newline() -> None:
    statement = generate_statement(ACCOUNT, BILL_DATE, seed=1, lines=20)
    crlf = statement.part_texts(line_ending="\r\n")[0]
    assert crlf.endswith("\r\n") and crlf.count("\r\n") == 22 and "\n" not in crlf.replace("\r\n", "")
    bare = statement.part_texts(final_newline=False)[0]
    assert bare.startswith("H|") and re.search(r"\nT\|[^\n]*\Z", bare)
    with zipfile.ZipFile(io.BytesIO(statement.to_zip_bytes(line_ending="\r\n", final_newline=False))) as z:
        assert z.read(z.namelist()[0]).decode("gb18030") == crlf.removesuffix("\r\n")
    with pytest.raises(ValueError):
        statement.part_texts(line_ending="\r")


def test_parts_may_have_no_lines() -> None:
    statement = generate_statement(ACCOUNT, BILL_DATE, seed=1, lines=2, parts=4)
    assert statement.part_line_counts == (1, 1, 0, 0)
    texts = statement.part_texts()
    assert check_statement(texts, ACCOUNT, BILL_DATE) == statement.closing_balance
    closing = statement.closing_balance
    assert texts[3] == f"H|{ACCOUNT}|20261124|CNY|{closing}|4|4\nT|0|0|0|0.00|0.00|{closing}\n"
    with zipfile.ZipFile(io.BytesIO(statement.to_zip_bytes(compression=zipfile.ZIP_STORED))) as archive:
        assert len(archive.namelist()) == 4
    empty = generate_statement(ACCOUNT, BILL_DATE, seed=1, lines=0, parts=2)
    assert empty.closing_balance == empty.opening_balance and empty.transactions() == []
    check_statement(empty.part_texts(), ACCOUNT, BILL_DATE)


def test_writing_a_statement_takes_the_same_memory_whatever_its_size(tmp_path: Path) -> None:
    def peak_while_writing(lines: int) -> int:
        statement = generate_statement(ACCOUNT, BILL_DATE, seed=1, lines=lines, parts=2)
        tracemalloc.start()
        try:
            statement.write_zip(tmp_path / f"{lines}.zip")
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    small, big = peak_while_writing(12_000), peak_while_writing(48_000)
    assert big < small * 1.25, (small, big)
    with zipfile.ZipFile(tmp_path / "48000.zip") as archive:
        text_size = sum(info.file_size for info in archive.infolist())
        assert archive.testzip() is None
    assert big < text_size, (big, text_size)


# --- python -m bankrecon.sources.refbank.simulator ---


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_command_line_simulator_serves_and_stops_on_sigterm() -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bankrecon.sources.refbank.simulator",
            "--port",
            str(port),
            "--min-interval",
            "0",
            "--ready-after",
            "1",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                health = httpx.get(f"{url}/_sim/health", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None and time.monotonic() < deadline, "the simulator did not start"
                time.sleep(0.1)
        assert health.status_code == 200 and health.text == "ok"
        assert process.stdout is not None
        banner = process.stdout.readline()
        assert url in banner and DEMO_MERCHANT_ID in banner
        yesterday = f"{datetime.now(CHINA).date() - timedelta(days=1):%Y%m%d}"
        assert codes(url, 2, bill_date=yesterday) == ["9999", "0000"]
        log = httpx.get(f"{url}/_sim/requests").json()
        assert [(r["bill_date"], r["code"]) for r in log] == [(yesterday, "9999"), (yesterday, "0000")]
    finally:
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    assert err.count(" -> ") == 2 and "0000 成功" in err


def test_command_line_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bankrecon.sources.refbank.simulator", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--min-interval" in result.stdout and "--fail-every" in result.stdout


def test_a_stalled_answer_holds_up_no_other_request(bank: BankSimulator) -> None:
    bank.plan(ACCOUNT, BILL_DATE, StatementPlan(faults=["stall:0.5"]))
    stalled: list[str] = []
    thread = threading.Thread(target=lambda: stalled.append(code(ask(bank.url))))
    thread.start()
    time.sleep(0.1)
    started = time.monotonic()
    assert code(ask(bank.url, account_no=OTHER_ACCOUNT)) == "0000"
    assert time.monotonic() - started < 0.3
    thread.join()
    assert stalled == ["0000"]
