"""The layers: the domain imports no Temporal and nothing above it, and its tests pass without Temporal."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOMAIN = ["sources", "statements", "store", "pacing", "bankrec", "accounts.py", "config.py", "models.py"]
ABOVE_THE_DOMAIN = ("temporalio", "workflows", "activities", "worker", "bankrecon.temporal", "bankrecon.ops")
# The domain's own tests: they must pass on a machine without Temporal.
DOMAIN_TESTS = [
    "tests/test_statement.py",
    "tests/test_archive.py",
    "tests/test_accounts.py",
    "tests/test_canonical.py",
    "tests/test_persistence.py",
    "tests/test_sftp_statements.py",
    "tests/test_sftp_client.py",
    "tests/test_unionpay_records.py",
    "tests/test_unionpay_signing.py",
    "tests/test_unionpay_client.py",
    "tests/test_alipay_bill.py",
    "tests/test_alipay_client.py",
    "tests/test_bankrec.py",
]


def _modules_of(entries: list[str]) -> list[Path]:
    files: list[Path] = []
    for entry in entries:
        path = ROOT / entry
        files.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    return files


def _reaching(path: Path, tops: tuple[str, ...]) -> list[str]:
    return sorted(
        name for name in _imports(path) if any(name == top or name.startswith(f"{top}.") for top in tops)
    )


def _domain_modules() -> list[Path]:
    return _modules_of([f"bankrecon/{entry}" for entry in DOMAIN])


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", _domain_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_domain_imports_nothing_above_it(path: Path) -> None:
    assert _reaching(path, ABOVE_THE_DOMAIN) == []


# Within the domain: the statements' forms and the store serve every source kind and the
# reconciliation, so they import neither.
BENEATH_THE_SOURCES = ["bankrecon/statements", "bankrecon/store", "bankrecon/pacing"]


@pytest.mark.parametrize("path", _modules_of(BENEATH_THE_SOURCES), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_store_and_the_statements_import_no_source_kind(path: Path) -> None:
    assert _reaching(path, ("bankrecon.sources", "bankrecon.recon", "bankrecon.bankrec")) == []


# Above the domain, each layer imports only the layers below it: the operator's tools
# (bankrecon.ops) are the top, and nothing beneath them reaches up to them.
BENEATH_THE_TOOLS = ["workflows", "activities", "bankrecon/temporal", "bankrecon/telemetry", "worker.py"]
ABOVE_TELEMETRY = ("workflows", "activities", "worker", "bankrecon.temporal", "bankrecon.ops")


@pytest.mark.parametrize("path", _modules_of(BENEATH_THE_TOOLS), ids=lambda p: str(p.relative_to(ROOT)))
def test_nothing_beneath_the_tools_imports_them(path: Path) -> None:
    assert _reaching(path, ("bankrecon.ops",)) == []


@pytest.mark.parametrize("path", _modules_of(["bankrecon/telemetry"]), ids=lambda p: str(p.relative_to(ROOT)))
def test_telemetry_imports_no_layer_that_uses_it(path: Path) -> None:
    assert _reaching(path, ABOVE_TELEMETRY) == []


def _without_temporal(*tests: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "tests/without_temporal.py", "-q", "-p", "no:cacheprovider", *tests],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_domain_tests_pass_without_temporal() -> None:
    run = _without_temporal(*DOMAIN_TESTS)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert " passed" in run.stdout and "error" not in run.stdout.splitlines()[-1]


def test_the_blocker_does_block() -> None:
    run = _without_temporal("tests/test_workflow.py")
    assert run.returncode != 0 and "Temporal is not installed" in run.stdout
