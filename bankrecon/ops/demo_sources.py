"""The statement sources the demo collects side by side: each one's simulator, accounts entries, account.

Every simulator here answers "not ready" to the first requests of a statement, then serves
it; the demo shows each source's requests as they arrive (its ``GET /_sim/requests``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bankrecon.sources.refbank.simulator.server import DEMO_MERCHANT_ID, DEMO_MERCHANT_SECRET

REFBANK_ACCOUNT = "6222020000000001"
WECHATPAY_ACCOUNT = "wx-demo-trade"
ALIPAY_ACCOUNT = "ali-demo-trade"
UNIONPAY_ACCOUNT = "up-demo"
UNIONPAY_PASSWORD_ENV = "DEMO_UNIONPAY_PFX_PASSWORD"
SFTP_ACCOUNT = "DE89370400440532013000"
SFTP_PASSWORD_ENV = "DEMO_SFTP_PASSWORD"

_BANK_SAYS = {
    "9999": "9999 系统错误 (not ready yet); Temporal retries after the interval",
    "0000": "0000 成功 (the statement is ready)",
    "2001": "2001 当日无交易 (no transactions that day)",
    "1005": "1005 请求过于频繁 (too early: this must not happen)",
}
_WECHATPAY_SAYS = {
    "STATEMENT_CREATING": "400 STATEMENT_CREATING 账单生成中 (not ready yet); retried after the interval",
    "NO_STATEMENT_EXIST": "400 NO_STATEMENT_EXIST (no bill that day)",
    "": "200 download_url and hash_value (the bill is ready)",
}


@dataclass(frozen=True)
class DemoSource:
    label: str
    account_no: str
    port: int
    simulator: list[str]  # its command line
    accounts_entries: str  # its [[merchant]] and [[account]] entries
    # One request the simulator received (from its GET /_sim/requests); None: not shown.
    describe: Callable[[dict[str, Any]], str | None] | None
    env: dict[str, str] = field(default_factory=dict)  # what the worker needs to reach it

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def refbank_source(port: int, interval: float, ready_after: int) -> DemoSource:
    def describe(record: dict[str, Any]) -> str:
        return _BANK_SAYS.get(record["code"], f"answered {record['code']}")

    return DemoSource(
        label="bank",
        account_no=REFBANK_ACCOUNT,
        port=port,
        simulator=[
            *(sys.executable, "-m", "bankrecon.sources.refbank.simulator", "--port", str(port)),
            *("--min-interval", str(interval), "--ready-after", str(ready_after)),
            *("--merchant", f"{DEMO_MERCHANT_ID}:{DEMO_MERCHANT_SECRET}"),
        ],
        accounts_entries=f"""
[[merchant]]
id = "{DEMO_MERCHANT_ID}"
secret = "{DEMO_MERCHANT_SECRET}"  # the simulator's demo merchant
base_url = "http://127.0.0.1:{port}"

[[account]]
account_no = "{REFBANK_ACCOUNT}"
merchant = "{DEMO_MERCHANT_ID}"
""",
        describe=describe,
    )


def _key_pair(directory: Path, name: str) -> tuple[Path, Path]:
    """A 2048-bit RSA key pair made for this demo, kept for its next run; its PEM files."""
    private, public = directory / f"{name}_key.pem", directory / f"{name}_pub.pem"
    if not (private.exists() and public.exists()):
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private.touch(mode=0o600)
        private.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        public.write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    return private, public


def wechatpay_source(port: int, data_dir: Path, ready_after: int) -> DemoSource:
    keys = data_dir / "demo-keys"
    merchant_private, merchant_public = _key_pair(keys, "apiclient")
    wechatpay_private, wechatpay_public = _key_pair(keys, "wechatpay")

    def describe(record: dict[str, Any]) -> str | None:
        if record["bill"] == "download":
            return f"{record['status']} the gzip bill downloaded, checked against hash_value"
        return _WECHATPAY_SAYS.get(record["code"], f"{record['status']} {record['code']}")

    return DemoSource(
        label="WeChat Pay",
        account_no=WECHATPAY_ACCOUNT,
        port=port,
        simulator=[
            *(sys.executable, "-m", "bankrecon.sources.wechatpay.simulator", "--port", str(port)),
            *("--merchant-public-key-file", str(merchant_public)),
            *("--wechatpay-private-key-file", str(wechatpay_private), "--ready-after", str(ready_after)),
        ],
        accounts_entries=f"""
[[merchant]]
id = "wx-demo"
kind = "wechatpay"
base_url = "http://127.0.0.1:{port}"
mchid = "1900009191"
private_key_file = "{merchant_private}"
certificate_serial = "1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C"
wechatpay_public_key_file = "{wechatpay_public}"
wechatpay_public_key_id = "PUB_KEY_ID_0119000091912025010100000000000000"
earliest = "00:00"  # the simulator's bills are ready at once; WeChat Pay's from 10:00

