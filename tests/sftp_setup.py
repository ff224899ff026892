"""An SFTP merchant, its accounts and a real SFTP server for the tests; imports no Temporal."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, time
from pathlib import Path
from typing import Any

import asyncssh

from bankrecon.sources.base import Account, Defaults, Merchant
from bankrecon.sources.sftp import SFTP
from bankrecon.sources.sftp.simulator import FilePlan, SftpServer

DATA = Path(__file__).parent / "data"
BILL_DATE = date(2026, 11, 24)
PASSWORD_ENV = "BANKRECON_TEST_SFTP_PASSWORD"
PASSWORD = "correct horse battery staple"
DEFAULTS = Defaults(
    bank_base_url="http://unused.invalid", request_timeout_seconds=10, connect_timeout_seconds=5
)
# The sample files in tests/data: format, the account each is for.
SAMPLES = {
    "mt940_de.sta": ("mt940", "DE89370400440532013000"),
    "camt053_001_02.xml": ("camt053", "CH9300762011623852957"),
    "camt053_001_08.xml": ("camt053", "GB29NWBK60161331926819"),
}


@asynccontextmanager
async def sftp_server(
    tmp_path: Path, plans: list[FilePlan] | None = None, **options: Any
) -> AsyncIterator[SftpServer]:
    root = tmp_path / "sftp-root"
    root.mkdir(exist_ok=True)
    given: dict[str, Any] = {"password": PASSWORD, "plans": plans}
    async with SftpServer(root, tmp_path / "known_hosts", **(given | options)) as server:
        yield server


def merchant_entry(server: SftpServer, **overrides: Any) -> dict[str, Any]:
    return {
        "host": "127.0.0.1",
        "port": server.port,
        "username": server.username,
        "password_env": PASSWORD_ENV,
        "known_hosts_file": str(server.known_hosts_file),
    } | overrides


def merchant(server: SftpServer, **overrides: Any) -> Merchant:
    settings = SFTP.merchant_settings(merchant_entry(server, **overrides), DEFAULTS)
    return Merchant(id="bank-sftp", kind="sftp", min_interval_seconds=0, earliest=time(6), settings=settings)


def account(owner: Merchant, account_no: str = "DE89370400440532013000", **keys: Any) -> Account:
    entry: dict[str, Any] = {"format": "mt940", "path": "/outbox/{account_no}/{bill_date:%Y%m%d}.sta"}
    settings = SFTP.account_settings(entry | {"stable_seconds": 0.3} | keys)
    return Account(account_no=account_no, merchant=owner, currency=None, settings=settings)


def changed_host_key(tmp_path: Path, server: SftpServer) -> Path:
    """A known_hosts file trusting, for ``server``'s address, another host key than the one it shows."""
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    path = tmp_path / "trusted_hosts"
    path.write_text(f"[127.0.0.1]:{server.port} {other}\n")
    return path


def accounts_file(
    tmp_path: Path, server: SftpServer, known_hosts: Path, format: str, account_no: str, **account: str
) -> Path:
    """An accounts file of one SFTP merchant (``server``'s port, trusting ``known_hosts``) and one
    account whose statement lies at /outbox/<account_no>/<bill date>.dat; ``account`` adds keys."""
    keys = {"ready": "stable", "stable_seconds": "0.2", "after": "move:/outbox/processed/"} | account
    lines = "\n".join(
        f'{name} = "{value}"' if name != "stable_seconds" else f"{name} = {value}"
        for name, value in keys.items()
    )
    path = tmp_path / "accounts.toml"
    path.write_text(
        f"""
[[merchant]]
id = "bank-sftp"
kind = "sftp"
host = "127.0.0.1"
port = {server.port}
username = "{server.username}"
password_env = "{PASSWORD_ENV}"
known_hosts_file = "{known_hosts}"
min_interval_seconds = 0.3

[[account]]
account_no = "{account_no}"
merchant = "bank-sftp"
format = "{format}"
path = "/outbox/{{account_no}}/{{bill_date:%Y%m%d}}.dat"
{lines}
"""
    )
    return path
