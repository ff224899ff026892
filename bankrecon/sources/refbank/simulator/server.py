"""An HTTP bank that implements bank-api.md: signatures, the per-merchant window, readiness and faults.

Everything the tests need to steer is in a ``StatementPlan`` per statement; everything they
need to check is in the request log (``BankSimulator.requests`` or ``GET /_sim/requests``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import shutil
import socket
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from datetime import time as TimeOfDay
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from bankrecon.sources.refbank.simulator.generator import generate_statement

DEMO_MERCHANT_ID = "M100001"
DEMO_MERCHANT_SECRET = "demo-secret-change-me"
DEMO_ACCOUNTS = ["6222020000000001", "6222020000000002", "6222020000000003", "6222020000000004"]

CHINA = timezone(timedelta(hours=8), "CST")
RETENTION_DAYS = 90
MESSAGES = {
    "0000": "成功",
    "2001": "当日无交易",
    "9999": "系统错误",
    "1005": "请求过于频繁",
    "1001": "签名错误",
    "1002": "账号不存在",
    "1003": "日期无效",
}
UNKNOWN_MESSAGE = "未知错误"
DOWNLOAD_PATH = "/statement/download"

_log = logging.getLogger("simulator")

_JSON = "application/json; charset=utf-8"
_HTML = "text/html; charset=utf-8"
_ACCOUNT = re.compile(r"[0-9]{10,32}")
_DATE = re.compile(r"[0-9]{8}")
_CODE = re.compile(r"[0-9]{4}")
_STALL = re.compile(r"stall:([0-9]+(?:\.[0-9]*)?)")
_TRANSPORT_FAULTS = ("500", "500html", "502", "reset")
_MAX_BODY = 64 * 1024
# Statements longer than this are written to a temporary file and streamed from it.
_IN_MEMORY_LINES = 100_000
# 57 bytes make exactly one 76-character MIME line of base64, so pieces of a multiple of 57
# bytes encode and wrap independently and the body's length is known before it is built.
_PIECE = 57 * 16_384
# Inside a JSON string a CRLF line break is written as these four characters.
_JSON_CRLF = b"\\r\\n"

_ERROR_PAGE_500 = (
    "<html><head><title>500 Internal Server Error</title></head>"
    "<body><center><h1>500 Internal Server Error</h1></center><hr><center>nginx</center></body></html>\r\n"
)
_ERROR_PAGE_502 = (
    "<html><head><title>502 Bad Gateway</title></head>"
    "<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>\r\n"
)


@dataclass
class StatementPlan:
    """How the bank answers for one statement, or for every statement as ``default_plan``.

    ``ready_time`` is a China Standard Time clock time on the day after ``bill_date`` (so the
    same plan can serve every date); when both it and ``ready_at`` are set, both must pass.
    ``fail_every`` = N answers every Nth request of the statement (counted as ``faults`` are)
    with HTTP 500 once the ``faults`` list is used up.
    """

    ready_after: int = 0
    ready_at: datetime | None = None
    ready_time: TimeOfDay | None = None
    outcome: str = "ready"
    lines: int = 20
    parts: int = 1
    currency: str = "CNY"
    line_ending: str = "\n"
    gb18030_names: bool = False
    mime_wrap: bool = False
    archive: bytes | None = None
    sha256_override: str | None = None
    faults: list[str] = field(default_factory=list)
    fail_every: int = 0

    def __post_init__(self) -> None:
        # A typo in a plan would otherwise surface as a puzzling answer in the middle of a test.
        if self.ready_at is not None and self.ready_at.utcoffset() is None:
            raise ValueError("ready_at must be timezone-aware")
        if self.outcome not in ("ready", "empty") and not _CODE.fullmatch(self.outcome):
            raise ValueError(f"outcome must be 'ready', 'empty' or a four-digit code, not {self.outcome!r}")
        if self.line_ending not in ("\n", "\r\n"):
            raise ValueError(f"line_ending must be LF or CRLF, not {self.line_ending!r}")
        if self.ready_after < 0 or self.lines < 0 or self.parts < 1 or self.fail_every < 0:
            raise ValueError("ready_after, lines and fail_every must be >= 0 and parts >= 1")
        for fault in self.faults:
            if fault not in _TRANSPORT_FAULTS and not _STALL.fullmatch(fault):
                raise ValueError(f"unknown fault {fault!r}: use 500, 500html, 502, reset or stall:SECONDS")


@dataclass(frozen=True)
class RequestRecord:
    seq: int
    arrived_at: float
    arrived_monotonic: float
    merchant_id: str
    account_no: str
    bill_date: str
    request_id: str
    code: str
    http_status: int


@dataclass(frozen=True)
class _Archive:
    """A statement's zip, in memory or in a file, with its digest."""

    size: int
    sha256: str
    data: bytes | None = None
    path: Path | None = None

    @classmethod
    def in_memory(cls, data: bytes) -> _Archive:
        return cls(len(data), hashlib.sha256(data).hexdigest(), data=data)

    @classmethod
    def on_disk(cls, path: Path) -> _Archive:
        digest = hashlib.sha256()
        with path.open("rb") as file:
            while chunk := file.read(1 << 20):
                digest.update(chunk)
        return cls(path.stat().st_size, digest.hexdigest(), path=path)

    def pieces(self) -> Iterator[bytes]:
        """The bytes in pieces of ``_PIECE`` bytes, the last one shorter."""
        if self.data is not None:
            for start in range(0, self.size, _PIECE):
                yield self.data[start : start + _PIECE]
        elif self.path is not None:
            with self.path.open("rb") as file:
                while piece := file.read(_PIECE):
                    yield piece


