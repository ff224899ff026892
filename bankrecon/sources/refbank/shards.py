"""Validating a large statement on several cores: the rules of format.py, shared out by block.

Each child process reads the whole archive itself (inflating costs little next to
validating) and takes every n-th block of lines: it decodes the block, checks that its
lines are valid D records whose balance chain holds, writes their text to a file of its
own and keeps their serials' hashes. The parent then checks what joins the blocks: each
block's chain starts where the one before it ended, the trailers add up, each part opens
where the one before closed, no serial hash repeats across the shards. It joins the
children's texts, in block order, into the records file.

This path only ever accepts. Whatever a child or the parent doubts (a damaged statement, a
line that is not a D record where one should be, a repeated serial hash, a child that
failed) makes ``validate_in_shards`` return None, and the caller validates the statement
again the usual way, which names the fault exactly as it always does.

A child: ``python -m bankrecon.sources.refbank.shards`` with its job as JSON on stdin.
"""

from __future__ import annotations

import json
import logging
import os
import random
import subprocess
import sys
import tempfile
import zipfile
from array import array
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import IO, Any

from bankrecon.sources.refbank.format import (
    _CHUNK_BYTES,
    _MAX_LINE_BYTES,
    _SERIAL_BUCKETS,
    ExpectedStatement,
    FindDetails,
    StatementSummary,
    _block_text,
    _ChainedTotals,
    _check_continuity,
    _check_trailer,
    _detail_finder,
    _member_blocks,
    _Part,
    _PartState,
    _PartTotals,
    _Records,
    _SerialNumbers,
    _statement_parts,
    _summary,
    _valid_records,
)
from bankrecon.statements.common import ArchiveLimits, StatementDamaged
from bankrecon.statements.zipguard import InflationGuard

log = logging.getLogger(__name__)

# Below this size of archive, starting processes costs more than sharing the work saves.
MIN_ARCHIVE_BYTES = 4 * 1024 * 1024
# Past this many, joining the children's files and the parent's checks take over.
MAX_SHARDS = 4
# How often the progress of children still running is reported (the activity heartbeats with it).
_PROGRESS_SECONDS = 2.0
# Where the children find this very bankrecon, whether it is installed or run from a checkout.
_PACKAGES = Path(__file__).resolve().parents[3]


