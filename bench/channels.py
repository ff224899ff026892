"""``python -m bench.channels``: each channel's statement ingested against its raw pipeline, in one run.

For every format (WeChat Pay's trade bill, Alipay's trade bill, UnionPay's settlement file, an
MT940 and a camt.053 statement) and size: the simulator's seeded generator (or, for the bank
files, this module's) writes the file once into bench/.work/; then, ``--repeat`` times each and
in the same run, the raw pipeline loads it into a table of its own, and bankrecon ingests it in
a fresh process through the source kind's own ``decode`` (every defence and check) and
``save_statement`` on PostgreSQL, with that process's peak RSS. Medians go to the table printed
at the end and to bench/results-channels.json.

The raw pipelines are what a person would type: shell tools for the channels' CSV and
fixed-width files, and for the bank files the field's own parser (the ``mt-940`` package; lxml
for camt.053) writing COPY text, since no shell tool reads them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from datetime import time as clock_time
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from bankrecon.models import ArchiveRef, PersistRequest, StatementKey
from bankrecon.sources.base import Account, DecodeJob, Merchant, SourceSettings
from bankrecon.sources.registry import source_kind
from bankrecon.statements.common import ArchiveLimits
from bankrecon.store.archive import archive_path
from bankrecon.store.db import make_engine
from bankrecon.store.persistence import save_statement
from bankrecon.store.schema import prepare_schema
from bench.harness import ROOT, Postgres, write_report
from bench.ingest import _sha256, ingest_figures

DAY = date(2026, 11, 24)
UNIONPAY_MER_ID = "802310048993424"
MT940_ACCOUNT = "DE21500500009876543210"
CAMT_ACCOUNT = "CH9300762011623852957"


def _wechatpay_file(out: IO[bytes], rows: int) -> None:
    from bankrecon.sources.wechatpay.simulator.generator import BillShape, write_bill

    write_bill(out, DAY, BillShape(rows=rows), compresslevel=6)


def _alipay_file(out: IO[bytes], rows: int) -> None:
    from bankrecon.sources.alipay.simulator.generator import BillShape, write_bill

    write_bill(out, DAY, BillShape("trade", rows), seed=1)


def _unionpay_file(out: IO[bytes], rows: int) -> None:
    from bankrecon.sources.unionpay.simulator.generator import SettlementShape, write_settlement_zip

    write_settlement_zip(out, DAY, SettlementShape(rows=rows, error_records=10), UNIONPAY_MER_ID)


def _entries(rows: int) -> Iterator[tuple[str, Decimal, int]]:
    """The bank files' entries: direction, amount and number, credits and debits in turn."""
    for n in range(1, rows + 1):
        yield ("C" if n % 3 else "D"), Decimal(n % 9_973 + 1) / 100 + n % 7, n


def _closing(rows: int, opening: Decimal) -> Decimal:
    return opening + sum((amount if way == "C" else -amount for way, amount, _ in _entries(rows)), Decimal())


def _mt940_file(out: IO[bytes], rows: int) -> None:
    """One German-style MT940 statement of ``rows`` entries, each with a structured :86:."""
    day, opening = f"{DAY:%y%m%d}", Decimal("100000.00")

    def money(value: Decimal) -> str:
        return f"{value:.2f}".replace(".", ",")

    out.write(f":20:STARTUMSE\r\n:25:{MT940_ACCOUNT}\r\n:28C:00001/001\r\n".encode())
    out.write(f":60F:C{day}EUR{money(opening)}\r\n".encode())
    for way, amount, n in _entries(rows):
        out.write(
            f":61:{day}{DAY:%m%d}{way}{money(amount)}NTRFINV-{n}//B{n:09d}\r\n"
            f":86:166?00SEPA-GUTSCHRIFT?20EREF+E2E-{n}?21SVWZ+Rechnung {n}"
            f"?30GENODEF1PFK?31DE{n:020d}?32Kunde {n} AG\r\n".encode()
        )
    closing = _closing(rows, opening)
    out.write(f":62F:{'C' if closing >= 0 else 'D'}{day}EUR{money(abs(closing))}\r\n-\r\n".encode())


