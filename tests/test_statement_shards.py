"""Validation on several cores: it accepts exactly what one process accepts, and doubts all else.

The blocks here are a few lines each, so that every statement is shared out over many
blocks and all shards; each test runs the real child processes.
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from bankrecon.models import ArchiveRef, StatementKey
from bankrecon.sources.refbank import shards as statement_shards
from bankrecon.sources.refbank.decoding import decode_archive
from bankrecon.sources.refbank.format import (
    DetailLines,
    ExpectedStatement,
    StatementSummary,
    validate_statement_archive,
)
from bankrecon.sources.refbank.records import RecordWriter
from bankrecon.sources.refbank.shards import _Job, _run_children, validate_in_shards
from bankrecon.sources.refbank.simulator.generator import generate_statement
from bankrecon.statements.common import ArchiveLimits, StatementDamaged
from bankrecon.store.archive import archive_path
from tests.harness import ACCOUNT, BILL_DATE
from tests.processes import children_of

EXPECTED = ExpectedStatement(ACCOUNT, BILL_DATE, "CNY")
KEY = StatementKey(account_no=ACCOUNT, bill_date=BILL_DATE)
CHUNK = 1024  # bytes of inflated text per block: six lines or so
Parts = list[list[str]]  # each part's lines, without line endings


def zipped(parts: Parts, line_ending: str = "\n", final_newline: bool = True) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for number, lines in enumerate(parts, start=1):
            text = line_ending.join(lines) + (line_ending if final_newline else "")
            archive.writestr(f"{ACCOUNT}_{BILL_DATE:%Y%m%d}_{number:03d}.txt", text.encode("gb18030"))
    return buffer.getvalue()


def generated(lines: int, parts: int = 1, seed: int = 11) -> Parts:
    statement = generate_statement(ACCOUNT, BILL_DATE, seed=seed, lines=lines, parts=parts)
    return [text.split("\n")[:-1] for text in statement.part_texts()]


def sequential(path: Path) -> tuple[StatementSummary, bytes]:
    out = io.BytesIO()
    writer = RecordWriter(out)

    def keep(details: DetailLines) -> None:
        writer.write(details)

    return validate_statement_archive(path, EXPECTED, ArchiveLimits(), keep), out.getvalue()


def sharded(path: Path, workdir: Path, shards: int) -> tuple[StatementSummary | None, bytes]:
    workdir.mkdir(exist_ok=True)
    out = io.BytesIO()
    summary = validate_in_shards(path, EXPECTED, ArchiveLimits(), out, workdir, shards, chunk_bytes=CHUNK)
    assert list(workdir.iterdir()) == []  # the children's files are gone
    return summary, out.getvalue()


@pytest.mark.parametrize(
    ("lines", "parts", "line_ending", "final_newline"),
    [(300, 1, "\n", True), (250, 3, "\r\n", False), (40, 4, "\n", False), (0, 2, "\r\n", True)],
)
@pytest.mark.parametrize("shards", [2, 3])
def test_a_valid_statement_gives_the_same_records_and_summary(
    tmp_path: Path, lines: int, parts: int, line_ending: str, final_newline: bool, shards: int
) -> None:
    path = tmp_path / "s.zip"
    path.write_bytes(zipped(generated(lines, parts), line_ending, final_newline))

    assert sharded(path, tmp_path / "work", shards) == sequential(path)


def test_trailing_empty_lines_and_gb18030_names_are_accepted(tmp_path: Path) -> None:
    statement = generate_statement(ACCOUNT, BILL_DATE, seed=3, lines=120, parts=2, gb18030_names=True)
    path = tmp_path / "s.zip"
    path.write_bytes(statement.to_zip_bytes(line_ending="\r\n"))
    with_empty = [[*lines, "", ""] for lines in generated(120, 2, seed=3)]
    padded = tmp_path / "padded.zip"
    padded.write_bytes(zipped(with_empty))

    assert sharded(path, tmp_path / "work", 2) == sequential(path)
    assert sharded(padded, tmp_path / "work", 2) == sequential(padded)


def _field(line: str, index: int, value: str) -> str:
    fields = line.split("|")
    fields[index] = value
    return "|".join(fields)


def _cents_shifted(line: str, index: int, by: int) -> str:
    value = line.split("|")[index]
    cents = int(value.replace(".", "")) + by
    sign = "-" if cents < 0 else ""
    return _field(line, index, f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}")


def broken_chain_from(k: int) -> Callable[[Parts], Parts]:
    """Every balance from detail line k on one cent higher, the closing too: one break, at k."""

    def damage(parts: Parts) -> Parts:
        lines = list(parts[0])
        for n in range(k, len(lines) - 1):
            lines[n] = _cents_shifted(lines[n], 6, 1)
        lines[-1] = _cents_shifted(lines[-1], 6, 1)
        return [lines]

    return damage


def _replace(part: int, line: int, make: Callable[[str], str | list[str]]) -> Callable[[Parts], Parts]:
    def damage(parts: Parts) -> Parts:
        changed = [list(lines) for lines in parts]
        at = line % len(changed[part])
        new = make(changed[part][at])
        changed[part][at : at + 1] = new if isinstance(new, list) else [new]
        return changed

    return damage


def repeat_serial(parts: Parts, of_line: int, at_line: int) -> Parts:
    serial = parts[0][of_line].split("|")[3]
    return _replace(0, at_line, lambda line: _field(line, 3, serial))(parts)


DAMAGE = {
    "amount changed": _replace(0, 30, lambda line: _cents_shifted(line, 5, 1)),
    "serial repeated in another block": lambda parts: repeat_serial(parts, of_line=2, at_line=90),
    "trailer credit_count": _replace(0, -1, lambda line: _field(line, 2, str(int(line.split("|")[2]) + 1))),
    "trailer closing_balance": _replace(0, -1, lambda line: _cents_shifted(line, 6, 1)),
    "text after the trailer": _replace(0, -1, lambda line: [line, "", "D|x"]),
    "empty line before the trailer": _replace(0, -1, lambda line: ["", line]),
    "missing trailer": _replace(0, -1, lambda _line: []),
    "not GB18030": _replace(0, 50, lambda line: line + "\udcff"),
    "a D record of 9 fields": _replace(0, 70, lambda line: line.rsplit("|", 1)[0]),
    "trade_date not the bill_date": _replace(0, 12, lambda line: _field(line, 1, "20261123")),
    "overlong line": _replace(0, 40, lambda line: _field(line, 9, "长" * 40_000)),
    "part 2 opens elsewhere": _replace(1, 0, lambda line: _cents_shifted(line, 4, 1)),
}


def _damaged_zip(parts: Parts) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for number, lines in enumerate(parts, start=1):
            text = "\n".join(lines) + "\n"
            data = text.encode("gb18030", errors="surrogateescape")
            archive.writestr(f"{ACCOUNT}_{BILL_DATE:%Y%m%d}_{number:03d}.txt", data)
    return buffer.getvalue()


@pytest.mark.parametrize("damage", list(DAMAGE), ids=list(DAMAGE))
def test_a_damaged_statement_is_doubted_and_named_as_one_process_names_it(
    tmp_path: Path, damage: str
) -> None:
    data = _damaged_zip(DAMAGE[damage](generated(200, 2)))
    path = tmp_path / "d.zip"
    path.write_bytes(data)

    summary, _ = sharded(path, tmp_path / "work", 2)
    assert summary is None
    assert _decode_error(tmp_path / "one", data, shards=1) == _decode_error(tmp_path / "two", data, shards=2)


@pytest.mark.parametrize("k", range(1, 15))
def test_a_chain_broken_at_any_line_is_doubted_inside_a_block_or_between_two(tmp_path: Path, k: int) -> None:
    # With blocks of about six lines, some k fall on a block's first line: only the parent,
    # joining two shards' blocks, sees those breaks.
    path = tmp_path / "d.zip"
    path.write_bytes(_damaged_zip(broken_chain_from(k)(generated(100))))

    assert sharded(path, tmp_path / "work", 2)[0] is None
    with pytest.raises(StatementDamaged, match=r"rule 3 \(balance chain\)"):
        sequential(path)


def _decode_error(data_dir: Path, data: bytes, shards: int) -> str:
    sha256 = hashlib.sha256(data).hexdigest()
    target = archive_path(data_dir, sha256)
    target.parent.mkdir(parents=True)
    target.write_bytes(data)
    archive = ArchiveRef(sha256=sha256, size=len(data), file_name="d.zip")
    with pytest.raises(StatementDamaged) as caught:
        decode_archive(data_dir, KEY, archive, ArchiveLimits(), "CNY", shards=shards)
    assert list((data_dir / "records").iterdir()) == []  # nothing half-written stays
    return str(caught.value)


def test_decode_with_shards_writes_the_records_file_one_process_writes(tmp_path: Path) -> None:
    data = zipped(generated(500, 2))
    files = {}
    for shards in (1, 2):
        data_dir = tmp_path / f"shards-{shards}"
        sha256 = hashlib.sha256(data).hexdigest()
        target = archive_path(data_dir, sha256)
        target.parent.mkdir(parents=True)
        target.write_bytes(data)
        archive = ArchiveRef(sha256=sha256, size=len(data), file_name="s.zip")
        decoded = decode_archive(data_dir, KEY, archive, ArchiveLimits(), "CNY", shards=shards)
        files[shards] = (decoded, (data_dir / decoded.records_file).read_bytes())
    assert files[1] == files[2]


def test_shards_run_from_any_working_directory_with_relative_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("s.zip").write_bytes(zipped(generated(300)))

    summary, records = sharded(Path("s.zip"), Path("work"), 2)

    assert summary is not None and (summary, records) == sequential(Path("s.zip"))


def test_a_parent_that_gives_up_leaves_no_child_running_and_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(statement_shards, "_PROGRESS_SECONDS", 0.01)
    path = tmp_path / "s.zip"
    path.write_bytes(zipped(generated(3000)))
    workdir = tmp_path / "work"
    workdir.mkdir()

    def cancelled(_count: int) -> None:  # as a heartbeat raises in an activity that was cancelled
        raise RuntimeError("the activity was cancelled")

    before = set(children_of(os.getpid()))  # the session's Temporal servers, say
    with pytest.raises(RuntimeError, match="cancelled"):
        validate_in_shards(path, EXPECTED, ArchiveLimits(), io.BytesIO(), workdir, 2, cancelled, CHUNK)

    assert set(children_of(os.getpid())) - before == set()
    assert list(workdir.iterdir()) == []


def test_a_child_that_cannot_do_its_job_makes_the_parent_doubt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    names = [str(tmp_path / name) for name in ("r.lines", "r.json", "r.hashes")]
    for name in names:
        Path(name).touch()
    job = _Job(
        zip_path=str(tmp_path / "gone.zip"),
        members=[0],
        bill_dates=[f"{BILL_DATE:%Y%m%d}"],
        limits={"max_members": 10, "max_total_uncompressed_bytes": 10**6, "max_compression_ratio": 10},
        chunk_bytes=CHUNK,
        shard=0,
        shards=1,
        records_path=names[0],
        results_path=names[1],
        hashes_path=names[2],
    )

    assert _run_children([job], lambda _count: None) is None
    assert "a validation process failed (exit 1: FileNotFoundError" in caplog.text
