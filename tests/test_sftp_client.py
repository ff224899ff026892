"""The SFTP client against a real SFTP server (asyncssh, on a loopback port, host key made at start)."""

from __future__ import annotations

import asyncio
import hashlib
import re
import socket
import sys
from pathlib import Path

import asyncssh
import pytest

from bankrecon.sources.base import Outcome, SourceUnavailable
from bankrecon.sources.sftp import SFTP
from bankrecon.sources.sftp.client import SftpClient
from bankrecon.sources.sftp.kind import login_of
from bankrecon.store.archive import archive_path
from tests.sftp_setup import BILL_DATE, DATA, DEFAULTS, PASSWORD, PASSWORD_ENV, account, merchant, sftp_server

STATEMENT = (DATA / "mt940_de.sta").read_bytes()
REMOTE = "outbox/DE89370400440532013000/20261124.sta"


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)


def _place(root: Path, relative: str, content: bytes) -> Path:
    target = root / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(content)
    return target


async def test_a_file_not_there_yet_is_not_ready_then_is_downloaded_under_its_sha256(tmp_path: Path) -> None:
    async with sftp_server(tmp_path) as server:
        owner = merchant(server)
        client = SFTP.client(owner, DEFAULTS)
        missing = await client.ask(account(owner), BILL_DATE, "r1", tmp_path / "data")
        assert (missing.outcome, missing.code) == (Outcome.NOT_READY, "NO_FILE")
        _place(server.root, REMOTE, STATEMENT)
        ready = await client.ask(account(owner), BILL_DATE, "r2", tmp_path / "data")
    assert ready.outcome is Outcome.READY and ready.archive is not None
    digest = hashlib.sha256(STATEMENT).hexdigest()
    assert (ready.archive.sha256, ready.archive.size, ready.archive.file_name) == (
        digest,
        len(STATEMENT),
        "20261124.sta",
    )
    assert archive_path(tmp_path / "data", digest).read_bytes() == STATEMENT


async def test_a_growing_file_is_not_ready_until_its_size_stays(tmp_path: Path) -> None:
    async with sftp_server(tmp_path) as server:
        owner = merchant(server)
        target = _place(server.root, REMOTE, STATEMENT[:100])

        async def write_on() -> None:
            await asyncio.sleep(0.1)
            target.write_bytes(STATEMENT)

        growing = asyncio.create_task(write_on())
        answer = await SFTP.client(owner, DEFAULTS).ask(account(owner), BILL_DATE, "r1", tmp_path / "data")
        await growing
        assert (answer.outcome, answer.code) == (Outcome.NOT_READY, "NOT_STABLE")
        assert not list((tmp_path / "data" / "archives").glob("*.zip"))
        settled = await SFTP.client(owner, DEFAULTS).ask(account(owner), BILL_DATE, "r2", tmp_path / "data")
    assert settled.archive is not None and settled.archive.size == len(STATEMENT)


async def test_with_ready_marker_the_file_waits_for_its_done_file_and_a_glob_skips_it(tmp_path: Path) -> None:
    async with sftp_server(tmp_path) as server:
        owner = merchant(server)
        marked = account(owner, ready="marker", path="/outbox/{account_no}/*_{bill_date:%Y%m%d}.sta")
        _place(server.root, "outbox/DE89370400440532013000/STA_20261124.sta", STATEMENT)
        waiting = await SFTP.client(owner, DEFAULTS).ask(marked, BILL_DATE, "r1", tmp_path / "data")
        assert (waiting.outcome, waiting.code) == (Outcome.NOT_READY, "NO_MARKER")
        _place(server.root, "outbox/DE89370400440532013000/STA_20261124.sta.done", b"")
        ready = await SFTP.client(owner, DEFAULTS).ask(marked, BILL_DATE, "r2", tmp_path / "data")
    assert ready.archive is not None and ready.archive.file_name == "STA_20261124.sta"


async def test_a_glob_matching_two_files_is_rejected(tmp_path: Path) -> None:
    async with sftp_server(tmp_path) as server:
        owner = merchant(server)
        _place(server.root, "outbox/a_20261124.sta", STATEMENT)
        _place(server.root, "outbox/b_20261124.sta", STATEMENT)
        answer = await SFTP.client(owner, DEFAULTS).ask(
            account(owner, path="/outbox/*_{bill_date:%Y%m%d}.sta"), BILL_DATE, "r1", tmp_path / "data"
        )
    assert (answer.outcome, answer.code) == (Outcome.REJECTED, "AMBIGUOUS")
    assert answer.advice is not None and "one file" in answer.advice


async def test_a_changed_host_key_is_rejected_and_nothing_is_downloaded(tmp_path: Path) -> None:
    async with sftp_server(tmp_path) as server:
        _place(server.root, REMOTE, STATEMENT)
        other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
        server.known_hosts_file.write_text(f"[127.0.0.1]:{server.port} {other}")
        owner = merchant(server)
        answer = await SFTP.client(owner, DEFAULTS).ask(account(owner), BILL_DATE, "r1", tmp_path / "data")
    assert (answer.outcome, answer.code) == (Outcome.REJECTED, "HOST_KEY")
    assert answer.advice is not None and "known_hosts_file" in answer.advice
    assert not (tmp_path / "data" / "archives").exists()


