"""An HTTP WeChat Pay that implements the API v3 bill calls: signatures both ways, readiness, faults.

Every request must carry the merchant's Authorization, checked as WeChat Pay checks it
(mchid, certificate serial, timestamp within five minutes, a nonce, the signature over the
exact path and query); otherwise 401 SIGN_ERROR. JSON answers are signed with the WeChat Pay
key pair the simulator is given. What the tests steer is a ``BillPlan`` per bill and date;
what they check is the request log (``WeChatPaySimulator.requests`` or ``GET /_sim/requests``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime, timedelta
from datetime import time as TimeOfDay
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from bankrecon.sources.served import ServedSimulator, SimulatorServer
from bankrecon.sources.wechatpay.kind import oldest_kept
from bankrecon.sources.wechatpay.signing import (
    MAX_CLOCK_SKEW_SECONDS,
    SCHEME,
    answer_message,
    new_nonce,
    parse_authorization,
    request_message,
    sign,
    signature_holds,
)
from bankrecon.sources.wechatpay.simulator.generator import BillShape, write_bill, write_served
from bankrecon.statements.common import CHINA_STANDARD_TIME

DOWNLOAD_PATH = "/v3/billdownload/file"
BILL_KINDS = ("tradebill", "fundflowbill")
FAULTS = ("429", "500", "502", "bad_signature", "wrong_hash", "truncated", "expired_url")
_TYPES = {
    "tradebill": ("bill_type", "ALL", ("ALL", "SUCCESS", "REFUND")),
    "fundflowbill": ("account_type", "BASIC", ("BASIC", "OPERATION", "FEES")),
}
_JSON = "application/json; charset=utf-8"
_ERROR_PAGE_502 = b"<html><head><title>502 Bad Gateway</title></head><body>502 Bad Gateway</body></html>"

_log = logging.getLogger("wechatpay-simulator")


@dataclass
class BillPlan:
    """How WeChat Pay answers for one bill of one date, or for every one as ``default_plan``.

    ``ready_after`` = N answers STATEMENT_CREATING to the first N checked requests; ``ready_time``
    is a China Standard Time clock time on the day after the bill date before which it is not
    ready either. ``faults`` are used one per apply request, in order: 429, 500 and 502 answer
    so; bad_signature signs the ready answer wrongly; wrong_hash gives another hash_value;
    truncated serves half the gzip; expired_url gives a download URL that has already expired.

    The bill is generated (``rows``, ``bom``, ``line_end``, ...) unless ``served`` gives it: those
    bytes, a real bill's or a fixture's, are then the bill, gzipped and hashed as WeChat Pay does.
    """

    ready_after: int = 0
    ready_time: TimeOfDay | None = None
    outcome: Literal["ready", "empty"] = "ready"
    rows: int = 20
    bom: bool = False
    shuffled_columns: bool = False
    extra_column: bool = False
    bad_summary: bool = False
    line_end: Literal["\n", "\r\n"] = "\n"
    served: bytes | None = None
    faults: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.ready_after < 0 or self.rows < 0:
            raise ValueError("ready_after and rows must be >= 0")
        for fault in self.faults:
            if fault not in FAULTS:
                raise ValueError(f"unknown fault {fault!r}: use {', '.join(FAULTS)}")


@dataclass(frozen=True)
class RequestRecord:
    seq: int
    arrived_at: float  # seconds since the epoch
    target: str  # path and query, as signed
    bill: str  # tradebill, fundflowbill, or "download"
    bill_date: str
    status: int
    code: str  # WeChat Pay's code of the answer, or "" for a delivered bill or an HTML page


@dataclass(frozen=True)
class _Reply:
    status: int
    code: str = ""
    message: str = ""
    payload: dict[str, str] | None = None  # a 200 JSON answer's fields
    signed: bool = True
    bad_signature: bool = False
    bill: Path | None = None
    truncated: bool = False
    html: bytes | None = None


@dataclass
class _Bill:
    """One bill of one date: what was asked of it, its plan, and its gzip once made."""

    plan: BillPlan
    checked: int = 0
    faults_used: int = 0
    files: dict[str, tuple[Path, str]] = field(default_factory=dict)  # by bill_type: gzip, SHA-1

    def next_fault(self) -> str | None:
        if self.faults_used < len(self.plan.faults):
            self.faults_used += 1
            return self.plan.faults[self.faults_used - 1]
        return None


@dataclass(frozen=True)
class _Token:
    path: Path
    expires_at: float
    truncated: bool


class WeChatPaySimulator(ServedSimulator):
    """WeChat Pay's bill API for one merchant on a real socket, serving from a daemon thread.

    ``merchant_public_key`` verifies the merchant's requests; ``wechatpay_private_key`` signs
    the answers, named by ``wechatpay_public_key_id``. ``today`` is WeChat Pay's date in China
    Standard Time and ``clock`` its time, both for tests that move them.
    """

    name = "wechatpay-simulator"

    def __init__(
        self,
        *,
        mchid: str,
        certificate_serial: str,
        merchant_public_key: RSAPublicKey,
        wechatpay_private_key: RSAPrivateKey,
        wechatpay_public_key_id: str,
        default_plan: BillPlan | None = None,
        seed: int = 1,
        download_url_lifetime: float = 300.0,
        host: str = "127.0.0.1",
        port: int = 0,
        today: Callable[[], date] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(host, port, _Handler, _log)
        self.mchid = mchid
        self.certificate_serial = certificate_serial
        self.merchant_public_key = merchant_public_key
        self.wechatpay_private_key = wechatpay_private_key
        self.wechatpay_public_key_id = wechatpay_public_key_id
        self.default_plan = default_plan if default_plan is not None else BillPlan()
        self.seed = seed
        self.download_url_lifetime = download_url_lifetime
        self.clock = clock
        self.today = (
            today
            if today is not None
            else (lambda: datetime.fromtimestamp(clock(), CHINA_STANDARD_TIME).date())
        )
        self._lock = threading.Lock()
        self._bills: dict[tuple[str, date], _Bill] = {}
        self._tokens: dict[str, _Token] = {}
        self._records: list[RequestRecord] = []

    def plan(self, bill: str, bill_date: date, plan: BillPlan) -> None:
        """Answer for this bill of this date by ``plan`` from now on, counting its requests afresh."""
        if bill not in BILL_KINDS:
            raise ValueError(f"bill must be one of {BILL_KINDS}")
        with self._lock:
            self._bills[(bill, bill_date)] = _Bill(plan)

    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    def requests_for(self, bill: str, bill_date: date) -> list[RequestRecord]:
        return [r for r in self.requests if r.bill == bill and r.bill_date == bill_date.isoformat()]

    def _handle(self, method: str, target: str, authorization: str) -> _Reply:
        arrived_at = self.clock()
        parts = urlsplit(target)
        query = {name: values[-1] for name, values in parse_qs(parts.query, keep_blank_values=True).items()}
        bill = parts.path.rsplit("/", 1)[-1] if parts.path.startswith("/v3/bill/") else "download"
        if not self._authorized(method, target, authorization, arrived_at):
            reply = _Reply(401, "SIGN_ERROR", "签名错误")
        elif parts.path == DOWNLOAD_PATH:
            reply = self._download(query.get("token", ""), arrived_at)
        elif bill in BILL_KINDS:
            reply = self._apply(bill, query, arrived_at)
        else:
            reply = _Reply(404, "RESOURCE_NOT_EXISTS", "资源不存在")
        with self._lock:
            self._records.append(
                RequestRecord(
                    seq=len(self._records) + 1,
                    arrived_at=arrived_at,
                    target=target,
                    bill=bill,
                    bill_date=query.get("bill_date", ""),
                    status=reply.status,
                    code=reply.code,
                )
            )
        _log.info("%s %s -> %d %s", method, target[:120], reply.status, reply.code)
        return reply

    def _authorized(self, method: str, target: str, authorization: str, now: float) -> bool:
        items = parse_authorization(authorization)
        if items is None or items["mchid"] != self.mchid or items["serial_no"] != self.certificate_serial:
            return False
        stamp, nonce = items["timestamp"], items["nonce_str"]
        if (
            not (stamp.isascii() and stamp.isdigit())
            or abs(now - int(stamp)) > MAX_CLOCK_SKEW_SECONDS
            or not nonce
        ):
            return False
        message = request_message(method, target, stamp, nonce, b"")
        return signature_holds(self.merchant_public_key, message, items["signature"])

    def _apply(self, bill: str, query: dict[str, str], now: float) -> _Reply:
        type_key, default_type, types = _TYPES[bill]
        kind = query.get(type_key, default_type)
        try:
            bill_date = date.fromisoformat(query.get("bill_date", ""))
        except ValueError:
            return _Reply(400, "PARAM_ERROR", "bill_date 格式错误")
        today = self.today()
        if kind not in types or query.get("tar_type", "GZIP") != "GZIP":
            return _Reply(400, "PARAM_ERROR", f"{type_key} 或 tar_type 无效")
        if not oldest_kept(today) <= bill_date < today:
            return _Reply(400, "INVALID_REQUEST", "账单日期无效")
        with self._lock:
            state = self._bills.setdefault((bill, bill_date), _Bill(replace(self.default_plan)))
            fault = state.next_fault()
            if fault in ("429", "500", "502"):
                return _transport_fault(fault)
            plan = state.plan
            state.checked += 1
            ready_at = (
                None
                if plan.ready_time is None
                else datetime.combine(bill_date + timedelta(days=1), plan.ready_time, CHINA_STANDARD_TIME)
            )
            if state.checked <= plan.ready_after or (ready_at is not None and now < ready_at.timestamp()):
                return _Reply(400, "STATEMENT_CREATING", "账单生成中")
            if plan.outcome == "empty":
                return _Reply(400, "NO_STATEMENT_EXIST", "请求的账单文件不存在")
            path, sha1 = self._file(state, bill, kind, bill_date)
            token = secrets.token_urlsafe(24)
            lifetime = -1.0 if fault == "expired_url" else self.download_url_lifetime
            self._tokens[token] = _Token(path, now + lifetime, truncated=fault == "truncated")
        hash_value = (
            hashlib.sha1(sha1.encode(), usedforsecurity=False).hexdigest() if fault == "wrong_hash" else sha1
        )
        payload = {
            "hash_type": "SHA1",
            "hash_value": hash_value,
            "download_url": f"{self.url}{DOWNLOAD_PATH}?token={token}",
        }
        return _Reply(200, "SUCCESS", payload=payload, bad_signature=fault == "bad_signature")

    def _file(self, state: _Bill, bill: str, kind: str, bill_date: date) -> tuple[Path, str]:
        if kind not in state.files:
            plan = state.plan
            shape = BillShape(
                bill="tradebill" if bill == "tradebill" else "fundflowbill",
                bill_type=kind,
                rows=plan.rows,
                mchid=self.mchid,
                bom=plan.bom,
                shuffled_columns=plan.shuffled_columns,
                extra_column=plan.extra_column,
                bad_summary=plan.bad_summary,
                line_end=plan.line_end,
            )
            path = self._workdir / f"{bill}-{kind}-{bill_date}-{secrets.token_hex(4)}.csv.gz"
            with path.open("wb") as out:
                if plan.served is None:
                    sha1 = write_bill(out, bill_date, shape, self.seed)
                else:
                    sha1 = write_served(out, plan.served)
            state.files[kind] = (path, sha1)
        return state.files[kind]

    def _download(self, token: str, now: float) -> _Reply:
        with self._lock:
            found = self._tokens.get(token)
        if found is None or now > found.expires_at:
            return _Reply(400, "INVALID_REQUEST", "下载链接无效或已过期", signed=False)
        return _Reply(200, bill=found.path, truncated=found.truncated)


def _transport_fault(fault: str) -> _Reply:
    if fault == "429":
        return _Reply(429, "FREQUENCY_LIMITED", "请求频率超过限制")
    if fault == "500":
        return _Reply(500, "SYSTEM_ERROR", "系统错误")
    return _Reply(502, html=_ERROR_PAGE_502, signed=False)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 120
    server: SimulatorServer

    def version_string(self) -> str:
        return "WeChatPaySimulator/1"

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        simulator = self.server.simulator
        if self.path == "/_sim/health":
            self._send(200, b"ok", "text/plain; charset=utf-8")
            return
        if self.path == "/_sim/requests":
            self._send(200, json.dumps([asdict(r) for r in simulator.requests]).encode(), _JSON)
            return
        reply = simulator._handle("GET", self.path, self.headers.get("Authorization", ""))
        if reply.html is not None:
            self._send(reply.status, reply.html, "text/html; charset=utf-8")
        elif reply.bill is not None:
            self._send_bill(reply.bill, reply.truncated)
        else:
            body = (
                reply.payload if reply.payload is not None else {"code": reply.code, "message": reply.message}
            )
            self._send_json(reply, json.dumps(body, ensure_ascii=False).encode("utf-8"))

    def _send_json(self, reply: _Reply, body: bytes) -> None:
        simulator = self.server.simulator
        headers = {"Request-ID": secrets.token_hex(16)}
        if reply.signed:
            stamp, nonce = str(int(simulator.clock())), new_nonce()
            signed_body = body + b" " if reply.bad_signature else body
            headers |= {
                "Wechatpay-Timestamp": stamp,
                "Wechatpay-Nonce": nonce,
                "Wechatpay-Serial": simulator.wechatpay_public_key_id,
                "Wechatpay-Signature-Type": SCHEME,
                "Wechatpay-Signature": sign(
                    simulator.wechatpay_private_key, answer_message(stamp, nonce, signed_body)
                ),
            }
        self._send(reply.status, body, _JSON, headers)

    def _send_bill(self, path: Path, truncated: bool) -> None:
        size = path.stat().st_size
        length = size // 2 if truncated else size
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        self.end_headers()
        with path.open("rb") as bill:
            remaining = length
            while remaining and (piece := bill.read(min(remaining, 1 << 20))):
                self.wfile.write(piece)
                remaining -= len(piece)

    def do_HEAD(self) -> None:
        self._send(404, b'{"code":"RESOURCE_NOT_EXISTS","message":"not found"}', _JSON, close=True)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
        *,
        close: bool = False,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
