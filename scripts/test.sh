#!/usr/bin/env bash
# Run the whole test suite: unit tests (no servers) and integration tests (each starts its own
# indiserver with the INDI simulators and its own mosquitto on free ports).
# Extra arguments go to pytest, e.g. `./scripts/test.sh -m "not integration"` or `-k focus`.
# pytest's own exit code is returned as it is: 5 (no tests collected) is a failure here too.
set -uo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m pytest -q "$@"
