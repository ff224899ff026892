"""HTTP client for UnionPay ACP file transfer (txnType 76): one signed form POST, one verified answer.

The answer is ``k=v&...`` like the request. Its ``fileContent`` (base64 of a zlib-compressed
zip) can be hundreds of megabytes, so the answer is streamed: the small fields are kept, the
file's text goes to a staged file, the signature is checked over both, and only then is the
zip inflated into DATA_DIR/archives under its SHA-256.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import os
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from datetime import date, datetime
from pathlib import Path
from typing import IO

import httpx

from bankrecon.models import ArchiveRef
from bankrecon.sources.base import Account, Answer, AnswerNotBelieved, Outcome, SourceUnavailable
from bankrecon.sources.http import merchant_http_client
from bankrecon.sources.unionpay.signing import (
    SIGNATURE_FIELD,
    AnswerCertificates,
    SigningKey,
    digest_hex,
    digest_signature_holds,
    sign_fields,
)
from bankrecon.statements.common import CHINA_STANDARD_TIME
from bankrecon.statements.zipguard import ZIP_ERRORS
from bankrecon.store.archive import archive_path, staged_file

DEFAULT_BASE_URL = "https://filedownload.95516.com/"
FILE_CONTENT = "fileContent"
# A day's settlement zip of the busiest merchant is some hundreds of megabytes; past this it
# is not a settlement file, and is not allowed to fill the disk.
MAX_FILE_BYTES = 2 * 1024**3
# Every field of an answer but fileContent is short: the certificate is the longest.
_MAX_FIELD_BYTES = 64 * 1024
_PIECE = 1024 * 1024
_BASE64_PIECE = 4 * 256 * 1024

ADVICE_CERTIFICATE = (
    "UnionPay refused the request (respCode 99 and the like): check mer_id, that signing_pfx_file is "
    "the signing certificate UnionPay issued to this merId, and base_url (test or production)"
)
ADVICE_OTHER = "UnionPay refused the request: check mer_id, base_url and the settlement date"


def request_fields(mer_id: str, cert_id: str, settle_date: date, now: datetime) -> dict[str, str]:
    """The fields of a file transfer request, before its signature."""
    return {
        "version": "5.1.0",
        "encoding": "UTF-8",
        "signMethod": "01",
        "txnType": "76",
        "txnSubType": "01",
        "bizType": "000000",
        "accessType": "0",
        "channelType": "07",
        "fileType": "00",
        "merId": mer_id,
        "txnTime": now.astimezone(CHINA_STANDARD_TIME).strftime("%Y%m%d%H%M%S"),
        "settleDate": f"{settle_date:%m%d}",
        "certId": cert_id,
    }


class AnswerReader:
    """Splits a streamed ``k=v&...`` answer: small fields kept, ``fileContent``'s value written out."""

    def __init__(self, content: IO[bytes]):
        self.fields: dict[str, str] = {}
        self.has_content = False
        self.content_bytes = 0
        self._content = content
        self._pending = b""
        self._in_content = False

    def feed(self, chunk: bytes) -> None:
        while chunk:
            end = chunk.find(b"&")
            piece, chunk = (chunk, b"") if end < 0 else (chunk[:end], chunk[end + 1 :])
            if self._in_content:
                self._write(piece)
            else:
                self._pending += piece
                if self._pending.startswith(b"fileContent="):
                    if self.has_content:
                        raise SourceUnavailable("the answer carries fileContent twice")
                    self.has_content = self._in_content = True
                    self._write(self._pending[len(b"fileContent=") :])
                    self._pending = b""
                elif len(self._pending) > _MAX_FIELD_BYTES:
                    raise SourceUnavailable(f"an answer field is longer than {_MAX_FIELD_BYTES} bytes")
            if end >= 0:
                self._end_pair()

    def close(self) -> None:
        self._end_pair()

    def _write(self, piece: bytes) -> None:
        self.content_bytes += len(piece)
        self._content.write(piece)

    def _end_pair(self) -> None:
        if self._in_content:
            self._in_content = False
            return
        if not self._pending:
            return
        name, equals, value = self._pending.partition(b"=")
        self._pending = b""
        try:
            key = name.decode("ascii")
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            raise SourceUnavailable("the answer is not k=v pairs in UTF-8") from None
        if not equals or not key or key in self.fields:
            raise SourceUnavailable("the answer is not k=v pairs with distinct names")
        self.fields[key] = text


