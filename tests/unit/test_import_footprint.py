"""Issue 13: what `indisync --help`, `status`, `filters`, config and the MQTT layer load.

Each check runs in a fresh interpreter (this test process has long imported everything) and reads
``sys.modules`` there. On a Pi, importing photutils alone costs several seconds and ~60 MB.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("photutils", "scipy", "matplotlib", "astropy")

PROBE = """
import json, sys
{body}
print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))
"""

HELP = """
from indisync.cli import main
try:
    main(["--help"])
except SystemExit:
    pass
sys.stdout.flush()
print()
"""


def loaded_packages(body: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", PROBE.format(body=body)], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    return set(json.loads(out.strip().splitlines()[-1]))


@pytest.mark.parametrize("module", [
    "indisync.config",
    "indisync.protocol",
    "indisync.protocol.transport",
    "indisync.protocol.node_link",
    "indisync.protocol.messages",
    "indisync.contracts",
    "indisync.commands.status",
    "indisync.commands.filters",
    "indisync.cli",
    "indisync.analysis",  # the package, for AnalysisSettings: measuring loads on first use
    "indisync.devices.session",
])
def test_module_imports_no_heavy_package(module):
    heavy = loaded_packages(f"import {module}") & set(HEAVY)
    assert not heavy, f"importing {module} loads {sorted(heavy)}; import them where they are used"


def test_help_imports_no_heavy_package():
    heavy = loaded_packages(HELP) & set(HEAVY)
    assert not heavy, f"`indisync --help` loads {sorted(heavy)}; commands import their heavy modules in run()"


def test_loading_a_config_imports_no_heavy_package():
    body = "from indisync.config import load_config\ncfg = load_config(data={'guider': {}, 'focus': {}})"
    assert not loaded_packages(body) & set(HEAVY)


def test_measuring_still_works_through_the_package():
    """The lazy names resolve to the real measuring code."""
    import numpy as np

    from indisync import analysis
    from indisync.analysis.measure import measure_frame

    assert analysis.measure_frame is measure_frame
    result = analysis.measure_frame(np.full((64, 64), 1000, dtype=np.uint16), analysis.AnalysisSettings())
    assert result.star_count == 0
    with pytest.raises(AttributeError):
        analysis.no_such_name  # noqa: B018
