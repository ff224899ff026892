"""HTTP client for WeChat Pay API v3 bills: apply for a bill, verify the answer, download and check it."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlencode

import httpx
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from bankrecon.models import ArchiveRef
from bankrecon.sources.base import Account, Answer, AnswerNotBelieved, Outcome, SourceUnavailable
from bankrecon.sources.http import merchant_http_client
from bankrecon.sources.wechatpay.gunzip import GunzipStream
from bankrecon.sources.wechatpay.signing import AnswerVerifier, RequestSigner
from bankrecon.statements.common import ArchiveLimits, StatementDamaged
from bankrecon.store.archive import archive_path, staged_file

DEFAULT_BASE_URL = "https://api.mch.weixin.qq.com"
# A month's busiest trade bill is some hundreds of megabytes of gzip; past this it is not a bill,
# and is not allowed to fill the disk.
MAX_BILL_BYTES = 1024**3
# An apply answer is a line of JSON.
_MAX_ANSWER_BYTES = 64 * 1024
_PIECE = 1024 * 1024

ADVICE_SIGNATURE = (
    "WeChat Pay refused the signature: check mchid, certificate_serial (the serial of the merchant "
    "API certificate) and that private_key_file is that certificate's private key"
)
ADVICE_PERMISSION = (
    "WeChat Pay denied access: check that this mchid may download bills of this kind and account"
)
ADVICE_PARAMETERS = (
    "WeChat Pay refused the request's parameters: check the bill_date (within the last three months, "
    "day over) and the account's bill, bill_type or account_type"
)
ADVICE_OTHER = "WeChat Pay refused the request: check base_url and the account's keys"


@dataclass(frozen=True)
class BillRequest:
    """What the ``[[account]]`` entry asks WeChat Pay for, as its query parameters."""

    bill: str  # tradebill or fundflowbill
    parameters: tuple[tuple[str, str], ...]  # besides bill_date, in the order they are sent


class WeChatPayClient:
    """Talks to WeChat Pay with one merchant's keys; ``ask`` is one apply and, when ready, one download."""

    def __init__(
        self,
        base_url: str,
        signer: RequestSigner,
        public_key: RSAPublicKey,
        public_key_id: str,
        *,
        connect_timeout: float,
        request_timeout: float,
        max_bill_bytes: int = MAX_BILL_BYTES,
    ):
        self._base_url = httpx.URL(base_url.rstrip("/"))
        self._signer = signer
        self._verifier = AnswerVerifier(public_key, public_key_id)
        self._public_key_id = public_key_id
        self._request_timeout = request_timeout
        self._max_bill_bytes = max_bill_bytes
        self._http = merchant_http_client(connect_timeout=connect_timeout, request_timeout=request_timeout)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def ask(self, account: Account, bill_date: date, request_id: str, data_dir: Path) -> Answer:
        request = bill_request(account)
        query = urlencode((("bill_date", bill_date.isoformat()), *request.parameters, ("tar_type", "GZIP")))
        url = self._base_url.join(f"{self._base_url.path.rstrip('/')}/v3/bill/{request.bill}?{query}")
        status, headers, body = await self._apply(url)
        if status == 429 or status >= 500:
            # Asked again at the interval whatever it says: nothing in it needs believing.
            code, message = _error(body)
            return Answer(Outcome.THROTTLED, code or f"HTTP {status}", message)
        code, _ = _error(body)
        problem = self._verifier.problem(headers, body)
        # An answer that stores something must be WeChat Pay's; a signed answer that fails is
        # never believed. An unsigned refusal is taken at its HTTP status: it can only lead
        # to asking again or to an operator reading its advice.
        if problem is not None and (status == 200 or code == "NO_STATEMENT_EXIST" or _signed(headers)):
            raise AnswerNotBelieved(f"HTTP {status} answer not believed: {problem}")
        if status == 200:
            return await self._download(body, account, bill_date, request.bill, data_dir)
        return _refusal(status, body)

    async def _apply(self, url: httpx.URL) -> tuple[int, httpx.Headers, bytes]:
        headers = self._headers(url)
        try:
            async with (
                asyncio.timeout(self._request_timeout),
                self._http.stream("GET", url, headers=headers) as response,
            ):
                body = await _short_body(response)
                if body is None:
                    raise SourceUnavailable(
                        f"HTTP {response.status_code} answer longer than {_MAX_ANSWER_BYTES} bytes"
                    )
                return response.status_code, response.headers, body
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise SourceUnavailable(f"timed out ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise SourceUnavailable(f"connection failed ({type(exc).__name__}: {exc})") from None

    def _headers(self, url: httpx.URL) -> dict[str, str]:
        return {
            "Authorization": self._signer.authorization("GET", url.raw_path.decode("ascii")),
            "Accept": "application/json",
            # Asks WeChat Pay to sign its answers with the public key rather than a platform certificate.
            "Wechatpay-Serial": self._public_key_id,
            "User-Agent": "bankrecon",
        }

    async def _download(
        self, body: bytes, account: Account, bill_date: date, bill: str, data_dir: Path
    ) -> Answer:
        try:
            ready = json.loads(body)
            hash_type, hash_value, download_url = (
                ready["hash_type"],
                ready["hash_value"],
                ready["download_url"],
            )
            url = httpx.URL(download_url)
        except (ValueError, TypeError, KeyError, httpx.InvalidURL):
            return _damaged("the ready answer lacks hash_type, hash_value or a download_url")
        if hash_type != "SHA1" or not isinstance(hash_value, str):
            return _damaged(f"the ready answer's hash_type is {hash_type!s:.16}, not SHA1")
        if url.scheme not in ("https", self._base_url.scheme) or not url.host:
            return _damaged("the download_url is not an http(s) URL as safe as base_url")
        with staged_file(data_dir / "archives") as (out, staged):
            failed = await self._fetch(url, out)
        try:
            if failed is not None:
                return failed
            file_name = f"{account.account_no}_{bill_date:%Y%m%d}_{bill}.csv.gz"
            return await asyncio.to_thread(_keep_bill, data_dir, staged, hash_value, file_name)
        finally:
            staged.unlink(missing_ok=True)

    async def _fetch(self, url: httpx.URL, out: IO[bytes]) -> Answer | None:
        """The bill into ``out``; an Answer to give instead when the download URL failed."""
        try:
            async with (
                asyncio.timeout(self._request_timeout),
                self._http.stream("GET", url, headers=self._headers(url)) as response,
            ):
                if response.status_code != 200:
                    code, _ = _error(await _short_body(response) or b"")
                    # The URL lives minutes at most: the next apply brings a fresh one.
                    return Answer(
                        Outcome.THROTTLED,
                        code or f"HTTP {response.status_code}",
                        f"the download URL failed (HTTP {response.status_code}); asking again gets a new one",
                    )
                received = 0
                async for piece in response.aiter_bytes(_PIECE):
                    received += len(piece)
                    if received > self._max_bill_bytes:
                        return _damaged(f"the bill is longer than {self._max_bill_bytes} bytes")
                    out.write(piece)
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise SourceUnavailable(f"bill download timed out ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise SourceUnavailable(f"bill download failed ({type(exc).__name__}: {exc})") from None
        return None


async def _short_body(response: httpx.Response) -> bytes | None:
    """The body of an answer that should be a line of JSON; None when it is far longer."""
    body = bytearray()
    async for piece in response.aiter_bytes():
        body += piece
        if len(body) > _MAX_ANSWER_BYTES:
            return None
    return bytes(body)


def _signed(headers: httpx.Headers) -> bool:
    return "Wechatpay-Signature" in headers


def bill_request(account: Account) -> BillRequest:
    settings: Any = account.settings
    if settings.bill == "tradebill":
        return BillRequest("tradebill", (("bill_type", settings.bill_type),))
    return BillRequest("fundflowbill", (("account_type", settings.account_type),))


def _keep_bill(data_dir: Path, staged: Path, hash_value: str, file_name: str) -> Answer:
    """Checks the downloaded gzip whole and keeps it under its SHA-256, or says what is wrong with it."""
    sha256 = hashlib.sha256()
    sha1 = hashlib.sha1(usedforsecurity=False)
    with staged.open("rb") as compressed:
        while piece := compressed.read(_PIECE):
            sha256.update(piece)
        size = compressed.tell()
        compressed.seek(0)
        bill = GunzipStream(compressed, size, ArchiveLimits())
        try:
            while piece := bill.read(_PIECE):
                sha1.update(piece)
        except StatementDamaged as exc:
            return _damaged(f"the download is not a whole gzip: {exc}")
    if sha1.hexdigest() != hash_value.lower():
        return _damaged(
            f"hash_value mismatch: WeChat Pay said {hash_value:.40}, the bill hashes to {sha1.hexdigest()}"
        )
    digest = sha256.hexdigest()
    os.replace(staged, archive_path(data_dir, digest))
    return Answer(
        Outcome.READY,
        "SUCCESS",
        "账单已下载",
        archive=ArchiveRef(sha256=digest, size=size, file_name=file_name),
    )


def _damaged(damage: str) -> Answer:
    return Answer(Outcome.READY, "SUCCESS", "账单下载有误", damage=damage)


def _error(body: bytes) -> tuple[str | None, str]:
    """WeChat Pay's ``{"code", "message"}`` of an error answer, when it is one."""
    try:
        payload = json.loads(body)
        code, message = payload["code"], payload.get("message", "")
    except (ValueError, TypeError, KeyError, AttributeError):
        return None, ""
    if not isinstance(code, str) or not code.isascii() or len(code) > 64:
        return None, ""
    return code, str(message)[:200]


def _refusal(status: int, body: bytes) -> Answer:
    code, message = _error(body)
    if status == 400 and code == "STATEMENT_CREATING":
        return Answer(Outcome.NOT_READY, code, message)
    if status == 400 and code == "NO_STATEMENT_EXIST":
        return Answer(Outcome.EMPTY, code, message)
    if 400 <= status < 500:
        advice = {401: ADVICE_SIGNATURE, 403: ADVICE_PERMISSION}.get(
            status, ADVICE_PARAMETERS if code in ("PARAM_ERROR", "INVALID_REQUEST") else ADVICE_OTHER
        )
        return Answer(Outcome.REJECTED, code or f"HTTP {status}", message, advice=advice)
    return Answer(Outcome.UNRECOGNISED, code or f"HTTP {status}", message)
