"""An HTTP UnionPay file transfer (ACP txnType 76): request signatures checked, answers signed, faults.

Every request must be the form UnionPay expects (version 5.1.0, signMethod 01, txnType 76,
...), name the merchant's merId and its signing certificate's serial as certId, and carry a
signature that verifies with that certificate; otherwise respCode 11 (signature) or 12
(format). Answers are signed with the simulated UnionPay certificate, carried as
signPubKeyCert. What the tests steer is a ``FilePlan`` per settlement date; what they check is
the request log (``UnionPaySimulator.requests`` or ``GET /_sim/requests``).
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from bankrecon.sources.served import ServedSimulator, SimulatorServer
from bankrecon.sources.unionpay.client import request_fields
from bankrecon.sources.unionpay.signing import (
    SIGNATURE_FIELD,
    digest_hex,
    digest_signature_holds,
    sign_fields,
    signing_text,
)
from bankrecon.sources.unionpay.simulator.generator import SettlementShape, settlement_zip
from bankrecon.sources.unionpay.simulator.pki import Issued
from bankrecon.statements.common import CHINA_STANDARD_TIME

FAULTS = ("500", "bad_signature", "corrupt_zip", "not_zlib")
_TEXT = "text/plain; charset=UTF-8"
_ANSWERED = ("version", "encoding", "bizType", "txnType", "txnSubType", "accessType", "merId", "settleDate")

_log = logging.getLogger("unionpay-simulator")


@dataclass
class FilePlan:
    """How UnionPay answers for one settlement date, or for every one as ``default_plan``.

    ``ready_after`` = N answers respCode 98 to the first N checked requests. ``faults`` are used
    one per checked request, in order: 500 answers HTTP 500; bad_signature signs the answer
    wrongly; corrupt_zip damages a member's compressed bytes (its CRC fails when read);
    not_zlib sends the zip without its zlib wrapping. ``shape`` is the file's content.
    """

    ready_after: int = 0
    refuse: tuple[str, str] | None = None  # answer this respCode and respMsg instead of the file
    shape: SettlementShape = field(default_factory=SettlementShape)
    faults: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.ready_after < 0:
            raise ValueError("ready_after must be >= 0")
        for fault in self.faults:
            if fault not in FAULTS:
                raise ValueError(f"unknown fault {fault!r}: use {', '.join(FAULTS)}")


@dataclass(frozen=True)
class RequestRecord:
    seq: int
    arrived_at: float
    settle_date: str  # MMDD as asked
    resp_code: str  # "" for an HTTP error


@dataclass
class _Day:
    plan: FilePlan
    checked: int = 0
    faults_used: int = 0


class UnionPaySimulator(ServedSimulator):
    """UnionPay's file transfer for one merchant on a real socket, serving from a daemon thread.

    ``merchant_certificate`` verifies the requests (its serial is the certId expected);
    ``unionpay`` signs the answers. ``today`` is UnionPay's date in China Standard Time: a
    settleDate MMDD names the latest such day before it.
    """

    name = "unionpay-simulator"

    def __init__(
        self,
        *,
        mer_id: str,
        merchant_certificate: x509.Certificate,
        unionpay: Issued,
        default_plan: FilePlan | None = None,
        seed: int = 1,
        host: str = "127.0.0.1",
        port: int = 0,
        today: Callable[[], date] | None = None,
    ) -> None:
        super().__init__(host, port, _Handler, _log)
        self.mer_id = mer_id
        self.merchant_certificate = merchant_certificate
        self.unionpay = unionpay
        self.default_plan = default_plan if default_plan is not None else FilePlan()
        self.seed = seed
        self.today = today or (lambda: datetime.now(CHINA_STANDARD_TIME).date())
        self._lock = threading.Lock()
        self._days: dict[date, _Day] = {}
        self._records: list[RequestRecord] = []

    @property
    def url(self) -> str:
        # As UnionPay's own base URL is written: https://filedownload.95516.com/
        return f"{super().url}/"

    def plan(self, settle_date: date, plan: FilePlan) -> None:
        """Answer for this settlement date by ``plan`` from now on, counting its requests afresh."""
        with self._lock:
            self._days[settle_date] = _Day(plan)

    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    def _settle_date(self, mmdd: str) -> date | None:
        if len(mmdd) != 4 or not mmdd.isdigit():
            return None
        today = self.today()
        for year in (today.year, today.year - 1):
            try:
                day = date(year, int(mmdd[:2]), int(mmdd[2:]))
            except ValueError:
                continue
            if day < today:
                return day
        return None

    def _handle(self, form: Mapping[str, str]) -> tuple[int, dict[str, str] | None, bool]:
        """The HTTP status, the answer's fields (None: no body), and whether to sign it wrongly."""
        problem = self._request_problem(form)
        settle_date = self._settle_date(form.get("settleDate", ""))
        status, answer, bad = 200, None, False
        if problem is not None:
            answer = self._answer(form, *problem)
        elif settle_date is None:
            answer = self._answer(form, "12", "settleDate 格式错误")
        else:
            with self._lock:
                day = self._days.setdefault(settle_date, _Day(replace(self.default_plan)))
                faults = day.plan.faults
                fault = faults[day.faults_used] if day.faults_used < len(faults) else None
                if fault is not None:
                    day.faults_used += 1
                day.checked += 1
                ready = day.checked > day.plan.ready_after
                plan = day.plan
            if fault == "500":
                status = 500
            elif not ready:
                answer = self._answer(form, "98", "文件不存在")
            elif plan.refuse is not None:
                answer = self._answer(form, *plan.refuse)
            else:
                answer = self._file(form, settle_date, plan, fault)
                bad = fault == "bad_signature"
        with self._lock:
            self._records.append(
                RequestRecord(
                    seq=len(self._records) + 1,
                    arrived_at=time.time(),
                    settle_date=form.get("settleDate", ""),
                    resp_code=answer["respCode"] if answer else "",
                )
            )
        _log.info(
            "file transfer settleDate=%s -> %s",
            form.get("settleDate"),
            answer["respCode"] if answer else status,
        )
        return status, answer, bad

    def _request_problem(self, form: Mapping[str, str]) -> tuple[str, str] | None:
        expected = request_fields(
            self.mer_id, str(self.merchant_certificate.serial_number), date.today(), datetime.now()
        )
        for name, value in expected.items():
            if name in ("txnTime", "settleDate"):
                continue
            if form.get(name) != value:
                return ("11", "验证签名失败") if name == "certId" else ("12", f"{name} 错误")
        if set(form) != {*expected, SIGNATURE_FIELD}:
            return "12", "报文字段错误"
        try:
            sent = datetime.strptime(form["txnTime"], "%Y%m%d%H%M%S").replace(tzinfo=CHINA_STANDARD_TIME)
        except ValueError:
            return "12", "txnTime 格式错误"
        if abs(datetime.now(CHINA_STANDARD_TIME) - sent) > timedelta(hours=1):
            return "12", "txnTime 超出范围"
        public_key = self.merchant_certificate.public_key()
        assert isinstance(public_key, RSAPublicKey)
        digest = digest_hex([signing_text(form).encode("utf-8")])
        if not digest_signature_holds(public_key, digest, form[SIGNATURE_FIELD]):
            return "11", "验证签名失败"
        return None

    def _answer(self, form: Mapping[str, str], code: str, message: str) -> dict[str, str]:
        answer = {name: form[name] for name in _ANSWERED if name in form}
        return answer | {
            "txnTime": form.get("txnTime", ""),
            "signMethod": "01",
            "respCode": code,
            "respMsg": message,
            "signPubKeyCert": self.unionpay.pem,
        }

    def _file(
        self, form: Mapping[str, str], settle_date: date, plan: FilePlan, fault: str | None
    ) -> dict[str, str]:
        archive = settlement_zip(settle_date, plan.shape, self.mer_id, self.seed)
        if fault == "corrupt_zip":
            # Inside the first member's compressed data: the directory reads, the CRC does not hold.
            damaged = bytearray(archive)
            damaged[200] ^= 0xFF
            archive = bytes(damaged)
        packed = archive if fault == "not_zlib" else zlib.compress(archive)
        return self._answer(form, "00", "成功[0000000]") | {
            "fileName": f"{self.mer_id}_{settle_date:%Y%m%d}.zip",
            "fileContent": base64.b64encode(packed).decode("ascii"),
        }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 120
    server: SimulatorServer

    def version_string(self) -> str:
        return "UnionPaySimulator/1"

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        if self.path == "/_sim/health":
            self._send(200, b"ok")
        elif self.path == "/_sim/requests":
            self._send(200, json.dumps([asdict(r) for r in self.server.simulator.requests]).encode())
        else:
            self._send(404, b"")

    def do_POST(self) -> None:
        simulator = self.server.simulator
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length).decode("utf-8", errors="replace")
        form = {name: values[-1] for name, values in parse_qs(body, keep_blank_values=True).items()}
        status, answer, bad_signature = simulator._handle(form)
        if answer is None:
            self._send(status, b"")
            return
        signed = dict(answer, respMsg=answer["respMsg"] + " ") if bad_signature else answer
        answer[SIGNATURE_FIELD] = sign_fields(simulator.unionpay.key, signed)
        self._send(status, "&".join(f"{name}={value}" for name, value in answer.items()).encode("utf-8"))

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", _TEXT)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
