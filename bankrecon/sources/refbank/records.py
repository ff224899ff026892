"""The reference bank's decode writes a statement's valid D records to its records file as it
validates them (the file's form, and how persist reads it: bankrecon.statements.detail_records)."""

from __future__ import annotations

from pathlib import Path
from typing import IO

from bankrecon.sources.refbank.format import DetailLines


def records_path(data_dir: Path, source_sha256: str, account_no: str, bill_date: str) -> Path:
    return data_dir / "records" / f"{source_sha256}-{account_no}-{bill_date}.lines"


class RecordWriter:
    """Appends a statement's valid detail lines to its records file."""

    def __init__(self, out: IO[bytes]):
        self._out = out
        self.count = 0

    def write(self, details: DetailLines) -> None:
        self._out.write(details.text.encode("utf-8"))
        self.count += len(details.serial_nos)