class _Statement:
    """The bank's state of one statement: its plan, what has been asked of it, its archive."""

    def __init__(self, account_no: str, bill_date: date, plan: StatementPlan) -> None:
        self.account_no = account_no
        self.bill_date = bill_date
        self.plan = plan
        self.accepted = 0
        self.arrivals = 0
        self.faults_used = 0
        self._archive: _Archive | None = None
        self._archive_lock = threading.Lock()

    def next_fault(self) -> str | None:
        self.arrivals += 1
        if self.faults_used < len(self.plan.faults):
            self.faults_used += 1
            return self.plan.faults[self.faults_used - 1]
        if self.plan.fail_every and self.arrivals % self.plan.fail_every == 0:
            return "500"
        return None

    def ready(self, now: datetime, today: date) -> bool:
        plan = self.plan
        if self.bill_date >= today:
            return False  # the day is not over yet
        if plan.ready_at is not None and now < plan.ready_at:
            return False
        if plan.ready_time is not None:
            ready_at = datetime.combine(self.bill_date + timedelta(days=1), plan.ready_time, CHINA)
            if now < ready_at:
                return False
        return self.accepted >= plan.ready_after

    def archive(self, seed: int, workdir: Callable[[], Path]) -> _Archive:
        # Its own lock, so that generating a big archive holds up no other statement.
        with self._archive_lock:
            if self._archive is None:
                self._archive = self._build(seed, workdir)
            return self._archive

    def _build(self, seed: int, workdir: Callable[[], Path]) -> _Archive:
        plan = self.plan
        if plan.archive is not None:
            return _Archive.in_memory(plan.archive)
        statement = generate_statement(
            self.account_no,
            self.bill_date,
            seed=seed,
            lines=plan.lines,
            parts=plan.parts,
            currency=plan.currency,
            gb18030_names=plan.gb18030_names,
        )
        if plan.lines <= _IN_MEMORY_LINES:
            return _Archive.in_memory(statement.to_zip_bytes(line_ending=plan.line_ending))
        handle, name = tempfile.mkstemp(suffix=".zip", prefix=f"{self.account_no}_", dir=workdir())
        with open(handle, "wb") as file:
            statement.write_zip(file, line_ending=plan.line_ending)
        return _Archive.on_disk(Path(name))


