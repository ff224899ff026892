"""HTTP client for the bank's statement download API (bank-api.md v1)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from bankrecon.models import ArchiveRef
from bankrecon.sources.base import Account, Answer, Outcome, SourceUnavailable
from bankrecon.sources.http import merchant_http_client
from bankrecon.sources.refbank.jsonstream import NotJson, read_json
from bankrecon.store.archive import ArchiveDamaged, Base64Content, keep_archive, staged_file

# What an operator does about a permanent answer; the workflow's failure message says it.
REJECTION_ADVICE = {
    "1001": "signature rejected or merchant unknown: check BANK_MERCHANT_ID and BANK_MERCHANT_SECRET",
    "1002": "account unknown to this merchant: check the account number and which merchant owns it",
    "1003": "bill_date is in the future or past the bank's 90-day retention: check the date",
}
_OUTCOMES = {
    "0000": Outcome.READY,
    "2001": Outcome.EMPTY,
    "9999": Outcome.NOT_READY,
    "1005": Outcome.THROTTLED,
} | {code: Outcome.REJECTED for code in REJECTION_ADVICE}


@dataclass(frozen=True)
class BankAnswer:
    """A business answer. For 0000, the file is already stored (``archive``) or was damaged (``damage``)."""

    code: str
    message: str
    data: dict[str, Any] | None  # without file_content, which went to disk as it arrived
    archive: ArchiveRef | None = None
    damage: str | None = None

    def answer(self) -> Answer:
        """The answer as every source gives it: an unknown code is asked again after the window."""
        return Answer(
            outcome=_OUTCOMES.get(self.code, Outcome.UNRECOGNISED),
            code=self.code,
            message=self.message,
            archive=self.archive,
            damage=self.damage,
            advice=REJECTION_ADVICE.get(self.code),
        )


class BankUnavailable(SourceUnavailable):
    """No business answer: HTTP error, timeout, connection failure or an unreadable body."""


def sign(secret: SecretStr, body: bytes) -> str:
    return hmac.new(secret.get_secret_value().encode(), body, hashlib.sha256).hexdigest()


# The spec's largest statement is ~80 MB of base64: a body far past that is not a
# statement, and is not allowed to fill the disk.
MAX_ANSWER_BYTES = 1024**3


class BankClient:
    def __init__(
        self,
        base_url: str,
        merchant_id: str,
        secret: SecretStr,
        *,
        connect_timeout: float,
        request_timeout: float,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
    ):
        self.merchant_id = merchant_id
        self._secret = secret
        self._request_timeout = request_timeout
        self._max_answer_bytes = max_answer_bytes
        self._http = merchant_http_client(
            base_url=base_url.rstrip("/"), connect_timeout=connect_timeout, request_timeout=request_timeout
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def ask(self, account: Account, bill_date: date, request_id: str, data_dir: Path) -> Answer:
        answer = await self.download_statement(account.account_no, bill_date, request_id, data_dir)
        return answer.answer()

    async def download_statement(
        self, account_no: str, bill_date: date, request_id: str, data_dir: Path
    ) -> BankAnswer:
        body = json.dumps(
            {
                "merchant_id": self.merchant_id,
                "account_no": account_no,
                "bill_date": bill_date.strftime("%Y%m%d"),
                "request_id": request_id,
            },
            ensure_ascii=False,
        ).encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            "X-Merchant-Id": self.merchant_id,
            "X-Signature": sign(self._secret, body),
        }
        # The body goes to disk as it arrives and is read back as a stream: a statement's
        # file_content is up to ~80 MB of base64, which must never sit in memory.
        data_dir.joinpath("archives").mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=data_dir / "archives", prefix=".incoming-answer-")
        body_path = Path(name)
        try:
            with os.fdopen(handle, "wb") as out:
                await self._post(body, headers, out)
            return await asyncio.to_thread(read_answer, body_path, data_dir)
        finally:
            body_path.unlink(missing_ok=True)

    async def _post(self, body: bytes, headers: dict[str, str], out: Any) -> None:
        try:
            # httpx bounds each read; this bounds the whole exchange, body included.
            async with (
                asyncio.timeout(self._request_timeout),
                self._http.stream("POST", "/statement/download", content=body, headers=headers) as response,
            ):
                if response.status_code != 200:
                    raise BankUnavailable(f"HTTP {response.status_code} {response.reason_phrase}")
                received = 0
                async for piece in response.aiter_bytes():
                    received += len(piece)
                    if received > self._max_answer_bytes:
                        raise BankUnavailable(f"answer longer than {self._max_answer_bytes} bytes")
                    out.write(piece)
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise BankUnavailable(f"timed out ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise BankUnavailable(f"connection failed ({type(exc).__name__}: {exc})") from None


_FILE_CONTENT = ("data", "file_content")


def read_answer(body_path: Path, data_dir: Path) -> BankAnswer:
    """The bank's answer in the body at ``body_path``; a 0000's file is decoded into DATA_DIR/archives."""
    with staged_file(data_dir / "archives") as (out, staged):
        content = Base64Content(out)
        try:
            with body_path.open("rb") as body:
                payload = read_json(body, {_FILE_CONTENT: content.feed})
            data = payload.get("data")
            answer = BankAnswer(
                code=str(payload["code"]),
                message=str(payload.get("message", "")),
                data=None if data is None else {k: v for k, v in data.items() if k != _FILE_CONTENT[1]},
            )
        except (NotJson, AttributeError, KeyError, TypeError):
            raise BankUnavailable("HTTP 200 with a body that is not the bank's JSON") from None
    try:
        if answer.code != "0000":
            return answer
        data = answer.data or {}
        missing = [key for key in ("file_name", "file_sha256") if key not in data]
        if not content.received:
            missing.insert(0, _FILE_CONTENT[1])
        if missing:
            return _damaged(answer, f"bank answered 0000 without {', '.join(missing)} in data")
        try:
            archive = keep_archive(
                data_dir, staged, content, str(data["file_name"]), str(data["file_sha256"])
            )
        except ArchiveDamaged as exc:
            return _damaged(answer, str(exc))
        return BankAnswer(answer.code, answer.message, answer.data, archive=archive)
    finally:
        staged.unlink(missing_ok=True)


def _damaged(answer: BankAnswer, damage: str) -> BankAnswer:
    return BankAnswer(answer.code, answer.message, answer.data, damage=damage)
