# Shared by scripts/demo and scripts/test: make (or reuse) .venv with the given extras installed.
# Reinstalls only when pyproject.toml or the extras change, so a second run starts at once.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

ensure_venv() {
    local extras=$1
    if [ ! -x "$VENV/bin/python" ]; then
        echo "==> creating $VENV"
        "$PYTHON" -m venv "$VENV"
    fi
    local stamp="$VENV/.tta-installed-${extras//,/-}"
    local want
    want=$(cat pyproject.toml | sha256sum | cut -c1-16)
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        echo "==> installing tta-dev-primitives[$extras] into $VENV"
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[$extras]"
        echo "$want" > "$stamp"
    fi
}
