#!/usr/bin/env bash
# Install everything indisync needs on Debian 12 (bookworm) or Raspberry Pi OS, then the package
# itself, with its test extras, into ./.venv. Safe to run again: it skips what is already in place.
set -euo pipefail
cd "$(dirname "$0")/.."

# indi-bin: indiserver + simulators; mosquitto: the broker; libdbus-1-dev libglib2.0-dev pkg-config:
# pyindi-client's dbus-python dependency builds from source with them; python3-venv/-dev, gcc: the
# virtual environment and that build; astrometry.net: solve-field and build-astrometry-index for
# plate solving (index files for a real sky come from the astrometry-data-* packages, see README);
# chromium chromium-driver: the headless browser the dashboard's tests drive (a browser downloaded
# by a Python package cannot work offline).
PACKAGES=(indi-bin mosquitto mosquitto-clients libdbus-1-dev libglib2.0-dev pkg-config
          python3-venv python3-dev build-essential astrometry.net chromium chromium-driver)

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing system packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# The Debian mosquitto package enables a system broker; indisync's tests start their own on free
# ports and never depend on it, so it is left as the system has it.

PYTHON="${PYTHON:-python3}"
"$PYTHON" - <<'PY' || { echo "setup: indisync needs Python >= 3.11 (set PYTHON=/path/to/python3.11)"; exit 1; }
import sys
sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi

# Reinstall only when pyproject.toml or constraints.txt (the pinned versions) changed since the last
# successful install.
stamp=.venv/.indisync-installed
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || ! .venv/bin/python -c "import indisync, PyIndi" 2>/dev/null; then
  echo "setup: installing indisync and its test extras into .venv (versions from constraints.txt)"
  .venv/bin/python -m pip install -q -c constraints.txt -e ".[test]"
  echo "$want" > "$stamp"
fi
.venv/bin/python -c "import PyIndi, paho.mqtt, photutils, indisync; print('setup: ready (indisync', indisync.__version__ + ')')"
