"""A bill's gzip, decompressed as a stream in bounded pieces, whatever it claims about itself."""

from __future__ import annotations

import io
import zlib
from typing import IO

from bankrecon.statements.common import ArchiveLimits, StatementDamaged

_GZIP = 16 + zlib.MAX_WBITS
_PIECE = 256 * 1024


class GunzipStream(io.RawIOBase):
    """The decompressed bytes of the gzip in ``compressed``: StatementDamaged when broken or past ``limits``.

    Several gzip members follow one another as ``gunzip`` reads them (at most ``max_members``);
    a file that ends inside a member is truncated.
    """

    def __init__(self, compressed: IO[bytes], compressed_size: int, limits: ArchiveLimits):
        super().__init__()
        self._compressed = compressed
        self._limit = min(limits.max_total_uncompressed_bytes, limits.max_compression_ratio * compressed_size)
        self._max_members = limits.max_members
        self._members = 1
        self._inflate = zlib.decompressobj(_GZIP)
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        wanted = len(buffer)
        try:
            while True:
                data = self._inflate_some(wanted)
                if data is None:
                    return 0
                if data:
                    break
        except zlib.error as exc:
            raise StatementDamaged("gzip", f"not a valid gzip stream ({exc})") from None
        self.size += len(data)
        if self.size > self._limit:
            raise StatementDamaged(
                "archive limits",
                f"decompresses past {self._limit} bytes (the limits' total, or their ratio to the size)",
            )
        buffer[: len(data)] = data
        return len(data)

    def _inflate_some(self, wanted: int) -> bytes | None:
        """Up to ``wanted`` decompressed bytes, b"" when a step gave none yet, None at a clean end."""
        inflate = self._inflate
        if inflate.unconsumed_tail:
            return inflate.decompress(inflate.unconsumed_tail, wanted)
        if inflate.eof:
            rest = inflate.unused_data or self._compressed.read(_PIECE)
            if not rest:
                return None
            self._members += 1
            if self._members > self._max_members:
                raise StatementDamaged("archive limits", f"more than {self._max_members} gzip members")
            self._inflate = zlib.decompressobj(_GZIP)
            return self._inflate.decompress(rest, wanted)
        compressed = self._compressed.read(_PIECE)
        if not compressed:
            raise StatementDamaged("gzip", "the file ends inside its compressed stream (truncated)")
        return inflate.decompress(compressed, wanted)
