"""A real SFTP server on a loopback port, rooted in a directory, with a host key made at start: for the
tests and the demo (``python -m bankrecon.sources.sftp.simulator --help``)."""

from __future__ import annotations

import argparse
import asyncio
import os
from datetime import date, timedelta
from decimal import Decimal
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


# A :86: field's lines: 65 characters after the tag, then 65 a line, wrapped anywhere.
_LINE = 65


def _narrative(content: str) -> list[str]:
    lines = [f":86:{content[:_LINE]}"]
    lines.extend(content[start : start + _LINE] for start in range(_LINE, len(content), _LINE))
    return lines


def _mt940_amount(amount: Decimal) -> str:
    return f"{abs(amount):.2f}".replace(".", ",")


def _mt940_balance(tag: str, day: str, balance: Decimal) -> str:
    return f"{tag}{'C' if balance >= 0 else 'D'}{day}EUR{_mt940_amount(balance)}"


def demo_mt940(account_no: str, bill_date: date, pages: int = 1) -> bytes:
    """A German bank's MT940 statement of ``account_no`` closing on ``bill_date``, in ``pages`` messages.

    As German banks write them: structured ``:86:`` wrapped at 65 characters (even inside a
    ``?NN`` mark), ``EREF+`` end-to-end ids, ``KREF+`` on the ``:61:`` line for the customer
    reference in ``:86:``, ``NONREF``, a reversed credit (``RC``), a line without a bank reference.
    """
    day, entry = f"{bill_date:%y%m%d}", f"{bill_date:%m%d}"
    entries = [
        (
            Decimal("250.00"),
            f":61:{day}{entry}CR250,00NTRFNONREF//{day}0000001",
            "166?00GUTSCHRIFT?100399?20EREF+INV-1001 Kunde 4711?21SVWZ+Rechnung 1001 vom "
            f"{bill_date:%d.%m.%Y}?22 Kundennr 4711?30COBADEFFXXX?31DE21500500009876543210"
            "?32Kunde AG?33 Zweigstelle Nord",
        ),
        (
            Decimal("-40.50"),
            f":61:{day}{entry}DR40,50NTRFKREF+//{day}0000002",
            "116?00SEPA-UEBERW?100399?20EREF+NONREF?21KREF+PO-2026-0815 Bueromateria?22l?23SVWZ+Bestellung"
            " 0815 Bueromaterial?24 und Toner?30GENODEF1S04?31DE02120300000000202051?32Buerobedarf GmbH",
        ),
        (Decimal("12.00"), f":61:{day}{entry}CR12,00NMSCNONREF", "079?00SAMMLER?109800?20SAMMLER 0001"),
        (
            Decimal("-12.00"),
            f":61:{day}{entry}RCR12,00NRTIMSGIDSAMMLER0001//R{day}0000004",
            "116?00SEPA-UEBERW/STORNO?100399",
        ),
        (
            Decimal("-1500.00"),
            f":61:{day}{entry}DR1500,NTRFKREF+//{day}0000005",
            "191?00SEPA-UEBERW?100399?20KREF+PayId LOHN-11 ?21Sammler?22MTLG:SEPA-Ueberweisungsauft?23rag"
            " Datei mit 0000004 Zahlu?24ngen",
        ),
    ]
    per_page = -(-len(entries) // pages)
    balance = Decimal("3000.00")
    lines = []
    for number in range(1, pages + 1):
        mine = entries[(number - 1) * per_page : number * per_page]
        lines += [f":20:STARTUMS{number:05}", f":25:{account_no}", f":28C:00117/{number:05}"]
        lines.append(_mt940_balance(":60F:" if number == 1 else ":60M:", day, balance))
        for amount, statement_line, narrative in mine:
            lines += [statement_line, *_narrative(narrative)]
            balance += amount
        last = number == pages
        lines.append(_mt940_balance(":62F:" if last else ":62M:", day, balance))
        lines += [_mt940_balance(":64:", day, balance)] if last else []
        lines.append("-")
    return ("\r\n".join(lines) + "\r\n").encode()


def demo_camt053(account_no: str, bill_date: date) -> bytes:
    """A bank's camt.053.001.02 statement of ``account_no`` closing on ``bill_date``.

    As banks write them: ``ElctrncSeqNb`` the bank's running number of its statements (not 1),
    a salary batch whose details are withheld, a batch listed in full with its amounts, charges
    whose two ``TxDtls`` repeat one ``AcctSvcrRef``.
    """
    day, before = bill_date.isoformat(), (bill_date - timedelta(days=1)).isoformat()
    sequence = 130000000 + bill_date.timetuple().tm_yday
    ref = f"{bill_date:%y%m%d}"

    def amount(value: str) -> str:
        return f'<AmtDtls><TxAmt><Amt Ccy="EUR">{value}</Amt></TxAmt></AmtDtls>'

    def entry(value: str, mark: str, key: str, details: str) -> str:
        return (
            f'<Ntry><Amt Ccy="EUR">{value}</Amt><CdtDbtInd>{mark}</CdtDbtInd><Sts>BOOK</Sts>'
            f"<BookgDt><Dt>{day}</Dt></BookgDt><ValDt><Dt>{day}</Dt></ValDt><AcctSvcrRef>{key}</AcctSvcrRef>"
            f"<NtryDtls>{details}</NtryDtls></Ntry>"
        )

    entries = [
        entry(
            "250.00",
            "CRDT",
            f"{ref}RCDT0001",
            "<TxDtls><Refs><EndToEndId>INV-1001</EndToEndId></Refs>"
            "<RltdPties><Dbtr><Nm>Kunde AG</Nm></Dbtr><DbtrAcct><Id><IBAN>DE21500500009876543210</IBAN></Id>"
            "</DbtrAcct></RltdPties><RmtInf><Ustrd>Rechnung 1001</Ustrd></RmtInf></TxDtls>",
        ),
        entry(
            "1500.00",
            "DBIT",
            f"{ref}SALA0002",
            "<Btch><PmtInfId>LOHN-11</PmtInfId><NbOfTxs>4</NbOfTxs></Btch><TxDtls><Purp><Cd>SALA</Cd></Purp></TxDtls>",
        ),
        entry(
            "600.00",
            "CRDT",
            f"{ref}RCDT0003",
            "<Btch><NbOfTxs>2</NbOfTxs></Btch>"
            f"<TxDtls><Refs><EndToEndId>INV-1002</EndToEndId></Refs>{amount('400.00')}"
            "<RltdPties><Dbtr><Nm>Muster GmbH</Nm></Dbtr></RltdPties></TxDtls>"
            f"<TxDtls><Refs><EndToEndId>INV-1003</EndToEndId></Refs>{amount('200.00')}"
            "<RltdPties><Dbtr><Nm>Beispiel KG</Nm></Dbtr></RltdPties></TxDtls>",
        ),
        entry(
            "9.80",
            "DBIT",
            f"{ref}CHRG0004",
            f"<TxDtls><Refs><AcctSvcrRef>{ref}CHRG01</AcctSvcrRef></Refs>{amount('4.90')}</TxDtls>"
            f"<TxDtls><Refs><AcctSvcrRef>{ref}CHRG01</AcctSvcrRef></Refs>{amount('4.90')}</TxDtls>",
        ),
    ]

    def balance(code: str, value: str, on: str) -> str:
        return (
            f'<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">{value}</Amt>'
            f"<CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>{on}</Dt></Dt></Bal>"
        )

    document = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02">'
        f"<BkToCstmrStmt><GrpHdr><MsgId>053D{day}N{sequence}</MsgId><CreDtTm>{day}T22:04:52+01:00</CreDtTm>"
        "<MsgPgntn><PgNb>1</PgNb><LastPgInd>true</LastPgInd></MsgPgntn></GrpHdr>"
        f"<Stmt><Id>{account_no}-{bill_date:%Y%m%d}</Id><ElctrncSeqNb>{sequence}</ElctrncSeqNb>"
        f"<LglSeqNb>{bill_date.timetuple().tm_yday}</LglSeqNb><CreDtTm>{day}T22:04:52+01:00</CreDtTm>"
        f"<Acct><Id><IBAN>{account_no}</IBAN></Id><Ccy>EUR</Ccy></Acct>"
        f"{balance('PRCD', '3000.00', before)}{balance('CLBD', '2340.20', day)}"
        "<TxsSummry><TtlNtries><NbOfNtries>4</NbOfNtries></TtlNtries>"
        "<TtlCdtNtries><NbOfNtries>2</NbOfNtries><Sum>850.00</Sum></TtlCdtNtries>"
        "<TtlDbtNtries><NbOfNtries>2</NbOfNtries><Sum>1509.80</Sum></TtlDbtNtries></TxsSummry>"
        f"{''.join(entries)}</Stmt></BkToCstmrStmt></Document>\n"
    )
    return document.encode()


