#!/usr/bin/env bash
# Run the whole test suite: unit tests (no servers) and integration tests (each starts its own
# indiserver with the INDI simulators and its own mosquitto on free ports).
# The suite runs on TEST_WORKERS pytest-xdist workers (4 by default: the integration tests mostly
# wait on simulated exposures, so 4 workers fit a 2-core machine: 17 min 40 s there, against 21 min 45 s
# with 3 once the calibration tests came), one test file per worker at a time
# (--dist loadfile: a file's module-scoped rig is started once). Each test owns its ports
# (indisync.sim.indi.free_port gives every worker a block of its own) and its folders.
# Extra arguments go to pytest, e.g. `./scripts/test.sh -m "not integration"` or `-k focus`;
# `-n 0` runs in one process (for -s, --pdb or a debugger).
# pytest's own exit code is returned as it is: 5 (no tests collected) is a failure here too.
set -uo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m pytest -q -n "${TEST_WORKERS:-4}" --dist loadfile "$@"