def available_shards() -> int:
    """How many processes may validate at once here: the cores this process may run on."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return min(MAX_SHARDS, cores)


@dataclass(frozen=True)
class _Job:
    """What one child validates, and where it writes."""

    zip_path: str
    members: list[int]  # indexes into the archive's infolist, in part order
    bill_dates: list[str]  # each part's bill_date as written, YYYYMMDD
    limits: dict[str, int]
    chunk_bytes: int
    shard: int
    shards: int
    records_path: str  # the valid lines of its blocks, UTF-8, one block after another
    results_path: str  # a JSON line per block of its, then {"done": true}
    hashes_path: str  # its serials' hashes, bucket by bucket, each after its length


def validate_in_shards(
    zip_path: Path,
    expected: ExpectedStatement,
    limits: ArchiveLimits,
    out: IO[bytes],
    workdir: Path,
    shards: int,
    on_progress: Callable[[int], None] = lambda _count: None,
    chunk_bytes: int = _CHUNK_BYTES,
) -> StatementSummary | None:
    """Validate the statement with ``shards`` processes, its records written to ``out``; None on any doubt.

    The headers are checked here first, as the usual validation does (a StatementDamaged
    from them is final). ``workdir`` holds the children's files while they run.
    """
    with _statement_parts(zip_path, expected, limits) as (archive, parts):
        infos = archive.infolist()
        members = [infos.index(part.info) for part in parts]
    workdir = workdir.resolve()  # the children run elsewhere
    jobs = [
        _Job(
            zip_path=str(zip_path.resolve()),
            members=members,
            bill_dates=[part.bill_date_text for part in parts],
            limits=asdict(limits),
            chunk_bytes=chunk_bytes,
            shard=shard,
            shards=shards,
            records_path=_staged_name(workdir, ".lines"),
            results_path=_staged_name(workdir, ".json"),
            hashes_path=_staged_name(workdir, ".hashes"),
        )
        for shard in range(shards)
    ]
    try:
        blocks = _run_children(jobs, on_progress)
        if blocks is None:
            return None
        totals = _joined_totals(parts, blocks)
        if totals is None or _serials_repeat([Path(job.hashes_path) for job in jobs]):
            return None
        _join_records(out, blocks, [Path(job.records_path) for job in jobs])
        return _summary(parts, totals)
    finally:
        for job in jobs:
            for path in (job.records_path, job.results_path, job.hashes_path):
                Path(path).unlink(missing_ok=True)


def _staged_name(workdir: Path, suffix: str) -> str:
    # Named like every staged file, so that a worker's start-up sweeps what a killed one left.
    fd, name = tempfile.mkstemp(dir=workdir, prefix=".incoming-shard-", suffix=suffix)
    os.close(fd)
    return name


def _run_children(jobs: list[_Job], on_progress: Callable[[int], None]) -> list[dict[str, Any]] | None:
    """Every block's result, in block order, once all children finished; None if one doubted or failed."""
    # Python's str hash is salted per process: the children share one salt, so that their
    # serials' hashes can be compared. Nothing outside this statement ever sees them.
    env = os.environ | {"PYTHONHASHSEED": str(random.randrange(1, 2**32))}
    with ExitStack() as cleanup:
        children: list[subprocess.Popen[bytes]] = []
        errors: list[IO[bytes]] = []
        cleanup.callback(_stop, children)
        for job in jobs:
            errors.append(cleanup.enter_context(tempfile.TemporaryFile()))
            child = subprocess.Popen(
                [sys.executable, "-m", "bankrecon.sources.refbank.shards"],
                stdin=subprocess.PIPE,
                stderr=errors[-1],
                env=env,
                cwd=_PACKAGES,
            )
            children.append(child)
            assert child.stdin is not None
            child.stdin.write(json.dumps(asdict(job)).encode())
            child.stdin.close()
        for child in children:
            while True:
                try:
                    child.wait(timeout=_PROGRESS_SECONDS)
                    break
                except subprocess.TimeoutExpired:
                    on_progress(sum(_records_in(entry) for job in jobs for entry in _results(job)))
        for child, stderr in zip(children, errors, strict=True):
            if child.returncode != 0:
                stderr.seek(0)
                said = stderr.read().decode(errors="replace").strip().splitlines() or ["(nothing)"]
                log.warning(
                    "a validation process failed (exit %d: %s); validating in one process",
                    child.returncode,
                    said[-1],
                )
                return None
    results = [_results(job) for job in jobs]
    if any(not entries or entries[-1] != {"done": True} for entries in results):
        return None
    blocks = sorted((entry for entries in results for entry in entries[:-1]), key=itemgetter("block"))
    if [block["block"] for block in blocks] != list(range(len(blocks))):
        return None
    return blocks


def _stop(children: list[subprocess.Popen[bytes]]) -> None:
    """Children still running when their parent gives up (an exception, a cancelled activity)."""
    for child in children:
        if child.poll() is None:
            child.kill()
        child.wait()


def _results(job: _Job) -> list[dict[str, Any]]:
    text = Path(job.results_path).read_text(encoding="utf-8")
    # A child may be writing its next line: only whole lines count.
    return [json.loads(line) for line in text.split("\n")[:-1]]


def _records_in(entry: dict[str, Any]) -> int:
    records = entry.get("records")
    return int(records["records"]) if records else 0


def _joined_totals(parts: list[_Part], blocks: list[dict[str, Any]]) -> list[_PartTotals] | None:
    """Each part's totals if its blocks join into one chain and its trailer agrees (rules 2, 3, 5)."""
    by_part = [(index, list(own)) for index, own in groupby(blocks, key=itemgetter("part"))]
    if [index for index, _ in by_part] != list(range(len(parts))):
        return None
    totals: list[_PartTotals] = []
    for part, (_, own) in zip(parts, by_part, strict=True):
        if own[-1]["trailer"] is None or any(block["trailer"] is not None for block in own[:-1]):
            return None
        state = _PartState(part.opening_cents)
        for block in own:
            if block["records"] is not None:
                records = _ChainedTotals(**block["records"])
                if records.opening_cents != state.balance:
                    return None
                state.add(records)
        try:
            _check_continuity(part, totals)
            _check_trailer(own[-1]["trailer"], state.totals(), part.label, 0)
        except StatementDamaged:
            return None
        totals.append(state.totals())
    return totals


