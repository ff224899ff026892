"""An HTTP Alipay gateway for the bill download URL query: signatures both ways, readiness, faults.

Every request's RSA2 signature is checked as the gateway checks it (the app's public key
over the sorted non-empty parameters but ``sign``); answers are signed with the Alipay key
the simulator is given, over the exact text of the ``..._response`` value it sends. What the
tests steer is a ``BillPlan`` per bill type and date; what they check is ``requests``.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from bankrecon.sources.alipay.client import METHOD
from bankrecon.sources.alipay.signing import response_key, sign, signature_holds, signing_text
from bankrecon.sources.alipay.simulator.generator import BillShape, write_bill, write_members
from bankrecon.sources.served import ServedSimulator, SimulatorServer
from bankrecon.statements.common import CHINA_STANDARD_TIME

GATEWAY_PATH = "/gateway.do"
DOWNLOAD_PATH = "/downloadBillFile.resource"
BILL_TYPES = ("trade", "signcustomer")
FAULTS = ("500", "bad_signature", "corrupt_zip", "expired_url", "unknown_code")
EXPIRED_PAGE = "下载超时，请重新下载".encode("gbk")
# Alipay refuses requests whose timestamp is further than this from its clock.
MAX_CLOCK_SKEW_SECONDS = 900
_JSON = "application/json;charset=utf-8"

_log = logging.getLogger("alipay-simulator")


@dataclass
class BillPlan:
    """How Alipay answers for one bill type of one date, or for every one as ``default_plan``.

    ``ready_after`` = N answers isp.bill_not_exist to the first N checked requests; ``outcome``
    "none" answers it for ever (a day without a bill). ``faults`` are used one per checked
    request, in order: 500 answers so; bad_signature signs the answer wrongly; corrupt_zip
    serves a zip with a damaged member; expired_url gives a download URL already expired;
    unknown_code answers a code no client knows.

    The bill is generated (``rows``, ``wording`` of the trade trailers: Alipay's ``current``
    words or the ``older`` ones) unless ``members`` gives it: each (name, bytes) is then a
    member as given, a real bill's or a fixture's, zipped as Alipay zips them, in that order.
    """

    ready_after: int = 0
    outcome: Literal["ready", "none"] = "ready"
    rows: int = 20
    extra_column: bool = False
    bad_totals: bool = False
    member_names: Literal["gbk", "utf8"] = "gbk"
    wording: Literal["current", "older"] = "current"
    members: list[tuple[str, bytes]] = field(default_factory=list)
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
    arrived_at: float
    path: str
    bill_type: str
    bill_date: str
    status: int
    code: str  # code and sub_code of the answer, "" for a bill or a page


@dataclass(frozen=True)
class _Reply:
    status: int
    value: dict[str, str] | None = None  # the ..._response value
    name: str = response_key(METHOD)
    signed: bool = True
    bad_signature: bool = False
    bill: Path | None = None
    page: bytes | None = None

    @property
    def code(self) -> str:
        if self.value is None:
            return ""
        return f"{self.value.get('code', '')} {self.value.get('sub_code', '')}".strip()


@dataclass
class _Bill:
    plan: BillPlan
    checked: int = 0
    faults_used: int = 0
    files: dict[bool, Path] = field(default_factory=dict)  # by corrupt

    def next_fault(self) -> str | None:
        if self.faults_used < len(self.plan.faults):
            self.faults_used += 1
            return self.plan.faults[self.faults_used - 1]
        return None


@dataclass(frozen=True)
class _Token:
    path: Path
    expires_at: float


def _failure(code: str, msg: str, sub_code: str, sub_msg: str) -> dict[str, str]:
    return {"code": code, "msg": msg, "sub_code": sub_code, "sub_msg": sub_msg}


class AlipaySimulator(ServedSimulator):
    """Alipay's gateway for one app on a real socket, serving from a daemon thread.

    ``app_public_key`` verifies the app's requests; ``alipay_private_key`` signs the answers.
    """

    name = "alipay-simulator"

    def __init__(
        self,
        *,
        app_id: str,
        app_public_key: RSAPublicKey,
        alipay_private_key: RSAPrivateKey,
        default_plan: BillPlan | None = None,
        seed: int = 1,
        download_url_lifetime: float = 30.0,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(host, port, _Handler, _log)
        self.app_id = app_id
        self.app_public_key = app_public_key
        self.alipay_private_key = alipay_private_key
        self.default_plan = default_plan if default_plan is not None else BillPlan()
        self.seed = seed
        self.download_url_lifetime = download_url_lifetime
        self.clock = clock
        self._lock = threading.Lock()
        self._bills: dict[tuple[str, date], _Bill] = {}
        self._tokens: dict[str, _Token] = {}
        self._records: list[RequestRecord] = []

    @property
    def gateway(self) -> str:
        return self.url + GATEWAY_PATH

    def plan(self, bill_type: str, bill_date: date, plan: BillPlan) -> None:
        """Answer for this bill type of this date by ``plan`` from now on, counting its requests afresh."""
        if bill_type not in BILL_TYPES:
            raise ValueError(f"bill_type must be one of {BILL_TYPES}")
        with self._lock:
            self._bills[(bill_type, bill_date)] = _Bill(plan)

    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    def _handle(self, path: str, parameters: dict[str, str]) -> _Reply:
        arrived_at = self.clock()
        parts = urlsplit(path)
        bill_type = bill_date = ""
        if parts.path == DOWNLOAD_PATH:
            query = parse_qs(parts.query)
            reply = self._download(query.get("token", [""])[-1], arrived_at)
        elif parts.path == GATEWAY_PATH:
            try:
                biz = json.loads(parameters.get("biz_content", ""))
                bill_type, bill_date = str(biz.get("bill_type", "")), str(biz.get("bill_date", ""))
            except (ValueError, AttributeError):
                biz = None
            reply = self._gateway(parameters, biz, arrived_at)
        else:
            reply = _Reply(404, page=b"not found")
        with self._lock:
            self._records.append(
                RequestRecord(
                    len(self._records) + 1,
                    arrived_at,
                    parts.path,
                    bill_type,
                    bill_date,
                    reply.status,
                    reply.code,
                )
            )
        _log.info("%s %s %s -> %d %s", parts.path, bill_type, bill_date, reply.status, reply.code)
        return reply

    def _gateway(self, parameters: dict[str, str], biz: Any, now: float) -> _Reply:
        if parameters.get("app_id") != self.app_id:
            # The gateway knows no key for an app it does not know: its refusal is unsigned.
            failure = _failure("40002", "Invalid Arguments", "isv.invalid-app-id", "无效的AppID参数")
            return _Reply(200, failure, name="error_response", signed=False)
        if not self._signature_holds(parameters, now):
            return _Reply(200, _failure("40002", "Invalid Arguments", "isv.invalid-signature", "验签出错"))
        if parameters.get("method") != METHOD:
            return _Reply(200, _failure("40002", "Invalid Arguments", "isv.invalid-method", "不存在的方法名"))
        try:
            bill_type, bill_date = biz["bill_type"], date.fromisoformat(biz["bill_date"])
        except (TypeError, KeyError, ValueError):
            return _Reply(200, _failure("40002", "Invalid Arguments", "isv.invalid-arguments", "参数不合法"))
        today = datetime.fromtimestamp(now, CHINA_STANDARD_TIME).date()
        if bill_type not in BILL_TYPES or bill_date >= today:
            return _Reply(200, _failure("40002", "Invalid Arguments", "isv.invalid-arguments", "参数不合法"))
        with self._lock:
            state = self._bills.setdefault((bill_type, bill_date), _Bill(replace(self.default_plan)))
            fault = state.next_fault()
            if fault == "500":
                return _Reply(500, page=b"<html>500 Internal Server Error</html>")
            if fault == "unknown_code":
                return _Reply(200, _failure("40099", "Strange", "isp.something-new", "新的错误"))
            state.checked += 1
            if state.checked <= state.plan.ready_after or state.plan.outcome == "none":
                return _Reply(200, _failure("40004", "Business Failed", "isp.bill_not_exist", "账单不存在"))
            path = self._file(state, bill_type, bill_date, corrupt=fault == "corrupt_zip")
            token = secrets.token_urlsafe(24)
            lifetime = -1.0 if fault == "expired_url" else self.download_url_lifetime
            self._tokens[token] = _Token(path, now + lifetime)
        url = (
            f"{self.url}{DOWNLOAD_PATH}?bizType={'trade' if bill_type == 'trade' else 'fnd'}"
            f"&fileType=csv.zip&bizDates={bill_date:%Y%m%d}&token={token}"
        )
        value = {"code": "10000", "msg": "Success", "bill_download_url": url}
        return _Reply(200, value, bad_signature=fault == "bad_signature")

    def _signature_holds(self, parameters: dict[str, str], now: float) -> bool:
        if parameters.get("sign_type") != "RSA2" or parameters.get("charset", "utf-8").lower() != "utf-8":
            return False
        try:
            stamp = datetime.strptime(parameters.get("timestamp", ""), "%Y-%m-%d %H:%M:%S")
        except ValueError:
            return False
        if abs(stamp.replace(tzinfo=CHINA_STANDARD_TIME).timestamp() - now) > MAX_CLOCK_SKEW_SECONDS:
            return False
        return signature_holds(self.app_public_key, signing_text(parameters), parameters.get("sign", ""))

    def _file(self, state: _Bill, bill_type: str, bill_date: date, *, corrupt: bool) -> Path:
        if corrupt not in state.files:
            plan = state.plan
            shape = BillShape(
                bill_type="trade" if bill_type == "trade" else "signcustomer",
                rows=plan.rows,
                extra_column=plan.extra_column,
                bad_totals=plan.bad_totals,
                member_names=plan.member_names,
                wording=plan.wording,
            )
            path = self._workdir / f"{bill_type}-{bill_date}-{secrets.token_hex(4)}.csv.zip"
            with path.open("wb") as out:
                if plan.members:
                    made_at = datetime.fromtimestamp(self.clock(), CHINA_STANDARD_TIME)
                    write_members(out, plan.members, made_at, plan.member_names)
                else:
                    write_bill(out, bill_date, shape, self.seed)
            if corrupt:
                data = bytearray(path.read_bytes())
                # A byte in the middle of the first member's deflate data: its CRC fails.
                middle = 30 + len(data) // 4
                data[middle] ^= 0xFF
                path.write_bytes(bytes(data))
            state.files[corrupt] = path
        return state.files[corrupt]

    def _download(self, token: str, now: float) -> _Reply:
        with self._lock:
            found = self._tokens.get(token)
        if found is None or now > found.expires_at:
            return _Reply(200, page=EXPIRED_PAGE)
        return _Reply(200, bill=found.path)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 120
    server: SimulatorServer

    def version_string(self) -> str:
        return "AlipaySimulator/1"

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        simulator = self.server.simulator
        if self.path == "/_sim/requests":
            self._send(200, json.dumps([asdict(r) for r in simulator.requests]).encode(), _JSON)
            return
        self._reply(simulator._handle(self.path, _form(urlsplit(self.path).query)))

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0") or 0)
        body = self.rfile.read(min(length, 1 << 20)).decode("utf-8", errors="replace")
        parameters = _form(urlsplit(self.path).query) | _form(body)
        self._reply(self.server.simulator._handle(self.path, parameters))

    def _reply(self, reply: _Reply) -> None:
        simulator = self.server.simulator
        if reply.bill is not None:
            self._send(200, reply.bill.read_bytes(), "application/octet-stream")
        elif reply.page is not None:
            self._send(reply.status, reply.page, "text/html;charset=GBK")
        else:
            # The value's text is written once and signed as written.
            text = json.dumps(reply.value, ensure_ascii=False, separators=(",", ":"))
            body = f'{{"{reply.name}":{text}'
            if reply.signed:
                signature = sign(simulator.alipay_private_key, text + (" " if reply.bad_signature else ""))
                body += f',"sign":"{signature}"'
            self._send(reply.status, (body + "}").encode("utf-8"), _JSON)

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _form(text: str) -> dict[str, str]:
    return {name: values[-1] for name, values in parse_qs(text, keep_blank_values=True).items()}
