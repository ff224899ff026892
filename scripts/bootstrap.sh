# Sourced by the other scripts: makes .venv with the project and its dev tools installed.
# Reinstalls only when pyproject.toml changed since the last install.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "bankrecon needs Python 3.11 or newer; $PYTHON is $("$PYTHON" --version 2>&1)" >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    echo "creating .venv" >&2
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.bankrecon-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "installing bankrecon and its dependencies into .venv (once; log: .venv/install.log)" >&2
    if ! { .venv/bin/python -m pip install --upgrade pip && .venv/bin/python -m pip install -e ".[dev]"; } \
        >.venv/install.log 2>&1; then
        tail -n 30 .venv/install.log >&2
        echo "installation failed; the whole log is in .venv/install.log" >&2
        exit 1
    fi
    touch "$stamp"
fi
export PATH="$ROOT/.venv/bin:$PATH"