[[account]]
account_no = "{WECHATPAY_ACCOUNT}"
merchant = "wx-demo"
bill = "tradebill"
""",
        describe=describe,
    )


def sftp_source(port: int, data_dir: Path, ready_after: int, bill_date: date) -> DemoSource:
    root, known_hosts = data_dir / "sftp-root", data_dir / "sftp-known-hosts"
    path = f"/outbox/{SFTP_ACCOUNT}/{bill_date:%Y%m%d}.sta"
    return DemoSource(
        label="SFTP",
        account_no=SFTP_ACCOUNT,
        port=port,
        simulator=[
            *(sys.executable, "-m", "bankrecon.sources.sftp.simulator", "--port", str(port)),
            *("--root", str(root), "--known-hosts", str(known_hosts), "--password-env", SFTP_PASSWORD_ENV),
            *("--account", SFTP_ACCOUNT, "--date", bill_date.isoformat(), "--path", path),
            *("--absent-for", str(ready_after)),
        ],
        accounts_entries=f"""
[[merchant]]
id = "sftp-demo"
kind = "sftp"
host = "127.0.0.1"
port = {port}
username = "bankrecon"
password_env = "{SFTP_PASSWORD_ENV}"
known_hosts_file = "{known_hosts}"
earliest = "00:00"  # the demo's file comes within seconds; a bank's, hours after the day ends

[[account]]
account_no = "{SFTP_ACCOUNT}"
merchant = "sftp-demo"
format = "mt940"
path = "/outbox/{{account_no}}/{{bill_date:%Y%m%d}}.sta"
stable_seconds = 1
""",
        describe=None,
        env={SFTP_PASSWORD_ENV: "demo-sftp-password"},
    )


def alipay_source(port: int, data_dir: Path, ready_after: int) -> DemoSource:
    keys = data_dir / "demo-keys"
    app_private, app_public = _key_pair(keys, "alipay_app")
    alipay_private, alipay_public = _key_pair(keys, "alipay")

    def describe(record: dict[str, Any]) -> str | None:
        if record["code"] == "":
            return f"{record['status']} the zip bill downloaded"
        if record["code"].endswith("isp.bill_not_exist"):
            return "40004 isp.bill_not_exist (not ready yet, or no bill); retried after the interval"
        return f"{record['status']} {record['code']}"

    return DemoSource(
        label="Alipay",
        account_no=ALIPAY_ACCOUNT,
        port=port,
        simulator=[
            *(sys.executable, "-m", "bankrecon.sources.alipay.simulator", "--port", str(port)),
            *("--app-public-key-file", str(app_public), "--alipay-private-key-file", str(alipay_private)),
            *("--ready-after", str(ready_after)),
        ],
        accounts_entries=f"""
[[merchant]]
id = "ali-demo"
kind = "alipay"
app_id = "2021000000000000"
gateway = "http://127.0.0.1:{port}/gateway.do"
app_private_key_file = "{app_private}"
alipay_public_key_file = "{alipay_public}"
earliest = "00:00"  # the simulator's bills are ready at once; Alipay's from about 09:00

[[account]]
account_no = "{ALIPAY_ACCOUNT}"
merchant = "ali-demo"
bill_type = "trade"
""",
        describe=describe,
    )


def unionpay_source(port: int, data_dir: Path, ready_after: int) -> DemoSource:
    pki = data_dir / "demo-keys" / "unionpay"

    def describe(record: dict[str, Any]) -> str | None:
        said = {"98": "respCode=98 文件不存在 (not ready yet); retried after the interval"}
        return said.get(record["resp_code"], f"respCode={record['resp_code']} (the file, signed)")

    return DemoSource(
        label="UnionPay",
        account_no=UNIONPAY_ACCOUNT,
        port=port,
        simulator=[
            *(sys.executable, "-m", "bankrecon.sources.unionpay.simulator", "--port", str(port)),
            *("--pki-dir", str(pki), "--pfx-password-env", UNIONPAY_PASSWORD_ENV),
            *("--ready-after", str(ready_after)),
        ],
        accounts_entries=f"""
[[merchant]]
id = "up-demo"
kind = "unionpay"
mer_id = "802310048993424"
base_url = "http://127.0.0.1:{port}/"
signing_pfx_file = "{pki / "acp_sign.pfx"}"
signing_pfx_password_env = "{UNIONPAY_PASSWORD_ENV}"
root_cert_file = "{pki / "acp_root.cer"}"
middle_cert_file = "{pki / "acp_middle.cer"}"
earliest = "00:00"  # the simulator's files are ready at once; UnionPay's from about 09:00

[[account]]
account_no = "{UNIONPAY_ACCOUNT}"
merchant = "up-demo"
""",
        describe=describe,
        env={UNIONPAY_PASSWORD_ENV: "demo-pfx-password"},
    )
