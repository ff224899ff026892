"""Defences every zip a channel sends goes through: member counts, names, methods, inflation.

A zip from a channel is read, never extracted, but a hostile or faulty one can still claim
a member count, names, methods and sizes that would harm the host; these checks turn each
into ``StatementDamaged`` before or while a member is read.
"""

from __future__ import annotations

import re
import zipfile
import zlib
from collections.abc import Callable

from bankrecon.statements.common import ArchiveLimits, StatementDamaged

# Every way the zip layer reports an archive it cannot read: corrupt directory,
# bad CRC, broken deflate stream, truncated data, undecodable member names.
ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, ValueError)
# bzip2 and lzma members would inflate a whole input chunk at once, without the
# output bound zipfile applies to deflate, and no channel sends them.
_ALLOWED_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
_ZIP_ENCRYPTED_FLAG = 0x1
# Small members compress unpredictably; the ratio only signals a bomb on volume.
_RATIO_FLOOR_BYTES = 1024 * 1024
_DRIVE = re.compile(r"[A-Za-z]:").match


def zip_members(
    archive: zipfile.ZipFile,
    limits: ArchiveLimits,
    wanted: Callable[[zipfile.ZipInfo], bool] = lambda _info: True,
) -> list[zipfile.ZipInfo]:
    """The archive's file members that ``wanted`` picks, once every name and their methods are checked."""
    infos = archive.infolist()
    if len(infos) > limits.max_members:
        raise StatementDamaged(
            "limits", f"archive holds {len(infos)} members, at most {limits.max_members} allowed"
        )
    for info in infos:
        check_member_name(info.orig_filename)
    members = [info for info in infos if not info.is_dir() and wanted(info)]
    for info in members:
        if info.compress_type not in _ALLOWED_METHODS:
            raise StatementDamaged(
                "archive",
                f"compression method {info.compress_type} (only stored or deflate)",
                part=info.filename,
            )
        if info.flag_bits & _ZIP_ENCRYPTED_FLAG:
            raise StatementDamaged("archive", "member is encrypted", part=info.filename)
    return members


def check_member_name(name: str) -> None:
    # The names are never used as paths here, but such a name only comes from a
    # faulty or hostile source, and the whole archive is refused for it.
    if "\x00" in name:
        raise StatementDamaged("archive", f"member name {name!r} contains a NUL byte")
    if name.startswith(("/", "\\")) or _DRIVE(name):
        raise StatementDamaged("archive", f"member name {name!r} is an absolute path")
    if ".." in re.split(r"[/\\]", name):
        raise StatementDamaged("archive", f"member name {name!r} has a '..' segment")


class InflationGuard:
    """Inflated bytes as actually read: declared sizes in a hostile zip can lie."""

    __slots__ = ("limits", "total")

    def __init__(self, limits: ArchiveLimits):
        self.limits = limits
        self.total = 0

    def add(self, size: int, member_bytes: int, info: zipfile.ZipInfo, label: str) -> None:
        """Counts ``size`` more inflated bytes, ``member_bytes`` so far of ``info``, against the limits."""
        self.total += size
        if self.total > self.limits.max_total_uncompressed_bytes:
            raise StatementDamaged(
                "limits",
                f"archive inflates to more than {self.limits.max_total_uncompressed_bytes} bytes",
                part=label,
            )
        if (
            member_bytes > _RATIO_FLOOR_BYTES
            and member_bytes > self.limits.max_compression_ratio * info.compress_size
        ):
            raise StatementDamaged(
                "limits",
                f"member inflates to more than {self.limits.max_compression_ratio} times "
                f"its compressed size of {info.compress_size} bytes",
                part=label,
            )
