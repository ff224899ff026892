"""HTTP client for Alipay's bill download: a signed gateway call, a verified answer, the zip at once."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
import zipfile
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import httpx
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from bankrecon.models import ArchiveRef
from bankrecon.sources.alipay.signing import SignedAnswer, sign, signature_holds, signed_answer, signing_text
from bankrecon.sources.base import Account, Answer, AnswerNotBelieved, Outcome, SourceUnavailable
from bankrecon.sources.http import merchant_http_client
from bankrecon.statements.common import CHINA_STANDARD_TIME, ArchiveLimits, StatementDamaged
from bankrecon.statements.zipguard import ZIP_ERRORS, InflationGuard, zip_members
from bankrecon.store.archive import archive_path, staged_file

DEFAULT_GATEWAY = "https://openapi.alipay.com/gateway.do"
METHOD = "alipay.data.dataservice.bill.downloadurl.query"
SUCCESS = "10000"
BILL_NOT_EXIST = "isp.bill_not_exist"
# The code an empty statement is stored with: "no bill" believed once give_up_after had passed.
EMPTY_CODE = "isp.bill_not_exist after give_up_after"
# A day's bill zip of the busiest app is some hundreds of megabytes; past this it is not a bill.
MAX_BILL_BYTES = 1024**3
# A gateway answer is a line of JSON.
_MAX_ANSWER_BYTES = 64 * 1024
_PIECE = 1024 * 1024

ADVICE_SIGNATURE = (
    "Alipay refused the request's signature or app: check app_id and that app_private_key_file is the "
    "private key whose public key is uploaded to that app (RSA2)"
)
ADVICE_PERMISSION = "Alipay denied access: check that the app holds the bill download permission (对账单下载)"
ADVICE_PARAMETERS = (
    "Alipay refused the request's parameters: check the account's bill_type and that the bill date is "
    "a past day from 2016-01-01 on"
)
ADVICE_OTHER = "Alipay refused the request: check gateway, app_id and the account's bill_type"


class AlipayClient:
    """Talks to Alipay with one app's keys; ``ask`` is one gateway call and, when ready, one download."""

    def __init__(
        self,
        gateway: str,
        app_id: str,
        private_key: RSAPrivateKey,
        public_key: RSAPublicKey,
        *,
        give_up_after: timedelta,
        connect_timeout: float,
        request_timeout: float,
        max_bill_bytes: int = MAX_BILL_BYTES,
        clock: Callable[[], float] = time.time,
    ):
        self._gateway = httpx.URL(gateway)
        self._app_id = app_id
        self._private_key = private_key
        self._public_key = public_key
        self._give_up_after = give_up_after
        self._request_timeout = request_timeout
        self._max_bill_bytes = max_bill_bytes
        self._clock = clock
        self._http = merchant_http_client(connect_timeout=connect_timeout, request_timeout=request_timeout)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def ask(self, account: Account, bill_date: date, request_id: str, data_dir: Path) -> Answer:
        bill_type: str = getattr(account.settings, "bill_type")  # noqa: B009 - any kind's settings
        status, body = await self._call(self.parameters(bill_type, bill_date))
        if status == 429 or status >= 500:
            return Answer(Outcome.THROTTLED, f"HTTP {status}", "the gateway is busy or failing")
        try:
            answer = signed_answer(body.decode("utf-8"), METHOD)
        except (UnicodeDecodeError, ValueError) as exc:
            raise SourceUnavailable(f"HTTP {status} answer is not an Alipay answer: {exc}") from None
        code = str(answer.value.get("code", ""))
        sub_code = str(answer.value.get("sub_code", ""))
        problem = self._problem(answer)
        # An answer that stores something (a bill, or "no bill" that may end as an empty one)
        # must be Alipay's; a signed answer that fails is never believed. An unsigned refusal
        # (the gateway cannot sign for an app it does not know) can only reach an operator.
        if problem is not None and (
            code == SUCCESS or sub_code == BILL_NOT_EXIST or answer.signature is not None
        ):
            raise AnswerNotBelieved(f"HTTP {status} answer not believed: {problem}")
        if code == SUCCESS:
            url = answer.value.get("bill_download_url")
            return await self._download(url, account, bill_date, bill_type, data_dir)
        return self._refusal(answer.value, bill_date)

    def parameters(self, bill_type: str, bill_date: date, now: float | None = None) -> dict[str, str]:
        """The request's parameters, signed."""
        stamp = datetime.fromtimestamp(self._clock() if now is None else now, CHINA_STANDARD_TIME)
        parameters = {
            "app_id": self._app_id,
            "method": METHOD,
            "format": "JSON",
            "charset": "utf-8",
            "sign_type": "RSA2",
            "timestamp": stamp.strftime("%Y-%m-%d %H:%M:%S"),
            "version": "1.0",
            "biz_content": json.dumps(
                {"bill_type": bill_type, "bill_date": bill_date.isoformat()}, separators=(",", ":")
            ),
        }
        return parameters | {"sign": sign(self._private_key, signing_text(parameters))}

    def _problem(self, answer: SignedAnswer) -> str | None:
        if answer.signature is None:
            return "the answer carries no sign"
        if not signature_holds(self._public_key, answer.text, answer.signature):
            return f"the answer's sign does not verify over {answer.name} with alipay_public_key_file"
        return None

    async def _call(self, parameters: dict[str, str]) -> tuple[int, bytes]:
        try:
            async with (
                asyncio.timeout(self._request_timeout),
                self._http.stream(
                    "POST",
                    self._gateway,
                    data=parameters,
                    headers={"Accept": "application/json", "User-Agent": "bankrecon"},
                ) as response,
            ):
                body = bytearray()
                async for piece in response.aiter_bytes():
                    body += piece
                    if len(body) > _MAX_ANSWER_BYTES:
                        raise SourceUnavailable(
                            f"HTTP {response.status_code} answer longer than {_MAX_ANSWER_BYTES} bytes"
                        )
                return response.status_code, bytes(body)
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise SourceUnavailable(f"timed out ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise SourceUnavailable(f"connection failed ({type(exc).__name__}: {exc})") from None

    def _refusal(self, value: dict[str, Any], bill_date: date) -> Answer:
        code = str(value.get("code", ""))
        sub_code = str(value.get("sub_code", ""))
        said = f"{value.get('msg', '')} {value.get('sub_msg', '')}".strip()[:200]
        shown = f"{code} {sub_code}".strip() or "no code"
        if sub_code == BILL_NOT_EXIST:
            return self._not_there(shown, said, bill_date)
        if code == "20000" or sub_code in ("isp.unknow-error", "aop.ACQ.SYSTEM_ERROR"):
            return Answer(Outcome.THROTTLED, shown, said)
        if code in ("20001", "40001", "40002", "40006", "40004"):
            if code == "40006":
                advice = ADVICE_PERMISSION
            elif "sign" in sub_code or "app-id" in sub_code or code == "20001":
                advice = ADVICE_SIGNATURE
            elif code == "40004" or "argument" in sub_code:
                advice = ADVICE_PARAMETERS
            else:
                advice = ADVICE_OTHER
            return Answer(Outcome.REJECTED, shown, said, advice=advice)
        return Answer(Outcome.UNRECOGNISED, shown, said)

    def _not_there(self, shown: str, said: str, bill_date: date) -> Answer:
        """ "No bill" means "not made yet" until ``give_up_after`` past the day's end, then "none"."""
        day_ends = datetime.combine(bill_date + timedelta(days=1), datetime.min.time(), CHINA_STANDARD_TIME)
        believed_from = day_ends + self._give_up_after
        if self._clock() < believed_from.timestamp():
            return Answer(
                Outcome.NOT_READY,
                shown,
                f"{said}: not made yet, or no bill; "
                f"believed as no bill from {believed_from:%Y-%m-%d %H:%M} CST",
            )
        # The stored statement keeps only the code: it says why the statement is empty.
        return Answer(
            Outcome.EMPTY,
            EMPTY_CODE,
            f"{said}: still no bill {self._give_up_after.total_seconds() / 3600:g}h after the day ended "
            "(give_up_after); stored as an empty statement",
        )

    async def _download(
        self, url_text: object, account: Account, bill_date: date, bill_type: str, data_dir: Path
    ) -> Answer:
        try:
            url = httpx.URL(str(url_text)) if isinstance(url_text, str) else None
        except httpx.InvalidURL:
            url = None
        if url is None or url.scheme not in ("http", "https") or not url.host:
            return _damaged("the ready answer has no http(s) bill_download_url")
        with staged_file(data_dir / "archives") as (out, staged):
            failed = await self._fetch(url, out)
        try:
            if failed is not None:
                return failed
            file_name = f"{account.account_no}_{bill_date:%Y%m%d}_{bill_type}.csv.zip"
            return await asyncio.to_thread(_keep_bill, data_dir, staged, file_name)
        finally:
            staged.unlink(missing_ok=True)

    async def _fetch(self, url: httpx.URL, out: IO[bytes]) -> Answer | None:
        """The zip into ``out``; an Answer to give instead when the download URL failed."""
        try:
            async with (
                asyncio.timeout(self._request_timeout),
                self._http.stream("GET", url, headers={"User-Agent": "bankrecon"}) as response,
            ):
                content_type = response.headers.get("Content-Type", "")
                # An expired URL answers with a page ("下载超时，请重新下载"), not a zip.
                if response.status_code != 200 or content_type.startswith("text/"):
                    return Answer(
                        Outcome.THROTTLED,
                        f"HTTP {response.status_code}",
                        f"the bill_download_url failed (HTTP {response.status_code} {content_type[:40]}),"
                        " expired or refused; asking again gets a new one",
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


def _keep_bill(data_dir: Path, staged: Path, file_name: str) -> Answer:
    """Inflates every member once, which checks each CRC, and keeps the zip under its SHA-256."""
    sha256 = hashlib.sha256()
    with staged.open("rb") as file:
        while piece := file.read(_PIECE):
            sha256.update(piece)
        size = file.tell()
        try:
            check_zip_whole(file, ArchiveLimits())
        except StatementDamaged as exc:
            return _damaged(f"the download is not a whole zip: {exc}")
    digest = sha256.hexdigest()
    os.replace(staged, archive_path(data_dir, digest))
    return Answer(
        Outcome.READY, SUCCESS, "Success", archive=ArchiveRef(sha256=digest, size=size, file_name=file_name)
    )


def check_zip_whole(file: IO[bytes], limits: ArchiveLimits) -> None:
    """Reads every member to its end under the limits: the zip's CRCs are its only integrity check."""
    try:
        with zipfile.ZipFile(file, metadata_encoding="gb18030") as archive:
            inflation = InflationGuard(limits)
            for info in zip_members(archive, limits):
                with archive.open(info) as member:
                    member_bytes = 0
                    while piece := member.read(_PIECE):
                        member_bytes += len(piece)
                        inflation.add(len(piece), member_bytes, info, info.filename)
    except ZIP_ERRORS as exc:
        raise StatementDamaged("archive", f"not a readable zip: {exc}") from None


def _damaged(damage: str) -> Answer:
    return Answer(Outcome.READY, SUCCESS, "账单下载有误", damage=damage)