def _camt053_file(out: IO[bytes], rows: int) -> None:
    """One camt.053.001.02 statement of ``rows`` entries, each with one TxDtls."""
    opening = Decimal("100000.00")
    closing = _closing(rows, opening)
    credits = [(a, n) for way, a, n in _entries(rows) if way == "C"]
    debits = [(a, n) for way, a, n in _entries(rows) if way == "D"]
    out.write(
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt>'
        f"<GrpHdr><MsgId>BENCH-{DAY:%Y%m%d}</MsgId><CreDtTm>{DAY}T23:00:00+01:00</CreDtTm>"
        "<MsgPgntn><PgNb>1</PgNb><LastPgInd>true</LastPgInd></MsgPgntn></GrpHdr>"
        f"<Stmt><Id>{CAMT_ACCOUNT}-{DAY:%Y%m%d}</Id><ElctrncSeqNb>1</ElctrncSeqNb>"
        f"<CreDtTm>{DAY}T23:00:00+01:00</CreDtTm>"
        f"<Acct><Id><IBAN>{CAMT_ACCOUNT}</IBAN></Id><Ccy>CHF</Ccy></Acct>"
        f'<Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy="CHF">{opening}</Amt>'
        f"<CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>{DAY}</Dt></Dt></Bal>"
        f'<Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy="CHF">{abs(closing)}</Amt>'
        f"<CdtDbtInd>{'CRDT' if closing >= 0 else 'DBIT'}</CdtDbtInd><Dt><Dt>{DAY}</Dt></Dt></Bal>"
        f"<TxsSummry><TtlCdtNtries><NbOfNtries>{len(credits)}</NbOfNtries>"
        f"<Sum>{sum(a for a, _ in credits)}</Sum></TtlCdtNtries>"
        f"<TtlDbtNtries><NbOfNtries>{len(debits)}</NbOfNtries>"
        f"<Sum>{sum(a for a, _ in debits)}</Sum></TtlDbtNtries></TxsSummry>".encode()
    )
    for way, amount, n in _entries(rows):
        party = "Dbtr" if way == "C" else "Cdtr"
        out.write(
            f'<Ntry><NtryRef>N{n}</NtryRef><Amt Ccy="CHF">{amount}</Amt>'
            f"<CdtDbtInd>{'CRDT' if way == 'C' else 'DBIT'}</CdtDbtInd><Sts>BOOK</Sts>"
            f"<BookgDt><Dt>{DAY}</Dt></BookgDt><ValDt><Dt>{DAY}</Dt></ValDt>"
            f"<AcctSvcrRef>B{n:09d}</AcctSvcrRef><NtryDtls><TxDtls><Refs><EndToEndId>E2E-{n}</EndToEndId>"
            f"</Refs><RltdPties><{party}><Nm>Kunde {n} AG</Nm></{party}><{party}Acct><Id><IBAN>"
            f"CH{n:019d}</IBAN></Id></{party}Acct></RltdPties><RmtInf><Ustrd>Rechnung {n}</Ustrd>"
            "</RmtInf></TxDtls></NtryDtls></Ntry>".encode()
        )
    out.write(b"</Stmt></BkToCstmrStmt></Document>\n")


# The raw pipelines' tables: the columns each file gives, as text (amounts as numeric).
_BANK_RAW_TABLE = "(booked date, direction text, amount numeric, reference text, bank_ref text, memo text)"


def _wechatpay_raw(path: Path, pg: Postgres) -> str:
    from bankrecon.sources.wechatpay.simulator.generator import TRADE_ALL_COLUMNS

    columns = ", ".join(f"c{n} text" for n in range(len(TRADE_ALL_COLUMNS)))
    pg.psql(f"CREATE TABLE raw ({columns})")
    # The summary header and row end the file: they are no detail rows.
    return f"gunzip -c '{path}' | sed 's/`//g' | head -n -2 | {_copy(pg, 'FORMAT csv, HEADER')}"


