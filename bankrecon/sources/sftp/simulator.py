"""A real SFTP server on a loopback port, rooted in a directory, with a host key made at start: for the
tests and the demo (``python -m bankrecon.sources.sftp.simulator --help``)."""

from __future__ import annotations

import argparse
import asyncio
import os
from datetime import date
from pathlib import Path
from types import TracebackType
from typing import Any

import asyncssh

DEMO_USER = "bankrecon"


class _Login(asyncssh.SSHServer):
    def __init__(self, username: str, password: str | None):
        self._username = username
        self._password = password

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return self._password is not None

    def validate_password(self, username: str, password: str) -> bool:
        return username == self._username and password == self._password


class FilePlan:
    """A file that appears at ``path`` (below the root) on the look after ``absent_for`` looks at it."""

    def __init__(self, path: str, content: bytes, absent_for: int):
        self.path = path
        self.content = content
        self.absent_for = absent_for
        self.looks = 0


class _PlannedSftp(asyncssh.SFTPServer):
    def __init__(self, channel: asyncssh.SSHServerChannel[bytes], root: Path, plans: list[FilePlan]):
        super().__init__(channel, chroot=str(root).encode())
        self._root = root
        self._plans = plans

    def stat(self, path: bytes) -> Any:
        for plan in self._plans:
            if path.decode() == plan.path:
                plan.looks += 1
                if plan.looks == plan.absent_for + 1:
                    target = self._root / plan.path.lstrip("/")
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(plan.content)
        return super().stat(path)


class SftpServer:
    """``async with SftpServer(root, known_hosts_file, password=...) as server``: ``server.port``."""

    def __init__(
        self,
        root: Path,
        known_hosts_file: Path,
        *,
        username: str = DEMO_USER,
        password: str | None = None,
        client_key: asyncssh.SSHKey | None = None,
        port: int = 0,
        plans: list[FilePlan] | None = None,
    ):
        self.root = root
        self.known_hosts_file = known_hosts_file
        self.username = username
        self.host_key = asyncssh.generate_private_key("ssh-ed25519")
        self._password = password
        self._client_key = client_key
        self._port = port
        self.plans = plans or []
        self._acceptor: asyncssh.SSHAcceptor | None = None

    @property
    def port(self) -> int:
        assert self._acceptor is not None
        return self._acceptor.get_port()

    async def __aenter__(self) -> SftpServer:
        authorized = None
        if self._client_key is not None:
            authorized = asyncssh.import_authorized_keys(self._client_key.export_public_key().decode())
        self._acceptor = await asyncssh.listen(
            "127.0.0.1",
            self._port,
            server_host_keys=[self.host_key],
            server_factory=lambda: _Login(self.username, self._password),
            authorized_client_keys=authorized,
            sftp_factory=lambda channel: _PlannedSftp(channel, self.root, self.plans),
            allow_scp=False,
        )
        public = self.host_key.export_public_key().decode().strip()
        self.known_hosts_file.write_text(f"[127.0.0.1]:{self.port} {public}\n")
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        assert self._acceptor is not None
        self._acceptor.close()
        await self._acceptor.wait_closed()


def demo_statement(account_no: str, bill_date: date) -> bytes:
    """A small German-style MT940 statement of ``account_no`` closing on ``bill_date``."""
    day = f"{bill_date:%y%m%d}"
    lines = [
        ":20:STARTUMSE",
        f":25:{account_no}",
        ":28C:00001/001",
        f":60F:C{day}EUR1000,00",
        f":61:{day}{bill_date:%m%d}C250,00NTRFINV-1001//DEMO-{day}-1",
        ":86:166?00SEPA-GUTSCHRIFT?20EREF+INV-1001?21SVWZ+Rechnung 1001?31DE21500500009876543210?32Kunde AG",
        f":61:{day}{bill_date:%m%d}D40,50NTRFNONREF//DEMO-{day}-2",
        ":86:177?00SEPA-UEBERWEISUNG?20SVWZ+Bueromaterial?32Buerobedarf GmbH",
        f":62F:C{day}EUR1209,50",
        "-",
    ]
    return ("\r\n".join(lines) + "\r\n").encode()


async def _serve(arguments: argparse.Namespace) -> None:
    root = Path(arguments.root)
    content = demo_statement(arguments.account, date.fromisoformat(arguments.date))
    plan = FilePlan(arguments.path, content, arguments.absent_for)
    password = os.environ[arguments.password_env]
    async with SftpServer(
        root, Path(arguments.known_hosts), password=password, port=arguments.port, plans=[plan]
    ) as server:
        print(
            f"SFTP on 127.0.0.1:{server.port} user {DEMO_USER}: {arguments.path} appears on look "
            f"{arguments.absent_for + 1}",
            flush=True,
        )
        await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description="An SFTP server holding one demo MT940 statement.")
    parser.add_argument("--root", required=True, help="the directory the server shows as /")
    parser.add_argument("--known-hosts", required=True, help="where to write the known_hosts line")
    parser.add_argument("--password-env", required=True, help="the variable holding the demo password")
    parser.add_argument("--account", required=True)
    parser.add_argument("--date", required=True, help="the bill date, YYYY-MM-DD")
    parser.add_argument("--path", default="/outbox/statement.sta", help="where the statement lies")
    parser.add_argument("--port", type=int, default=2222)
    parser.add_argument(
        "--absent-for", type=int, default=0, help="looks at the path that find no file yet (default: 0)"
    )
    asyncio.run(_serve(parser.parse_args()))


if __name__ == "__main__":
    main()