def _serials_repeat(hash_files: list[Path]) -> bool:
    """Whether any serial hash appears twice across the shards: a repeat, or a collision to rule out."""
    streams = [path.open("rb") for path in hash_files]
    try:
        for _ in range(_SERIAL_BUCKETS):
            bucket = array("q")
            for stream in streams:
                length = array("q")
                length.fromfile(stream, 1)
                bucket.fromfile(stream, length[0])
            if len(set(bucket)) != len(bucket):
                return True
        return False
    finally:
        for stream in streams:
            stream.close()


def _join_records(out: IO[bytes], blocks: list[dict[str, Any]], records_files: list[Path]) -> None:
    sources = [path.open("rb") for path in records_files]
    try:
        for block in blocks:
            source = sources[block["block"] % len(sources)]
            source.seek(block["offset"])
            out.write(source.read(block["length"]))
    finally:
        for source in sources:
            source.close()


# --- a child ---------------------------------------------------------------------------


def _run_job(job: _Job) -> None:
    serials = _SerialNumbers()
    finders = [_detail_finder(bill_date) for bill_date in job.bill_dates]
    with open(job.records_path, "wb") as records, open(job.results_path, "w", encoding="utf-8") as results:
        written = 0
        try:
            for index, part, block, last in _blocks(job):
                if index % job.shards != job.shard:
                    continue
                examined = _examine(block, last, finders[part])
                if examined is None:
                    return  # no "done": the parent doubts
                found, trailer = examined
                text = found.details.text.encode("utf-8") if found else b""
                records.write(text)
                if found:
                    serials.add(found.details.serial_nos)
                entry = {
                    "block": index,
                    "part": part,
                    "records": asdict(found.totals) if found else None,
                    "trailer": trailer,
                    "offset": written,
                    "length": len(text),
                }
                results.write(json.dumps(entry) + "\n")
                results.flush()
                written += len(text)
        except StatementDamaged:
            return
        with open(job.hashes_path, "wb") as hashes:
            for bucket in serials.buckets:
                array("q", [len(bucket)]).tofile(hashes)
                bucket.tofile(hashes)
        results.write(json.dumps({"done": True}) + "\n")


def _blocks(job: _Job) -> Iterator[tuple[int, int, bytes, bool]]:
    """(block index, part index, block, last of its part?) over every part, the same in every child."""
    inflation = InflationGuard(ArchiveLimits(**job.limits))
    index = 0
    with open(job.zip_path, "rb") as file, zipfile.ZipFile(file, metadata_encoding="gb18030") as archive:
        infos = archive.infolist()
        for part, member in enumerate(job.members):
            info = infos[member]
            blocks = _member_blocks(archive, info, info.filename, inflation, job.chunk_bytes)
            block = next(blocks, None)
            while block is not None:
                following = next(blocks, None)
                yield index, part, block, following is None
                index += 1
                block = following


def _examine(
    block: bytes, last: bool, find_details: FindDetails
) -> tuple[_Records | None, list[str] | None] | None:
    """A block's valid records, and its trailer's fields if it is its part's last; None on any doubt."""
    if max(map(len, block.split(b"\n"))) > _MAX_LINE_BYTES:
        return None
    text = _block_text(block)
    if text is None:
        return None
    trailer = None
    if last:
        # The trailer is the part's last record; only empty lines may follow it.
        start = 0 if text.startswith("T|") else text.find("\nT|") + 1
        if not text.startswith("T|", start):
            return None
        line, _, after = text[start:].partition("\n")
        if after.strip("\n"):
            return None
        text, trailer = text[:start], line.split("|")
    if not text:
        return None, trailer
    found = _valid_records(text, text.count("\n"), find_details)
    return None if found is None else (found, trailer)


if __name__ == "__main__":
    _run_job(_Job(**json.load(sys.stdin)))