async def test_a_wrong_password_is_rejected_with_what_to_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "wrong")
    async with sftp_server(tmp_path) as server:
        owner = merchant(server)
        answer = await SFTP.client(owner, DEFAULTS).ask(account(owner), BILL_DATE, "r1", tmp_path / "data")
    assert (answer.outcome, answer.code) == (Outcome.REJECTED, "LOGIN")
    assert answer.advice is not None and "password_env" in answer.advice


async def test_a_private_key_logs_in(tmp_path: Path) -> None:
    key = asyncssh.generate_private_key("ssh-ed25519")
    key_file = tmp_path / "id_ed25519"
    key.write_private_key(str(key_file))
    async with sftp_server(tmp_path, password=None, client_key=key) as server:
        _place(server.root, REMOTE, STATEMENT)
        owner = merchant(server, password_env=None, private_key_file=str(key_file))
        answer = await SFTP.client(owner, DEFAULTS).ask(account(owner), BILL_DATE, "r1", tmp_path / "data")
    assert answer.outcome is Outcome.READY


async def test_no_server_is_unavailable(tmp_path: Path) -> None:
    async with sftp_server(tmp_path) as server:
        pass
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    closed = merchant(server, port=free_port)
    with pytest.raises(SourceUnavailable, match="sftp://"):
        await SFTP.client(closed, DEFAULTS).ask(account(closed), BILL_DATE, "r1", tmp_path / "data")


async def test_after_storing_the_file_and_its_marker_move_once(tmp_path: Path) -> None:
    async with sftp_server(tmp_path) as server:
        owner = merchant(server)
        moving = account(owner, ready="marker", after="move:/outbox/processed/")
        _place(server.root, REMOTE, STATEMENT)
        _place(server.root, REMOTE + ".done", b"")
        answer = await SFTP.client(owner, DEFAULTS).ask(moving, BILL_DATE, "r1", tmp_path / "data")
        assert answer.archive is not None
        await asyncio.to_thread(SFTP.after_stored, moving, BILL_DATE, answer.archive, DEFAULTS)
        # A second attempt of the store finds nothing left to move.
        await asyncio.to_thread(SFTP.after_stored, moving, BILL_DATE, answer.archive, DEFAULTS)
    processed = server.root / "outbox" / "processed"
    assert sorted(path.name for path in processed.iterdir()) == ["20261124.sta", "20261124.sta.done"]
    assert (processed / "20261124.sta").read_bytes() == STATEMENT
    assert not (server.root / REMOTE).exists()


async def test_a_file_replaced_after_storing_is_not_moved(tmp_path: Path) -> None:
    async with sftp_server(tmp_path) as server:
        owner = merchant(server)
        moving = account(owner, after="move:/outbox/processed/")
        target = _place(server.root, REMOTE, STATEMENT)
        answer = await SFTP.client(owner, DEFAULTS).ask(moving, BILL_DATE, "r1", tmp_path / "data")
        assert answer.archive is not None
        target.write_bytes(STATEMENT + b"\r\n")
        problem = await SftpClient(login_of(owner, DEFAULTS)).move_away(
            moving, BILL_DATE, answer.archive, "/outbox/processed/"
        )
    assert problem is not None and "no longer the file that was stored" in problem
    assert target.exists()


@pytest.mark.parametrize(
    ("entry", "error"),
    [
        ({"password_env": None}, "give one of private_key_file and password_env"),
        ({"known_hosts_file": "/nonexistent/known_hosts"}, "known_hosts_file /nonexistent/known_hosts"),
        ({"password_env": "BANKRECON_TEST_UNSET"}, "BANKRECON_TEST_UNSET is not set"),
    ],
)
async def test_merchant_keys_are_checked_in_one_line(
    tmp_path: Path, entry: dict[str, str], error: str
) -> None:
    async with sftp_server(tmp_path) as server:
        with pytest.raises(ValueError, match=error):
            merchant(server, **entry)


@pytest.mark.parametrize(
    ("entry", "error"),
    [
        ({"path": "/outbox/{iban}.sta"}, "names only"),
        ({"after": "move:processed"}, "after"),
        ({"ready": "soon"}, "ready"),
    ],
)
def test_account_keys_are_checked_in_one_line(entry: dict[str, str], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        SFTP.account_settings({"format": "mt940", "path": "/outbox/x.sta"} | entry)


async def test_the_simulator_serves_a_given_statement_file_as_it_is(tmp_path: Path) -> None:
    given = DATA / "camt053_batches.xml"
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "bankrecon.sources.sftp.simulator", "--port", "0"),
        *("--root", str(tmp_path / "root"), "--known-hosts", str(tmp_path / "known_hosts")),
        *("--password-env", PASSWORD_ENV, "--file", str(given), "--path", "/outbox/statement.xml"),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        started = (await asyncio.wait_for(process.stdout.readline(), timeout=30)).decode()
        found = re.search(r"127\.0\.0\.1:([0-9]+) user ([^:\s]+):", started)
        assert found is not None, started
        async with (
            asyncssh.connect(
                "127.0.0.1",
                int(found.group(1)),
                username=found.group(2),
                password=PASSWORD,
                known_hosts=str(tmp_path / "known_hosts"),
                client_keys=(),
                agent_path=None,
                config=(),
            ) as connection,
            connection.start_sftp_client() as sftp,
        ):
            await sftp.stat("/outbox/statement.xml")  # the look on which the file appears
            async with sftp.open("/outbox/statement.xml", "rb") as served:
                content: bytes = await served.read()
        assert content == given.read_bytes()
    finally:
        process.terminate()
        await process.wait()
