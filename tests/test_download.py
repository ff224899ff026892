"""The fetch streams the bank's answer to disk: large bodies, any key order, escapes, heartbeats."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from pydantic import SecretStr
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.statements import StatementActivities
from bankrecon.models import FetchResult, StatementKey
from bankrecon.sources.refbank.client import BankClient, BankUnavailable, read_answer
from bankrecon.sources.refbank.simulator.generator import generate_statement
from bankrecon.sources.refbank.simulator.server import (
    DEMO_MERCHANT_ID,
    DEMO_MERCHANT_SECRET,
    BankSimulator,
    StatementPlan,
)
from bankrecon.store.archive import archive_path
from tests.harness import ACCOUNT, BILL_DATE, settings_for

# Past the simulator's in-memory limit, so it streams the body from a file too; ~5 MB of zip.
LARGE_LINES = 250_000
ZIP = b"PK\x03\x04 pretend zip bytes " * 5000
SHA = hashlib.sha256(ZIP).hexdigest()


def _staged_leftovers(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "archives").glob(".incoming-*"))


async def _fetch(
    client: Client, tmp_path: Path, bank: BankSimulator, **overrides: object
) -> tuple[FetchResult, list[object]]:
    data_dir = tmp_path / "data"
    settings = settings_for(data_dir, f"sqlite:///{tmp_path / 'db.sqlite'}", bank.url, "unused", **overrides)
    activities = StatementActivities.from_settings(settings)
    # The fetch reports each attempt to its workflow; here there is none, and it says so in the log.
    env = ActivityEnvironment(client=client)
    beats: list[object] = []
    env.on_heartbeat = lambda *details: beats.append(details)
    try:
        result = await env.run(
            activities.fetch_statement, StatementKey(account_no=ACCOUNT, bill_date=BILL_DATE)
        )
    finally:
        await activities.close()
    return result, beats


async def test_a_large_mime_wrapped_answer_is_stored_intact(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path, bank: BankSimulator
) -> None:
    bank.plan(ACCOUNT, BILL_DATE, StatementPlan(lines=LARGE_LINES, parts=2, mime_wrap=True))

    result, _ = await _fetch(time_skipping_env.client, tmp_path, bank)

    statement = generate_statement(ACCOUNT, BILL_DATE, seed=bank.seed, lines=LARGE_LINES, parts=2)
    expected = hashlib.sha256(statement.to_zip_bytes()).hexdigest()
    archive = result.archive
    assert archive is not None and archive.sha256 == expected
    stored = archive_path(tmp_path / "data", expected)
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == expected
    assert archive.size == stored.stat().st_size
    assert _staged_leftovers(tmp_path / "data") == []


async def test_the_fetch_heartbeats_while_the_bank_takes_its_time(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path, bank: BankSimulator
) -> None:
    # The answer comes after 11 s, past two HEARTBEAT_EVERY of 5 s: beats must go on meanwhile.
    bank.plan(ACCOUNT, BILL_DATE, StatementPlan(lines=20, faults=["stall:11"]))

    result, beats = await _fetch(time_skipping_env.client, tmp_path, bank, bank_request_timeout_seconds=30)

    assert result.archive is not None
    assert len(beats) >= 2


async def test_a_quick_fetch_sends_no_heartbeat(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path, bank: BankSimulator
) -> None:
    # The server counts the heartbeat timeout from the attempt's start: a beat within the
    # first HEARTBEAT_EVERY would only cost it a call, for each of a day's 48 attempts.
    bank.plan(ACCOUNT, BILL_DATE, StatementPlan(lines=20))

    result, beats = await _fetch(time_skipping_env.client, tmp_path, bank)

    assert result.archive is not None
    assert beats == []


def _answer(tmp_path: Path, body: bytes) -> Path:
    path = tmp_path / "body.json"
    path.write_bytes(body)
    return path


def _content(wrap: bool = False) -> str:
    text = base64.b64encode(ZIP).decode()
    if wrap:
        text = "\r\n".join(text[i : i + 76] for i in range(0, len(text), 76))
    return text


@pytest.mark.parametrize("content_first", [True, False])
def test_any_key_order_and_json_escapes(tmp_path: Path, content_first: bool) -> None:
    # Some encoders escape "/" as "\/" and write non-ASCII as \u escapes; MIME breaks are "\r\n".
    content = json.dumps(_content(wrap=True)).replace("/", "\\/")
    fields = [f'"file_content": {content}', f'"file_sha256": "{SHA}"', '"file_name": "a.zip"']
    if not content_first:
        fields.reverse()
    body = f'{{"data": {{{", ".join(fields)}}}, "message": "\\u6210\\u529f", "code": "0000"}}'
    data_dir = tmp_path / "data"

    answer = read_answer(_answer(tmp_path, body.encode()), data_dir)

    assert (answer.code, answer.message, answer.damage) == ("0000", "成功", None)
    assert answer.data == {"file_name": "a.zip", "file_sha256": SHA}
    assert answer.archive is not None and answer.archive.sha256 == SHA
    assert archive_path(data_dir, SHA).read_bytes() == ZIP
    assert _staged_leftovers(data_dir) == []


@pytest.mark.parametrize(
    ("data", "damage"),
    [
        ({"file_name": "a.zip", "file_sha256": SHA}, "without file_content"),
        ({"file_content": _content(), "file_name": "a.zip"}, "without file_sha256"),
        ({"file_content": _content(), "file_name": "a.zip", "file_sha256": "0" * 64}, "mismatch"),
        ({"file_content": _content()[:-2], "file_name": "a.zip", "file_sha256": SHA}, "multiple of 4"),
        ({"file_content": "*" + _content()[1:], "file_name": "a.zip", "file_sha256": SHA}, "invalid base64"),
    ],
)
def test_a_damaged_answer_is_named_and_leaves_nothing(
    tmp_path: Path, data: dict[str, str], damage: str
) -> None:
    body = json.dumps({"code": "0000", "message": "成功", "data": data}).encode()
    data_dir = tmp_path / "data"

    answer = read_answer(_answer(tmp_path, body), data_dir)

    assert answer.archive is None and answer.damage is not None and damage in answer.damage
    assert sorted((data_dir / "archives").iterdir()) == []


def test_a_refusal_keeps_no_file(tmp_path: Path) -> None:
    body = json.dumps({"code": "9999", "message": "系统错误", "data": None}).encode()

    answer = read_answer(_answer(tmp_path, body), tmp_path / "data")

    assert (answer.code, answer.data, answer.archive, answer.damage) == ("9999", None, None, None)
    assert sorted((tmp_path / "data" / "archives").iterdir()) == []


@pytest.mark.parametrize(
    "body",
    [
        b"<html>502 Bad Gateway</html>",
        b'{"code": "0000", "data": {"file_content": "QUJD"',  # cut off
        b'{"message": "no code"}',
        b'["code", "0000"]',
        b'{"code": "0000"} trailing',
        b'{"code": "' + b"9" * 100_000 + b'"}',  # bounded strings
        b"[" * 100 + b"]" * 100,  # bounded nesting
    ],
)
def test_a_body_that_is_not_the_banks_json_is_unavailable(tmp_path: Path, body: bytes) -> None:
    with pytest.raises(BankUnavailable):
        read_answer(_answer(tmp_path, body), tmp_path / "data")
    assert sorted((tmp_path / "data" / "archives").iterdir()) == []


async def test_an_answer_past_the_size_limit_is_cut_off_and_leaves_nothing(
    tmp_path: Path, bank: BankSimulator
) -> None:
    bank.plan(ACCOUNT, BILL_DATE, StatementPlan(lines=2_000))
    client = BankClient(
        bank.url,
        DEMO_MERCHANT_ID,
        SecretStr(DEMO_MERCHANT_SECRET),
        connect_timeout=2,
        request_timeout=10,
        max_answer_bytes=50_000,
    )
    try:
        with pytest.raises(BankUnavailable, match="longer than 50000 bytes"):
            await client.download_statement(ACCOUNT, BILL_DATE, "r1", tmp_path / "data")
    finally:
        await client.aclose()
    assert sorted((tmp_path / "data" / "archives").iterdir()) == []