@dataclass(frozen=True)
class _Answer:
    status: int  # HTTP status; 0 drops the connection without a response
    code: str = ""  # business code; "" for transport faults and malformed requests
    body: bytes = b""
    content_type: str = _JSON
    delay: float = 0.0
    statement: _Statement | None = None  # for 0000: the body is built from this statement's archive


def _business(code: str, *, delay: float = 0.0, statement: _Statement | None = None) -> _Answer:
    payload = {"code": code, "message": MESSAGES.get(code, UNKNOWN_MESSAGE), "data": None}
    return _Answer(200, code, _json_bytes(payload), delay=delay, statement=statement)


def _json_bytes(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


def _china_today() -> date:
    return datetime.now(CHINA).date()


class BankSimulator:
    """The reference bank on a real socket, serving from a daemon thread.

    ``accounts`` maps each merchant to its accounts; None knows every account of 10 to 32
    digits. ``today`` is the bank's date in China Standard Time. ``on_request`` is called
    with each download request's record, on the serving thread, before the answer is sent.
    """

    def __init__(
        self,
        *,
        merchants: dict[str, str] | None = None,
        accounts: dict[str, set[str]] | None = None,
        min_interval: float = 1800.0,
        default_plan: StatementPlan | None = None,
        seed: int = 1,
        host: str = "127.0.0.1",
        port: int = 0,
        today: Callable[[], date] | None = None,
        on_request: Callable[[RequestRecord], None] | None = None,
    ) -> None:
        self.merchants = (
            dict(merchants) if merchants is not None else {DEMO_MERCHANT_ID: DEMO_MERCHANT_SECRET}
        )
        self.accounts = accounts
        self.min_interval = min_interval
        self.default_plan = default_plan if default_plan is not None else StatementPlan()
        self.seed = seed
        self.host = host
        self.port = port
        self.today = today if today is not None else _china_today
        self.on_request = on_request
        self._lock = threading.Lock()
        self._statements: dict[tuple[str, date], _Statement] = {}
        self._last_arrival: dict[str, float] = {}
        self._records: list[RequestRecord] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._workdir: Path | None = None

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError("the simulator is already running")
        self._server = _Server((self.host, self.port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="bank-simulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._lock:
            if self._workdir is not None:
                shutil.rmtree(self._workdir, ignore_errors=True)
                self._workdir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the simulator is not running: call start() first")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def plan(self, account_no: str, bill_date: date, plan: StatementPlan) -> None:
        """Answer for this statement by ``plan`` from now on, counting its requests afresh."""
        with self._lock:
            self._statements[(account_no, bill_date)] = _Statement(account_no, bill_date, plan)

    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    def requests_for(self, account_no: str, bill_date: date) -> list[RequestRecord]:
        day = f"{bill_date:%Y%m%d}"
        return [r for r in self.requests if r.account_no == account_no and r.bill_date == day]

    def clear_requests(self) -> None:
        with self._lock:
            self._records.clear()

    def _download(
        self, merchant_id: str, signature: str, body: bytes, arrived_at: float, arrived: float
    ) -> _Answer:
        fields = _fields(body)
        with self._lock:
            answer = self._decide(merchant_id, signature, body, fields, arrived)
            record = RequestRecord(
                seq=len(self._records) + 1,
                arrived_at=arrived_at,
                arrived_monotonic=arrived,
                merchant_id=merchant_id,
                account_no=fields.get("account_no", ""),
                bill_date=fields.get("bill_date", ""),
                request_id=fields.get("request_id", ""),
                code=answer.code,
                http_status=answer.status,
            )
            self._records.append(record)
        _log.info(
            "%s merchant=%s account=%s bill_date=%s request_id=%s -> %s",
            datetime.fromtimestamp(arrived_at, CHINA).isoformat(timespec="milliseconds"),
            merchant_id or "-",
            record.account_no or "-",
            record.bill_date or "-",
            record.request_id or "-",
            _describe(answer),
        )
        if self.on_request is not None:
            try:
                self.on_request(record)
            except Exception:
                _log.exception("on_request failed for request %d", record.seq)
        return answer

    def _decide(
        self, merchant_id: str, signature: str, body: bytes, fields: dict[str, str], arrived: float
    ) -> _Answer:
        secret = self.merchants.get(merchant_id)
        if secret is None or not _signed(secret, body, signature):
            return _business("1001")
        # Every signed request counts, and an early one restarts the window.
        previous = self._last_arrival.get(merchant_id)
        # Two requests of one merchant can reach the lock in the opposite order of their arrival.
        early = previous is not None and abs(arrived - previous) < self.min_interval
        self._last_arrival[merchant_id] = arrived if previous is None else max(previous, arrived)
        problem = _malformed(fields, merchant_id)
        if problem:
            return _Answer(400, body=_json_bytes({"error": problem}))
        if early:
            return _business("1005")
        account_no = fields["account_no"]
        if not self._knows(merchant_id, account_no):
            return _business("1002")
        today = self.today()
        bill_date = _parse_date(fields["bill_date"])
        if bill_date is None or bill_date > today or bill_date < today - timedelta(days=RETENTION_DAYS):
            return _business("1003")
        key = (account_no, bill_date)
        statement = self._statements.get(key)
        if statement is None:
            statement = self._statements[key] = _Statement(account_no, bill_date, self.default_plan)
        fault = statement.next_fault()
        delay = 0.0
        if fault is not None:
            stall = _STALL.fullmatch(fault)
            if stall is None:
                return _transport_fault(fault)
            delay = float(stall.group(1))
        ready = statement.ready(datetime.now(UTC), today)
        statement.accepted += 1
        outcome = statement.plan.outcome
        if not ready:
            return _business("9999", delay=delay)
        if outcome == "ready":
            return _business("0000", delay=delay, statement=statement)
        return _business("2001" if outcome == "empty" else outcome, delay=delay)

    def _knows(self, merchant_id: str, account_no: str) -> bool:
        if not _ACCOUNT.fullmatch(account_no):
            return False
        return self.accounts is None or account_no in self.accounts.get(merchant_id, set())

    def _archive(self, statement: _Statement) -> _Archive:
        return statement.archive(self.seed, self._make_workdir)

    def _make_workdir(self) -> Path:
        with self._lock:
            if self._workdir is None:
                self._workdir = Path(tempfile.mkdtemp(prefix="bank-simulator-"))
            return self._workdir


def _fields(body: bytes) -> dict[str, str]:
    """The request's string fields, whatever else the body holds."""
    try:
        value = json.loads(body)
    except ValueError:
        return {}
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if isinstance(v, str)}


def _malformed(fields: dict[str, str], merchant_id: str) -> str:
    missing = [k for k in ("merchant_id", "account_no", "bill_date", "request_id") if k not in fields]
    if missing:
        return f"body must be a JSON object with string fields; missing or not a string: {', '.join(missing)}"
    if fields["merchant_id"] != merchant_id:
        return "merchant_id in the body differs from X-Merchant-Id"
    return ""


def _signed(secret: str, body: bytes, signature: str) -> bool:
    expected = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    # Header values arrive as latin-1 text; compare bytes so that any value compares safely.
    return hmac.compare_digest(expected.encode("ascii"), signature.encode("latin-1"))


def _parse_date(text: str) -> date | None:
    if not _DATE.fullmatch(text):
        return None
    try:
        return datetime.strptime(text, "%Y%m%d").date()
    except ValueError:
        return None


def _transport_fault(fault: str) -> _Answer:
    if fault == "500":
        body = _json_bytes(
            {"timestamp": int(time.time() * 1000), "status": 500, "error": "Internal Server Error"}
        )
        return _Answer(500, body=body)
    if fault == "500html":
        return _Answer(500, body=_ERROR_PAGE_500.encode(), content_type=_HTML)
    if fault == "502":
        return _Answer(502, body=_ERROR_PAGE_502.encode(), content_type=_HTML)
    return _Answer(0)


def _describe(answer: _Answer) -> str:
    if answer.status == 0:
        said = "connection reset"
    elif answer.code:
        said = f"{answer.code} {MESSAGES.get(answer.code, UNKNOWN_MESSAGE)}"
    else:
        said = f"HTTP {answer.status}"
    return f"{said}, after stalling {answer.delay:g}s" if answer.delay else said


def _base64_length(size: int, wrap: bool) -> int:
    chars = 4 * ((size + 2) // 3)
    if wrap and chars:
        chars += len(_JSON_CRLF) * ((chars + 75) // 76 - 1)
    return chars


def _base64_pieces(pieces: Iterator[bytes], wrap: bool) -> Iterator[bytes]:
    first = True
    for piece in pieces:
        text = base64.b64encode(piece)
        if wrap:
            text = _JSON_CRLF.join(text[i : i + 76] for i in range(0, len(text), 76))
            if not first:
                text = _JSON_CRLF + text
        first = False
        yield text


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], simulator: BankSimulator) -> None:
        self.simulator = simulator
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gives up on a stalled answer is part of the game, not an error.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        _log.exception("error while serving %s", client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Frees the thread of a keep-alive connection the client forgot.
    timeout = 120
    server: _Server

    def version_string(self) -> str:
        return "BankSimulator/1"

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        simulator = self.server.simulator
        if self.path == "/_sim/health":
            self._send(200, b"ok", "text/plain; charset=utf-8")
        elif self.path == "/_sim/requests":
            self._send(200, _json_bytes([asdict(r) for r in simulator.requests]), _JSON)
        else:
            self._not_found()

    def do_POST(self) -> None:
        arrived_at, arrived = time.time(), time.monotonic()
        if self.path != DOWNLOAD_PATH:
            self._not_found()
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            length = -1
        if not 0 <= length <= _MAX_BODY:
            self._send(
                400, _json_bytes({"error": f"need a Content-Length up to {_MAX_BODY}"}), _JSON, close=True
            )
            return
        body = self.rfile.read(length)
        simulator = self.server.simulator
        answer = simulator._download(
            self.headers.get("X-Merchant-Id", ""),
            self.headers.get("X-Signature", ""),
            body,
            arrived_at,
            arrived,
        )
        if answer.delay:
            time.sleep(answer.delay)
        if answer.status == 0:
            self._reset()
        elif answer.statement is not None:
            self._send_statement(answer.statement)
        else:
            self._send(answer.status, answer.body, answer.content_type)

    def do_HEAD(self) -> None:
        self._not_found()

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD

    def _not_found(self) -> None:
        self._send(404, _json_bytes({"error": "not found"}), _JSON, close=True)

    def _send(self, status: int, body: bytes, content_type: str, *, close: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if close:
            # The body of a request we did not read may still be on its way.
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_statement(self, statement: _Statement) -> None:
        archive = self.server.simulator._archive(statement)
        plan = statement.plan
        data = {
            "file_name": f"{statement.account_no}_{statement.bill_date:%Y%m%d}.zip",
            "file_sha256": plan.sha256_override or archive.sha256,
        }
        # file_content goes last so that the archive streams straight into the body.
        head = _json_bytes({"code": "0000", "message": MESSAGES["0000"], "data": data})
        head = head[: -len(b"}}")] + b', "file_content": "'
        tail = b'"}}'
        self.send_response(200)
        self.send_header("Content-Type", _JSON)
        self.send_header(
            "Content-Length", str(len(head) + _base64_length(archive.size, plan.mime_wrap) + len(tail))
        )
        self.end_headers()
        self.wfile.write(head)
        for text in _base64_pieces(archive.pieces(), plan.mime_wrap):
            self.wfile.write(text)
        self.wfile.write(tail)

    def _reset(self) -> None:
        # Linger 0 makes the close an RST, as a crashed gateway does, not an orderly FIN.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True
