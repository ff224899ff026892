"""Downloaded archives and validated records on disk under DATA_DIR, written atomically.

Archives are content-addressed (``archives/<sha256>.zip``): a re-download of the
same file lands on the same name, and nothing in an archive ever chooses a path.
"""

from __future__ import annotations

import binascii
import contextlib
import hashlib
import os
import re
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import IO

from bankrecon.models import ArchiveRef

_BASE64_CHUNK = 4 * 65536
_LINE_BREAKS = re.compile(r"\r?\n")


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


def store_base64_archive(data_dir: Path, file_name: str, file_content: str, file_sha256: str) -> ArchiveRef:
    """Decode the bank's base64 (MIME line breaks allowed), check its SHA-256 and keep the zip."""
    text = _LINE_BREAKS.sub("", file_content)
    if len(text) % 4:
        raise ArchiveDamaged(f"base64 length {len(text)} is not a multiple of 4 (truncated?)")
    digest = hashlib.sha256()
    size = 0
    with staged_file(data_dir / "archives") as (out, staged):
        for start in range(0, len(text), _BASE64_CHUNK):
            try:
                chunk = binascii.a2b_base64(text[start : start + _BASE64_CHUNK], strict_mode=True)
            except binascii.Error as exc:
                raise ArchiveDamaged(f"invalid base64 near character {start}: {exc}") from None
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
        sha256 = digest.hexdigest()
        if sha256 != file_sha256.lower():
            raise ArchiveDamaged(
                f"file_sha256 mismatch: the bank said {file_sha256}, the download hashes to {sha256}"
            )
    os.replace(staged, archive_path(data_dir, sha256))
    return ArchiveRef(sha256=sha256, size=size, file_name=file_name)
