# Shared by scripts/run and scripts/test: make ./.venv with the project installed in it.
# Usage: . scripts/_venv.sh; ensure_venv "<pip extras spec>"

VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"

ensure_venv() {
  local spec="$1"
  if [ ! -x "$VENV/bin/python" ]; then
    if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
      rm -rf "$VENV"
      if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "Installing python3-venv (Debian/Ubuntu package) ..."
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
        "$PYTHON" -m venv "$VENV"
      else
        echo "Error: '$PYTHON -m venv' failed. On Debian/Ubuntu: sudo apt-get install python3-venv" >&2
        exit 1
      fi
    fi
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
  fi
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check $spec
}