class UnionPayClient:
    """Asks UnionPay for one merchant's settlement files, signing with its PFX."""

    def __init__(
        self,
        base_url: str,
        mer_id: str,
        signing_key: SigningKey,
        certificates: AnswerCertificates,
        *,
        connect_timeout: float,
        request_timeout: float,
        max_file_bytes: int = MAX_FILE_BYTES,
    ):
        self._url = httpx.URL(base_url)
        self._mer_id = mer_id
        self._signing_key = signing_key
        self._certificates = certificates
        self._request_timeout = request_timeout
        self._max_file_bytes = max_file_bytes
        self._http = merchant_http_client(connect_timeout=connect_timeout, request_timeout=request_timeout)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def ask(self, account: Account, bill_date: date, request_id: str, data_dir: Path) -> Answer:
        fields = request_fields(
            self._mer_id, self._signing_key.cert_id, bill_date, datetime.now(CHINA_STANDARD_TIME)
        )
        fields[SIGNATURE_FIELD] = sign_fields(self._signing_key.private_key, fields)
        with staged_file(data_dir / "archives") as (content, staged):
            reader = AnswerReader(content)
            status = await self._post(fields, reader)
        try:
            if status == 429 or status >= 500:
                return Answer(Outcome.THROTTLED, f"HTTP {status}", "UnionPay is busy or failing")
            if status != 200:
                return Answer(
                    Outcome.UNRECOGNISED, f"HTTP {status}", "an HTTP status UnionPay does not answer with"
                )
            return await asyncio.to_thread(self._answer, reader, staged, data_dir, bill_date)
        finally:
            staged.unlink(missing_ok=True)

    async def _post(self, fields: Mapping[str, str], reader: AnswerReader) -> int:
        limit = self._max_file_bytes * 4 // 3 + _MAX_FIELD_BYTES * 32
        received = 0
        try:
            async with (
                asyncio.timeout(self._request_timeout),
                self._http.stream(
                    "POST",
                    self._url,
                    data=dict(fields),
                    headers={"User-Agent": "bankrecon", "Accept": "*/*"},
                ) as response,
            ):
                async for piece in response.aiter_bytes(_PIECE):
                    received += len(piece)
                    if received > limit:
                        raise SourceUnavailable(
                            f"HTTP {response.status_code} answer longer than {limit} bytes"
                        )
                    if response.status_code == 200:
                        reader.feed(piece)
                reader.close()
                return response.status_code
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise SourceUnavailable(f"timed out ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise SourceUnavailable(f"connection failed ({type(exc).__name__}: {exc})") from None

    def _answer(self, reader: AnswerReader, content: Path, data_dir: Path, bill_date: date) -> Answer:
        fields = reader.fields
        code, message = fields.get("respCode", ""), fields.get("respMsg", "")[:200]
        if not code:
            return Answer(Outcome.UNRECOGNISED, "no respCode", "an answer without respCode")
        signed = SIGNATURE_FIELD in fields
        if signed:
            problem = self._problem(reader, content)
            if problem is not None:
                raise AnswerNotBelieved(f"respCode {code:.8} answer not believed: {problem}")
        if code == "00":
            # An answer that stores something must be UnionPay's; a refusal unsigned can only
            # lead to asking again or to an operator reading its advice.
            if not signed:
                raise AnswerNotBelieved("respCode 00 answer not believed: it carries no signature")
            if not reader.has_content:
                return _damaged("the answer has no fileContent")
            return _keep_file(
                content, data_dir, f"{self._mer_id}_{bill_date:%Y%m%d}.zip", self._max_file_bytes
            )
        if code == "98":
            return Answer(Outcome.NOT_READY, code, message)
        advice = ADVICE_CERTIFICATE if code == "99" else ADVICE_OTHER
        return Answer(Outcome.REJECTED, code, message, advice=advice)

    def _problem(self, reader: AnswerReader, content: Path) -> str | None:
        fields = reader.fields
        if fields.get("merId", self._mer_id) != self._mer_id:
            return "the answer is for another merId"
        key = self._certificates.signing_key(fields.get("signPubKeyCert", ""))
        if isinstance(key, str):
            return key
        digest = digest_hex(_signed_pieces(fields, content if reader.has_content else None))
        if not digest_signature_holds(key, digest, fields[SIGNATURE_FIELD]):
            return "the answer's signature does not verify with its signPubKeyCert"
        return None


def _signed_pieces(fields: Mapping[str, str], content: Path | None) -> Iterator[bytes]:
    """The answer's signing text in pieces, fileContent read from its staged file."""
    names = sorted([*fields, *([FILE_CONTENT] if content is not None else [])])
    first = True
    for name in names:
        if name == SIGNATURE_FIELD:
            continue
        yield f"{'' if first else '&'}{name}=".encode()
        first = False
        if name == FILE_CONTENT and content is not None:
            with content.open("rb") as text:
                while piece := text.read(_PIECE):
                    yield piece
        else:
            yield fields[name].encode("utf-8")


def _keep_file(content: Path, data_dir: Path, file_name: str, max_bytes: int) -> Answer:
    """Inflates the verified fileContent into a zip kept under its SHA-256, or says what is wrong."""
    sha256 = hashlib.sha256()
    with staged_file(data_dir / "archives") as (out, staged), content.open("rb") as text:
        damage = _inflate(text, out, sha256, max_bytes)
    try:
        if damage is None:
            damage = _not_a_zip(staged)
        if damage is not None:
            return _damaged(damage)
        digest = sha256.hexdigest()
        size = staged.stat().st_size
        os.replace(staged, archive_path(data_dir, digest))
    finally:
        staged.unlink(missing_ok=True)
    return Answer(
        Outcome.READY, "00", "文件已下载", archive=ArchiveRef(sha256=digest, size=size, file_name=file_name)
    )


def _inflate(text: IO[bytes], out: IO[bytes], sha256: hashlib._Hash, max_bytes: int) -> str | None:
    """base64 text, zlib-inflated into ``out``; what is wrong with it, or None."""
    inflater = zlib.decompressobj()
    size = 0
    try:
        while piece := text.read(_BASE64_PIECE):
            pending = base64.b64decode(piece, validate=True)
            while pending:
                data = inflater.decompress(pending, _PIECE)
                pending = inflater.unconsumed_tail
                size += len(data)
                if size > max_bytes:
                    return f"fileContent inflates to more than {max_bytes} bytes"
                sha256.update(data)
                out.write(data)
    except (binascii.Error, ValueError):
        return "fileContent is not base64"
    except zlib.error as exc:
        return f"fileContent is not zlib-compressed data ({exc})"
    if not inflater.eof or inflater.unused_data:
        return "fileContent's compressed data is cut short or followed by more"
    return None


def _not_a_zip(path: Path) -> str | None:
    try:
        with zipfile.ZipFile(path):
            return None
    except ZIP_ERRORS as exc:
        return f"the inflated file is not a zip ({exc})"


def _damaged(damage: str) -> Answer:
    return Answer(Outcome.READY, "00", "文件下载有误", damage=damage)