def _alipay_raw(path: Path, pg: Postgres) -> str:
    from bankrecon.sources.alipay.simulator.generator import TRADE_COLUMNS

    pg.psql(f"CREATE TABLE raw ({', '.join(f'c{n} text' for n in range(len(TRADE_COLUMNS)))})")
    # The detail member: all but the summary, whose GBK name is the one with "(汇总)".
    return (
        f"unzip -p '{path}' -x '*)*' | iconv -f GBK -t UTF-8 | grep -v '^#' | "
        f"{_copy(pg, 'FORMAT csv, HEADER')}"
    )


def _unionpay_raw(path: Path, pg: Postgres) -> str:
    from bankrecon.sources.unionpay.records import ZM_FIELDS
    from bankrecon.sources.unionpay.simulator.generator import detail_member

    pg.psql(f"CREATE TABLE raw ({', '.join(f'f{i} text' for i in range(len(ZM_FIELDS)))})")
    ranges, start = [], 1
    for _name, width in ZM_FIELDS:
        ranges.append(f"{start}-{start + width - 1}")
        start += width + 1
    cut = "cut -b " + ",".join(ranges) + " --output-delimiter=$'\\t'"
    member = detail_member(DAY, UNIONPAY_MER_ID)
    return f"unzip -p '{path}' '{member}' | tr -d '\\r' | {cut} | iconv -f GBK -t UTF-8 | {_copy(pg, '')}"


def _bank_raw(path: Path, pg: Postgres, parser: str) -> str:
    pg.psql(f"CREATE TABLE raw {_BANK_RAW_TABLE}")
    return f"{sys.executable} -m bench.channels --raw-parse {parser} '{path}' | {_copy(pg, '')}"


def _copy(pg: Postgres, options: str) -> str:
    with_options = f" WITH ({options})" if options else ""
    return f'{pg.command()} -c "COPY raw FROM STDIN{with_options}"'


def _copy_line(*fields: object) -> str:
    return "\t".join(
        str(field).replace("\\", "\\\\").replace("\t", " ").replace("\n", " ") for field in fields
    )


def _parse_mt940(path: Path, out: IO[str]) -> None:
    """The raw MT940 pipeline's parse: the ``mt-940`` package's transactions as COPY text."""
    import mt940

    for transaction in mt940.parse(str(path)):
        data = transaction.data
        amount = data["amount"].amount
        out.write(
            _copy_line(
                data["date"], "C" if amount >= 0 else "D", abs(amount), data.get("customer_reference"),
                data.get("bank_reference"), data.get("transaction_details"),
            ) + "\n"
        )  # fmt: skip


def _parse_camt053(path: Path, out: IO[str]) -> None:
    """The raw camt.053 pipeline's parse: lxml's iterparse of each entry as COPY text."""
    from lxml import etree

    ns = "{urn:iso:std:iso:20022:tech:xsd:camt.053.001.02}"
    for _event, entry in etree.iterparse(str(path), tag=f"{ns}Ntry"):
        out.write(
            _copy_line(
                entry.findtext(f"{ns}BookgDt/{ns}Dt"),
                "C" if entry.findtext(f"{ns}CdtDbtInd") == "CRDT" else "D",
                entry.findtext(f"{ns}Amt"), entry.findtext(f".//{ns}EndToEndId"),
                entry.findtext(f"{ns}AcctSvcrRef"), entry.findtext(f".//{ns}Ustrd"),
            ) + "\n"
        )  # fmt: skip
        entry.clear()
        parent = entry.getparent()
        while parent is not None and entry.getprevious() is not None:
            del parent[0]


