"""Downloaded archives and validated records on disk under DATA_DIR, written atomically.

Archives are content-addressed (``archives/<sha256>.zip``): a re-download of the
same file lands on the same name, and nothing in an archive ever chooses a path.
"""

from __future__ import annotations

import binascii
import contextlib
import hashlib
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import IO

from bankrecon.models import ArchiveRef


class ArchiveDamaged(Exception):
    """The download is not the file the bank meant to send; fetching again may help."""


def archive_path(data_dir: Path, sha256: str) -> Path:
    return data_dir / "archives" / f"{sha256}.zip"


@contextmanager
def staged_file(directory: Path) -> Iterator[tuple[IO[bytes], Path]]:
    """A temporary file in ``directory``, flushed to disk on success and removed on failure.

    The caller renames it into place, so a reader never sees a half-written file.
    """
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=".incoming-")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out, tmp
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def sweep_staged_files(directory: Path, older_than: timedelta) -> list[Path]:
    """Remove staged files that a killed worker left behind; none so old can still be written."""
    cutoff = time.time() - older_than.total_seconds()
    swept = []
    for staged in directory.glob(".incoming-*"):
        with contextlib.suppress(FileNotFoundError):
            if staged.stat().st_mtime < cutoff:
                staged.unlink()
                swept.append(staged)
    return swept


class Base64Content:
    """The bank's base64 file_content, fed in pieces of any size: decoded, hashed and written as it comes.

    MIME line breaks (CRLF or LF) are dropped; anything else outside the alphabet, padding
    before the end or a length that is not a multiple of 4 makes the content damaged. The
    first damage is kept in ``damage``, and nothing more is written after it.
    """

    def __init__(self, out: IO[bytes]):
        self._out = out
        self._digest = hashlib.sha256()
        self._pending = b""
        self._chars = 0
        self._padded = False
        self.received = False
        self.size = 0
        self.damage: str | None = None

    def feed(self, text: bytes) -> None:
        self.received = True
        if self.damage is not None:
            return
        text = self._pending + text
        # A CR at the end may be the first half of a CRLF split between two pieces.
        held = b"\r" if text.endswith(b"\r") else b""
        text = text[: len(text) - len(held)].replace(b"\r\n", b"").replace(b"\n", b"")
        usable = len(text) - len(text) % 4
        self._pending = text[usable:] + held
        if not usable:
            return
        if self._padded:
            self.damage = f"invalid base64 near character {self._chars}: Excess data after padding"
            return
        try:
            chunk = binascii.a2b_base64(text[:usable], strict_mode=True)
        except binascii.Error as exc:
            self.damage = f"invalid base64 near character {self._chars}: {exc}"
            return
        self._padded = text[usable - 1 : usable] == b"="
        self._chars += usable
        self._digest.update(chunk)
        self.size += len(chunk)
        self._out.write(chunk)

    def finish(self) -> None:
        if self.damage is None and self._pending:
            length = self._chars + len(self._pending)
            self.damage = f"base64 length {length} is not a multiple of 4 (truncated?)"

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()


def keep_archive(
    data_dir: Path, staged: Path, content: Base64Content, file_name: str, file_sha256: str
) -> ArchiveRef:
    """Move a fully received, undamaged archive whose digest is the bank's into its place."""
    content.finish()
    if content.damage is not None:
        raise ArchiveDamaged(content.damage)
    if content.sha256 != file_sha256.lower():
        raise ArchiveDamaged(
            f"file_sha256 mismatch: the bank said {file_sha256}, the download hashes to {content.sha256}"
        )
    os.replace(staged, archive_path(data_dir, content.sha256))
    return ArchiveRef(sha256=content.sha256, size=content.size, file_name=file_name)
