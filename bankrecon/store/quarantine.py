"""Damaged downloads, kept for investigation under DATA_DIR/quarantine/ with the reason beside them."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

from bankrecon.models import ArchiveRef, StatementKey
from bankrecon.statements.common import StatementDamaged
from bankrecon.store.archive import archive_path, staged_file


def quarantine_archive(
    data_dir: Path, key: StatementKey, archive: ArchiveRef, damage: StatementDamaged, workflow_id: str
) -> Path:
    """Move the archive out of the store (nothing may decode it again) and record why.

    Returns the quarantined zip's path; ``<same name>.json`` holds the reason.
    """
    directory = data_dir / "quarantine"
    target = directory / f"{key.account_no}-{key.bill_date.isoformat()}-{archive.sha256}.zip"
    reason = {
        "account_no": key.account_no,
        "bill_date": key.bill_date.isoformat(),
        "workflow_id": workflow_id,
        "file_name": archive.file_name,
        "sha256": archive.sha256,
        "size": archive.size,
        "rule": damage.rule,
        "part": damage.part,
        "line": damage.line,
        "detail": damage.detail,
        "error": str(damage),
        "quarantined_at": datetime.now(UTC).isoformat(),
    }
    with staged_file(directory) as (out, staged):
        out.write(json.dumps(reason, ensure_ascii=False, indent=2).encode("utf-8"))
    os.replace(staged, target.with_suffix(".json"))
    source = archive_path(data_dir, archive.sha256)
    if source.exists():
        os.replace(source, target)
    return target