@dataclass(frozen=True)
class Channel:
    """One format: how to write a file of it, its raw pipeline, and the account that reads it."""

    name: str
    kind: str  # the source kind in bankrecon.sources.registry
    suffix: str
    write: Callable[[IO[bytes], int], None]
    raw: Callable[[Path, Postgres], str]  # makes the raw table; returns the shell pipeline
    account_no: str
    account_keys: Mapping[str, Any]
    bank_code: str

    def account(self) -> Account:
        kind = source_kind(self.kind)
        settings: SourceSettings = SourceSettings()
        if self.kind == "unionpay":
            # Decoding reads only the merchant number; the keys are the client's.
            from bankrecon.sources.unionpay.kind import UnionPayMerchant

            only_the_number: dict[str, Any] = {"mer_id": UNIONPAY_MER_ID}
            settings = UnionPayMerchant.model_construct(**only_the_number)
        merchant = Merchant(f"bench-{self.name}", self.kind, 1800, clock_time(10), settings)
        return Account(self.account_no, merchant, None, kind.account_settings(dict(self.account_keys)))


CHANNELS = {
    channel.name: channel
    for channel in (
        Channel("wechatpay", "wechatpay", ".csv.gz", _wechatpay_file, _wechatpay_raw, "wx-bench-trade",
                {"bill": "tradebill"}, "SUCCESS"),
        Channel("alipay", "alipay", ".csv.zip", _alipay_file, _alipay_raw, "ali-bench-trade",
                {"bill_type": "trade"}, "10000"),
        Channel("unionpay", "unionpay", ".zip", _unionpay_file, _unionpay_raw, "up-bench", {}, "00"),
        Channel("mt940", "sftp", ".sta", _mt940_file, lambda path, pg: _bank_raw(path, pg, "mt940"),
                MT940_ACCOUNT, {"path": "/outbox/{account_no}.sta", "format": "mt940"}, "file"),
        Channel("camt053", "sftp", ".xml", _camt053_file, lambda path, pg: _bank_raw(path, pg, "camt053"),
                CAMT_ACCOUNT, {"path": "/outbox/{account_no}.xml", "format": "camt053"}, "file"),
    )
}  # fmt: skip


def statement_file(workdir: Path, channel: Channel, rows: int) -> Path:
    path = workdir / f"{channel.name}-{rows}{channel.suffix}"
    if not path.exists():
        workdir.mkdir(parents=True, exist_ok=True)
        staged = path.with_suffix(".partial")
        with staged.open("wb") as out:
            channel.write(out, rows)
        staged.replace(path)
    return path


def raw_pipeline(channel: Channel, path: Path, rows: int, pg: Postgres) -> float:
    pg.reset()
    pipeline = channel.raw(path, pg)
    started = time.perf_counter()
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", pipeline], env=pg.env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0 or f"COPY {rows}" not in done.stdout:
        raise SystemExit(
            f"{channel.name}: the raw pipeline failed ({done.returncode}): {done.stdout} {done.stderr}"
        )
    return seconds


def ingest_once(channel: Channel, path: Path, database_url: str, data_dir: Path) -> dict[str, float]:
    """Decode and persist the file in this process; the seconds of each and the peak RSS."""
    sha256 = _sha256(path)
    target = archive_path(data_dir, sha256)
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        os.link(path, target)
    archive = ArchiveRef(sha256=sha256, size=target.stat().st_size, file_name=path.name)
    key = StatementKey(account_no=channel.account_no, bill_date=DAY)
    engine = make_engine(database_url)
    prepare_schema(engine)
    started = time.perf_counter()
    decoded = source_kind(channel.kind).decode(
        DecodeJob(data_dir, key, archive, channel.account(), ArchiveLimits(), lambda _count: None)
    )
    decoded_at = time.perf_counter()
    stored = save_statement(
        engine,
        data_dir,
        PersistRequest(
            statement=key,
            bank_code=channel.bank_code,
            totals=decoded.totals,
            records_file=decoded.records_file,
            records_format=decoded.records_format,
            source_sha256=sha256,
            fetched_at=datetime.now(UTC),
        ),
        source_kind=channel.kind,
    )
    finished = time.perf_counter()
    engine.dispose()
    return ingest_figures(started, decoded_at, finished, stored.transaction_count)