def demo_statement(account_no: str, bill_date: date, format: str = "mt940", pages: int = 1) -> bytes:
    """The demo's statement file of ``account_no`` for ``bill_date`` in ``format`` (mt940 or camt053)."""
    return (
        demo_camt053(account_no, bill_date)
        if format == "camt053"
        else demo_mt940(account_no, bill_date, pages)
    )


async def _serve(arguments: argparse.Namespace) -> None:
    root = Path(arguments.root)
    if arguments.file is not None:
        content = Path(arguments.file).read_bytes()
    else:
        content = demo_statement(
            arguments.account, date.fromisoformat(arguments.date), arguments.format, arguments.pages
        )
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
    parser = argparse.ArgumentParser(description="An SFTP server holding one demo statement file.")
    parser.add_argument("--root", required=True, help="the directory the server shows as /")
    parser.add_argument("--known-hosts", required=True, help="where to write the known_hosts line")
    parser.add_argument("--password-env", required=True, help="the variable holding the demo password")
    parser.add_argument("--account", help="the demo statement's account")
    parser.add_argument("--date", help="the demo statement's bill date, YYYY-MM-DD")
    parser.add_argument("--path", default="/outbox/statement.sta", help="where the statement lies")
    parser.add_argument("--format", choices=("mt940", "camt053"), default="mt940")
    parser.add_argument(
        "--file", help="serve this statement file as it is (a bank's real one) instead of a demo statement"
    )
    parser.add_argument(
        "--pages",
        type=int,
        choices=(1, 2),
        default=1,
        help="MT940: messages the statement spans (default: 1)",
    )
    parser.add_argument("--port", type=int, default=2222)
    parser.add_argument(
        "--absent-for", type=int, default=0, help="looks at the path that find no file yet (default: 0)"
    )
    arguments = parser.parse_args()
    if arguments.file is None and (arguments.account is None or arguments.date is None):
        parser.error("give --account and --date (a demo statement), or --file")
    asyncio.run(_serve(arguments))


if __name__ == "__main__":
    main()
