"""Runs pytest with Temporal out of reach: ``python tests/without_temporal.py [pytest args]``.

``temporalio``, and the workflows, activities and worker built on it, cannot be imported, as
on a machine where Temporal is not installed: the domain's tests must pass all the same.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

TEMPORAL_SIDE = ("temporalio", "workflows", "activities", "worker")


class _TemporalNotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname.split(".")[0] in TEMPORAL_SIDE:
            raise ModuleNotFoundError(f"{fullname!r}: Temporal is not installed", name=fullname)
        return None


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.meta_path.insert(0, _TemporalNotInstalled())
    import pytest

    sys.exit(pytest.main(sys.argv[1:]))