def bankrecon_ingest(channel: Channel, path: Path, rows: int, pg: Postgres, workdir: Path) -> dict[str, Any]:
    pg.reset()
    data_dir = workdir / f"{channel.name}-data"
    command = [sys.executable, "-m", "bench.channels", "--ingest-once", channel.name, str(path), pg.url]
    done = subprocess.run([*command, str(data_dir)], cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{channel.name}: bankrecon's ingest failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if result["rows"] != rows:
        raise SystemExit(f"{channel.name}: bankrecon stored {result['rows']} rows of {rows}")
    return result


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    pg = Postgres(args.postgres, schema="bench_channels")
    results = []
    for name in args.channels:
        channel = CHANNELS[name]
        for rows in args.rows:
            path = statement_file(args.workdir, channel, rows)
            raw_pipeline(channel, path, rows, pg)  # warms the caches for both alike
            raw, ours = [], []
            for attempt in range(args.repeat):
                print(
                    f"{name} {rows:,} rows, run {attempt + 1} of {args.repeat}", file=sys.stderr, flush=True
                )
                raw.append(raw_pipeline(channel, path, rows, pg))
                ours.append(bankrecon_ingest(channel, path, rows, pg, args.workdir))
            raw_median = statistics.median(raw)
            median = statistics.median(r["seconds"] for r in ours)
            results.append(
                {
                    "benchmark": f"{name} ingest",
                    "rows": rows,
                    "runs": args.repeat,
                    "file_bytes": path.stat().st_size,
                    "raw_seconds_median": round(raw_median, 3),
                    "bankrecon_seconds_median": round(median, 3),
                    "decode_seconds_median": round(statistics.median(r["decode_seconds"] for r in ours), 3),
                    "persist_seconds_median": round(statistics.median(r["persist_seconds"] for r in ours), 3),
                    "ratio_to_raw": round(median / raw_median, 2),
                    "peak_rss_mb": round(max(r["peak_rss_mb"] for r in ours)),
                }
            )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.channels", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--channels", type=lambda text: text.split(","), default=list(CHANNELS),
        help=f"comma-separated, of {', '.join(CHANNELS)} (default: all)",
    )  # fmt: skip
    parser.add_argument("--rows", type=lambda t: [int(x) for x in t.split(",")], default=[1_000_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--postgres",
        default=os.environ.get("BANKRECON_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1/test"),
    )
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench" / ".work")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results-channels.json")
    parser.add_argument("--ingest-once", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--raw-parse", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.raw_parse:
        parse = {"mt940": _parse_mt940, "camt053": _parse_camt053}[args.raw_parse[0]]
        parse(Path(args.raw_parse[1]), sys.stdout)
        return
    if args.ingest_once:
        name, path, url, data_dir = args.ingest_once
        print(json.dumps(ingest_once(CHANNELS[name], Path(path), url, Path(data_dir))))
        return
    unknown = sorted(set(args.channels) - CHANNELS.keys())
    if unknown:
        parser.error(f"no channel {', '.join(unknown)}: choose from {', '.join(CHANNELS)}")
    results = run(args)
    table = "\n".join(
        f"{row['benchmark']:<18} {row['rows']:>9,} rows: bankrecon {row['bankrecon_seconds_median']:.2f} s "
        f"(decode {row['decode_seconds_median']:.2f}, persist {row['persist_seconds_median']:.2f}), "
        f"raw {row['raw_seconds_median']:.2f} s, ratio {row['ratio_to_raw']:.2f}, "
        f"peak RSS {row['peak_rss_mb']} MB"
        for row in results
    )
    write_report(args.out, " ".join(["python -m bench.channels", *sys.argv[1:]]), {"results": results}, table)


if __name__ == "__main__":
    main()
