"""Storing the bank's base64 download: damage is named, and nothing half-written stays behind."""

from __future__ import annotations

import base64
import hashlib
import os
import time
from datetime import timedelta
from pathlib import Path

import pytest

from bankrecon.models import ArchiveRef
from bankrecon.store.archive import (
    ArchiveDamaged,
    Base64Content,
    archive_path,
    keep_archive,
    staged_file,
    sweep_staged_files,
)

ZIP = b"PK\x03\x04 pretend zip bytes " * 50
SHA = hashlib.sha256(ZIP).hexdigest()
TEXT = base64.b64encode(ZIP).decode()


def store_base64_archive(
    data_dir: Path, file_name: str, text: str, sha256: str, piece: int = 7
) -> ArchiveRef:
    """The content fed in small pieces, as a stream arrives: line breaks and padding fall anywhere."""
    with staged_file(data_dir / "archives") as (out, staged):
        content = Base64Content(out)
        encoded = text.encode()
        for start in range(0, len(encoded), piece):
            content.feed(encoded[start : start + piece])
    try:
        return keep_archive(data_dir, staged, content, file_name, sha256)
    finally:
        staged.unlink(missing_ok=True)


def _leftovers(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "archives").glob("*")) if (data_dir / "archives").exists() else []


PIECES = pytest.mark.parametrize("piece", [1, 7, 77, 1 << 20])


@PIECES
@pytest.mark.parametrize("line_break", ["", "\r\n", "\n"])
def test_base64_with_or_without_mime_line_breaks(tmp_path: Path, line_break: str, piece: int) -> None:
    wrapped = line_break.join(TEXT[i : i + 76] for i in range(0, len(TEXT), 76)) + line_break
    ref = store_base64_archive(tmp_path, "a.zip", wrapped, SHA.upper(), piece)
    assert (ref.sha256, ref.size, ref.file_name) == (SHA, len(ZIP), "a.zip")
    assert archive_path(tmp_path, SHA).read_bytes() == ZIP
    assert _leftovers(tmp_path) == [archive_path(tmp_path, SHA)]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (TEXT[:-3], "not a multiple of 4"),  # truncated
        (TEXT[:100] + "*" + TEXT[101:], "invalid base64"),
        (TEXT[:100] + " " + TEXT[101:], "invalid base64"),
        (TEXT[:-4] + "A=A=", "invalid base64"),
        (TEXT + "AAAA", "Excess data after padding"),
        # Well-formed, but not the file the bank hashed.
        (base64.b64encode(ZIP + b"!").decode(), "file_sha256 mismatch"),
    ],
)
@PIECES
def test_damaged_downloads_are_named_and_leave_nothing(
    tmp_path: Path, content: str, message: str, piece: int
) -> None:
    with pytest.raises(ArchiveDamaged, match=message):
        store_base64_archive(tmp_path, "a.zip", content, SHA, piece)
    assert _leftovers(tmp_path) == []


def test_staged_files_left_by_a_dead_worker_are_swept_once_stale(tmp_path: Path) -> None:
    directory = tmp_path / "records"
    directory.mkdir()
    stale, fresh, kept = directory / ".incoming-abc", directory / ".incoming-def", directory / "a.txt"
    for path in (stale, fresh, kept):
        path.write_bytes(b"x")
    four_hours_ago = time.time() - 4 * 3600
    os.utime(stale, (four_hours_ago, four_hours_ago))
    os.utime(kept, (four_hours_ago, four_hours_ago))
    assert sweep_staged_files(directory, timedelta(hours=3)) == [stale]
    assert sorted(directory.iterdir()) == [fresh, kept]
    assert sweep_staged_files(tmp_path / "missing", timedelta(hours=3)) == []
