"""The guard imports nothing from indisync.night or indisync.node (issue 20): a defect there must not
disable it. Checked twice: in a fresh interpreter (sys.modules after importing the guard and its
command, and after the guard's whole start-up path short of connecting), and in the source (every
import statement of the guard's modules, function-level ones too)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GUARD_MODULES = ["indisync.guard", "indisync.guard.decide", "indisync.guard.rig", "indisync.guard.service",
                 "indisync.guard.settings", "indisync.guard.sun", "indisync.guard.view", "indisync.commands.guard"]
FORBIDDEN = ("indisync.night", "indisync.node")
# config.py assembles every layer's settings: loading a config loads the night's settings dataclasses
# (site:, night:, safety:, dome:, flip:), plain data with no behaviour. Nothing else of the night.
CONFIG_SECTIONS = {"indisync.night", "indisync.night.settings", "indisync.night.meridian"}

PROBE = """
import json, sys
{body}
print(json.dumps(sorted(m for m in sys.modules if m.startswith(("indisync.night", "indisync.node")))))
"""


def loaded(body: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", PROBE.format(body=body)], capture_output=True, text=True,
                         timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_importing_the_guard_and_its_command_loads_nothing_of_the_night_or_the_node():
    assert loaded("\n".join(f"import {m}" for m in GUARD_MODULES)) == set()


def test_the_guards_start_up_loads_only_the_configs_settings_of_the_night():
    body = """
import threading
from indisync.config import load_config
from indisync.guard.service import Guard, limits_for, rig_for
from indisync.guard.sun import sun_altitude_deg
cfg = load_config(data={"indi": {"weather": "Weather Simulator", "dome": "Dome Simulator"},
                        "site": {"latitude": 45, "longitude": 7}, "night": {"end_at": "05:30"},
                        "guard": {"grace": 10}})
guard = Guard(cfg)          # its MQTT transport, registry, alerter and INDI side, not started
guard.reading()             # one look (not connected: blind)
sun_altitude_deg(45.0, 7.0, 0.0)
guard.close()
"""
    got = loaded(body)
    assert got <= CONFIG_SECTIONS, f"the guard loads {sorted(got - CONFIG_SECTIONS)}"
    assert not {m for m in got if m.startswith("indisync.node")}


def _imports(path: Path, module: str) -> set[str]:
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(parts + ([base] if base else []))
            found |= {base} | {f"{base}.{a.name}" for a in node.names}
    return found


def test_no_guard_source_imports_the_night_or_the_node_anywhere():
    offenders = {}
    for module in GUARD_MODULES:
        rel = Path(*module.split("."))
        path = ROOT / (rel / "__init__.py" if (ROOT / rel).is_dir() else rel.with_suffix(".py"))
        bad = {name for name in _imports(path, module) if name.startswith(FORBIDDEN)}
        if bad:
            offenders[module] = sorted(bad)
    assert not offenders, f"the guard imports the night or the node: {offenders}"
