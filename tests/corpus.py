"""The real files of ../shared/corpus/ and the golden texts of what bankrecon stores from them.

The corpus holds files that channels and banks produced, published in public repositories; they
may not be copied into the project, so the tests read them where the workplace keeps them
(``BANKRECON_CORPUS`` overrides the place) and skip, saying why, in a clone without them.

What a statement stores from a real file is kept as a golden text of ours in tests/golden/,
one file per sample: a change in how a file is read shows as a diff of its rows, not only as a
failing count. ``pytest --regenerate-golden`` writes them anew, to be reviewed with ``git diff``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"
CORPUS = Path(os.environ.get("BANKRECON_CORPUS", ROOT.parent / "shared" / "corpus"))

# The columns of a stored transaction a golden text shows, in its order.
GOLDEN_COLUMNS = (
    "seq", "serial_no", "traded_at", "direction", "amount", "fee", "balance_after", "reference",
    "counterparty_account", "counterparty_name", "memo", "details",
)  # fmt: skip


def corpus_path(*parts: str) -> Path:
    """A file or folder of the corpus; the test skips where the corpus is absent."""
    path = CORPUS.joinpath(*parts)
    if not CORPUS.is_dir():
        pytest.skip(f"the real files of ../shared/corpus/ are not here ({CORPUS}): set BANKRECON_CORPUS")
    if not path.exists():
        pytest.fail(f"the corpus has no {path.relative_to(CORPUS)}")
    return path


def corpus_samples(*parts: str) -> list[str]:
    """The names of the samples (sub-folders, or files) in a corpus folder, for parametrize.

    Collected before any test runs, so an absent corpus gives one placeholder that skips.
    """
    folder = CORPUS.joinpath(*parts)
    if not folder.is_dir():
        return ["(corpus absent)"]
    return sorted(path.name for path in folder.iterdir() if not path.name.startswith("."))


def expected_of(sample_dir: Path) -> dict[str, Any]:
    """A bill sample's ``expected.json``: rows, credits, debits, fee total and lines."""
    loaded: dict[str, Any] = json.loads((sample_dir / "expected.json").read_text(encoding="utf-8"))
    return loaded


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    if isinstance(value, Decimal):
        return str(value)
    return str(value).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def golden_text(statement: Any, rows: Sequence[Any]) -> str:
    """A stored statement and its transactions as reviewable text: its totals, then a row a line."""
    head = {
        name: _cell(getattr(statement, name, None))
        for name in (
            "account_no", "bill_date", "source_kind", "currency", "opening_balance", "closing_balance",
            "credit_count", "credit_total", "debit_count", "debit_total", "fee_total", "transaction_count",
            "summary",
        )
    }  # fmt: skip
    lines = [f"# {name}: {value}" for name, value in head.items()]
    lines.append("\t".join(GOLDEN_COLUMNS))
    lines.extend("\t".join(_cell(getattr(row, name, None)) for name in GOLDEN_COLUMNS) for row in rows)
    return "\n".join(lines) + "\n"


def check_golden(request: pytest.FixtureRequest, name: str, text: str) -> None:
    """``text`` equals tests/golden/<name>; with ``--regenerate-golden`` it becomes that file."""
    path = GOLDEN / name
    if request.config.getoption("--regenerate-golden"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return
    if not path.exists():
        pytest.fail(f"no golden text tests/golden/{name}: run pytest --regenerate-golden and review it")
    expected = path.read_text(encoding="utf-8")
    if text != expected:
        import difflib

        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True), text.splitlines(keepends=True), f"golden/{name}", "stored"
            )
        )
        pytest.fail(f"stored rows differ from tests/golden/{name} (--regenerate-golden accepts):\n{diff}")
